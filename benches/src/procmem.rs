//! Resident memory of a VMM process, split into guest RAM and everything else,
//! from /proc (Linux only). "Beyond guest RAM" = VmRSS minus the resident part
//! of the anonymous mapping that backs guest RAM (found by its exact size), so
//! QEMU and kvmsandbox are charged the same way however much RAM the guest touched.

use std::path::PathBuf;

/// Errors reading /proc.
#[derive(Debug, thiserror::Error)]
pub enum ProcMemError {
    /// A /proc file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A field was missing.
    #[error("{path} has no {field} line")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
    },
}

/// A process's memory at one moment, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcMem {
    /// Resident set now.
    pub rss_kib: u64,
    /// Peak resident set.
    pub hwm_kib: u64,
    /// Resident part of the guest RAM mapping (0 if not found).
    pub guest_rss_kib: u64,
}

impl ProcMem {
    /// Resident memory that is not guest RAM.
    pub fn beyond_guest_kib(&self) -> u64 {
        self.rss_kib.saturating_sub(self.guest_rss_kib)
    }
}

fn read(path: PathBuf) -> Result<(PathBuf, String), ProcMemError> {
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok((path, s)),
        Err(source) => Err(ProcMemError::Read { path, source }),
    }
}

/// The value in KiB of a `Name:   123 kB` line.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Resident KiB of the largest-resident mapping of exactly `size_kib` (guest RAM).
pub fn guest_mapping_rss(smaps: &str, size_kib: u64) -> u64 {
    let mut best = 0;
    let mut size = None;
    for l in smaps.lines() {
        if let Some(v) = l.strip_prefix("Size:") {
            size = v
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok());
        } else if let Some(v) = l.strip_prefix("Rss:") {
            if size == Some(size_kib) {
                let rss = v
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                best = best.max(rss);
            }
        }
    }
    best
}

/// Reads process `pid` ("self" for this one) with guest RAM of `guest_mib` MiB.
pub fn read_proc(pid: &str, guest_mib: u64) -> Result<ProcMem, ProcMemError> {
    let (path, status) = read(PathBuf::from(format!("/proc/{pid}/status")))?;
    let rss_kib = kib_field(&status, "VmRSS").ok_or(ProcMemError::Missing {
        path: path.clone(),
        field: "VmRSS",
    })?;
    let hwm_kib = kib_field(&status, "VmHWM").ok_or(ProcMemError::Missing {
        path,
        field: "VmHWM",
    })?;
    let (_, smaps) = read(PathBuf::from(format!("/proc/{pid}/smaps")))?;
    Ok(ProcMem {
        rss_kib,
        hwm_kib,
        guest_rss_kib: guest_mapping_rss(&smaps, guest_mib * 1024),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "7f00-7f10 rw-p 00000000 00:00 0\nSize:              65536 kB\nRss:                6144 kB\n\
                         7f20-7f30 ---p 00000000 00:00 0\nSize:              65404 kB\nRss:                   0 kB\n\
                         7f40-7f50 rw-p 00000000 00:00 0\nSize:               4096 kB\nRss:                4000 kB\n";

    #[test]
    fn finds_the_guest_mapping_by_size() {
        assert_eq!(guest_mapping_rss(SMAPS, 65536), 6144);
        assert_eq!(guest_mapping_rss(SMAPS, 1234), 0);
    }

    #[test]
    fn parses_status_fields() {
        let s = "Name:\tqemu\nVmHWM:\t   43568 kB\nVmRSS:\t   43104 kB\n";
        assert_eq!(kib_field(s, "VmRSS"), Some(43104));
        assert_eq!(kib_field(s, "VmHWM"), Some(43568));
        assert_eq!(kib_field(s, "VmSwap"), None);
    }

    #[test]
    fn reads_this_process() {
        let m = read_proc("self", 1).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib);
        assert_eq!(m.beyond_guest_kib(), m.rss_kib - m.guest_rss_kib);
    }
}
