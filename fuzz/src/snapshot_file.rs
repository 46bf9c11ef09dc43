//! `snapshot_file`: the snapshot file loader's checks (`kvmsandbox::snapshot::parse`,
//! the same code `SandboxSnapshot::load` runs before it maps anything) on
//! arbitrary bytes: header, section table, bounds, checksums, bincode state
//! bounded by its size limit, consistency with the metadata.
//!
//! Input: the whole file. The seed is a valid 8 KiB-RAM snapshot file, so
//! mutations reach the sections behind the checksums only when the fuzzer
//! also fixes a CRC; the invariant checked is that nothing panics and that
//! whatever parses has the shape its header promised.

pub fn fuzz(data: &[u8]) {
    if let Ok((_, meta)) = kvmsandbox::snapshot::parse(data) {
        assert!(meta.mem_size > 0 && meta.mem_size % 4096 == 0);
        assert!(meta.mem_size <= data.len() as u64);
    }
}
