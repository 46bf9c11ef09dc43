//! `wasm_fs`: the decoders of a WASM run's preopened directories
//! (`kvmsandbox_proto::wasmfs`): the `WasmFs` field of `RunWasm` and the
//! contents image that follows the module (and comes back after the run).
//! Both are sized by the peer: besides "never panic", a decoded value must
//! re-encode to bytes that decode to the same value, and an image's records
//! must account for every byte of it.

use kvmsandbox_proto::wasmfs::{decode_image, WasmFs};

use crate::input::Input;

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let dirs = usize::from(inp.u8() % 8);
    let rest = inp.rest();
    if mode % 2 == 0 {
        if let Ok(fs) = WasmFs::from_bytes(rest) {
            let again = WasmFs::from_bytes(&fs.to_bytes());
            assert_eq!(
                again.as_ref(),
                Ok(&fs),
                "WasmFs changed across encode/decode"
            );
        }
    } else if let Ok(entries) = decode_image(rest, dirs) {
        let mut image = Vec::new();
        for entry in &entries {
            assert!((entry.dir as usize) < dirs, "directory index not checked");
            entry.encode(&mut image);
        }
        assert_eq!(image, rest, "records do not account for the whole image");
    }
}
