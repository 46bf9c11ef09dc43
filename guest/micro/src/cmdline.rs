//! The command line the VMM passes in the boot info: space-separated `key=value`
//! words. `test=<mode>` selects a test behaviour (see `main`).

use kvmsandbox_proto::bootinfo::BootInfo;

/// A borrowed view of the command line.
pub struct Cmdline(&'static str);

impl Cmdline {
    /// Reads the command line from guest memory as the VMM described it.
    pub fn from_boot_info(info: &BootInfo) -> Self {
        if info.cmdline_addr == 0 || info.cmdline_len == 0 || info.cmdline_len > 4096 {
            return Cmdline("");
        }
        // SAFETY: the VMM wrote cmdline_len bytes at cmdline_addr (identity-mapped
        // RAM) before entry and never changes them; the length is bounded above.
        let bytes = unsafe {
            core::slice::from_raw_parts(info.cmdline_addr as *const u8, info.cmdline_len as usize)
        };
        Cmdline(core::str::from_utf8(bytes).unwrap_or(""))
    }

    /// The value of `key=value`, if present.
    pub fn get(&self, key: &str) -> Option<&'static str> {
        self.0.split_ascii_whitespace().find_map(|w| {
            let (k, v) = w.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// The `test=` mode, if any.
    pub fn test_mode(&self) -> Option<&'static str> {
        self.get("test")
    }
}
