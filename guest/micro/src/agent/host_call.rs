//! A running module's host function call, on the run's own connection: send
//! `HostCall`, then wait for the host's `HostReturn`/`HostError` with the
//! run's request id. While waiting the guest keeps serving its other
//! sessions (pings, Shutdown), exactly as at a run's check-ins, and sleeps
//! between interrupts. The wait has no clock of its own: the host bounds it
//! (its timeout drops the connection, which ends the wait here).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kvmsandbox_proto::msg::{HostCall, HostFnDecl, HostReturn};
use kvmsandbox_proto::msg::{HostType as WireType, HostValue as WireValue};
use kvmsandbox_proto::{Frame, FrameDecoder, Message};
use kvmsandbox_wasm_runner::{HostCallArgs, HostImport, HostReply, HostType, HostValue};

use super::control::Others;
use crate::interrupts;
use crate::virtio::blk::Blk;
use crate::virtio::vsock::{ConnId, Vsock};

/// Bytes read from the connection per step (answers are at most one frame).
const READ_CHUNK: usize = 64 * 1024;

/// Why a call got no answer.
pub enum NoAnswer {
    /// The connection failed or the host went away: the run must end.
    Lost(String),
    /// The guest is shutting down (Shutdown on another session).
    Stopped,
}

/// Sends `call` as request `id` and waits for the answer.
pub fn call(
    vs: &mut Vsock,
    disks: &mut [Blk],
    conn: ConnId,
    id: u32,
    decoder: &mut FrameDecoder,
    others: &mut Others,
    call: HostCall,
) -> Result<Result<HostReturn, String>, NoAnswer> {
    let bytes = Frame::new(id, Message::HostCall(call))
        .encode()
        .map_err(|e| NoAnswer::Lost(format!("cannot encode the call: {e}")))?;
    vs.send_vec(conn, bytes)
        .map_err(|e| NoAnswer::Lost(format!("cannot send the call: {e:?}")))?;
    loop {
        let seen = interrupts::count();
        let progress = vs.poll();
        if vs.available(conn) > 0 {
            vs.recv_with(conn, READ_CHUNK, |bytes| decoder.feed(bytes))
                .map_err(|e| NoAnswer::Lost(format!("cannot read the answer: {e:?}")))?;
        }
        loop {
            match decoder.next_frame() {
                Ok(Some(f)) if f.request_id == id => match f.msg {
                    Message::HostReturn(r) => return Ok(Ok(r)),
                    Message::HostError { message } => return Ok(Err(message)),
                    // Anything else for this run is out of place: ignored.
                    _ => {}
                },
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err(NoAnswer::Lost(format!("bad frame from the host: {e}"))),
            }
        }
        if vs.is_closed(conn) || vs.at_eof(conn) {
            return Err(NoAnswer::Lost(String::from(
                "the host closed the connection during the call",
            )));
        }
        if !others(vs, disks) {
            return Err(NoAnswer::Stopped);
        }
        if !progress {
            interrupts::idle_since(seen);
        }
    }
}

/// The runner's view of the host's declarations.
pub fn imports(decls: &[HostFnDecl]) -> Vec<HostImport> {
    decls
        .iter()
        .map(|d| HostImport {
            module: d.module.clone(),
            name: d.name.clone(),
            params: d.params.iter().map(|t| ty(*t)).collect(),
            results: d.results.iter().map(|t| ty(*t)).collect(),
        })
        .collect()
}

fn ty(t: WireType) -> HostType {
    match t {
        WireType::I32 => HostType::I32,
        WireType::I64 => HostType::I64,
        WireType::F32 => HostType::F32,
        WireType::F64 => HostType::F64,
        WireType::Bytes => HostType::Bytes,
    }
}

/// A call as it goes on the wire.
pub fn to_wire(call: &HostCallArgs<'_>) -> HostCall {
    HostCall {
        func: call.func,
        args: call
            .args
            .iter()
            .map(|v| match *v {
                HostValue::I32(x) => WireValue::I32(x),
                HostValue::I64(x) => WireValue::I64(x),
                HostValue::F32(x) => WireValue::F32(x),
                HostValue::F64(x) => WireValue::F64(x),
            })
            .collect(),
        buffers: call.buffers.iter().map(|b| b.to_vec()).collect(),
        out_cap: call.out_cap,
    }
}

/// An answer as the runner takes it.
pub fn from_wire(r: HostReturn) -> HostReply {
    HostReply {
        values: r
            .values
            .into_iter()
            .map(|v| match v {
                WireValue::I32(x) => HostValue::I32(x),
                WireValue::I64(x) => HostValue::I64(x),
                WireValue::F32(x) => HostValue::F32(x),
                WireValue::F64(x) => HostValue::F64(x),
            })
            .collect(),
        bytes: r.bytes,
    }
}
