//! Snapshot files without KVM: a synthetic VM snapshot (a real memory image,
//! default component states) saved, loaded, and broken in every way the loader
//! must name.

use super::format::{Header, Tag, HEADER_LEN};
use super::*;
use crate::vmm::memory::GuestMemory;
use std::os::unix::fs::FileExt;
use vm_memory::{Bytes, GuestAddress};

fn sample() -> SandboxSnapshot {
    super::sample::sample(2 << 20)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvmsb-snapfile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&d);
    d
}

fn saved(name: &str) -> (PathBuf, Vec<u8>) {
    let p = tmp(name);
    sample().save(&p).unwrap();
    let b = std::fs::read(&p).unwrap();
    (p, b)
}

fn load_bytes(name: &str, b: &[u8]) -> Result<SandboxSnapshot, SnapshotFileError> {
    let p = tmp(name);
    std::fs::write(&p, b).unwrap();
    let r = SandboxSnapshot::load(&p);
    let _ = std::fs::remove_file(&p);
    // Both entry points agree.
    match (&r, parse(b)) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("load and parse disagree: {a:?} vs {b:?}"),
    }
    r
}

fn header(b: &[u8]) -> Header {
    Header::decode(&b[..Header::encoded_len(3)]).unwrap()
}

/// Re-encodes the header with `f` applied (a consistent checksum).
fn patched(b: &[u8], f: impl FnOnce(&mut Header)) -> Vec<u8> {
    let mut h = header(b);
    f(&mut h);
    let mut out = b.to_vec();
    let enc = h.encode();
    out[..enc.len()].copy_from_slice(&enc);
    out
}

#[test]
fn a_saved_snapshot_loads_back_equal_and_maps_its_memory() {
    let (p, b) = saved("roundtrip");
    let snap = SandboxSnapshot::load(&p).unwrap();
    let orig = sample();
    assert_eq!(snap.guest(), GuestKind::Micro);
    assert_eq!(snap.meta(), orig.meta());
    assert_eq!(snap.vm().vcpus, orig.vm().vcpus);
    assert_eq!(snap.vm().clock, orig.vm().clock);
    let m = &snap.vm().memory;
    assert_eq!(m.size(), 2 << 20);
    assert_eq!(m.offset() % 4096, 0);
    let mut w = [0u8; 8];
    m.file().read_exact_at(&mut w, m.offset() + 0x1000).unwrap();
    assert_eq!(u64::from_le_bytes(w), 0xfeed);
    m.file()
        .read_exact_at(&mut w, m.offset() + 0x1f_f000)
        .unwrap();
    assert_eq!(u64::from_le_bytes(w), 0xbeef);
    // Mapped over RAM, the guest sees the image.
    let ram = GuestMemory::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap();
    m.map_over(&ram).unwrap();
    assert_eq!(ram.read_obj::<u64>(GuestAddress(0x1000)).unwrap(), 0xfeed);
    assert_eq!(
        ram.read_obj::<u64>(GuestAddress(0x1f_f000)).unwrap(),
        0xbeef
    );
    // The two non-zero pages are all the file stores of the image.
    assert_eq!(b.len() as u64, m.offset() + (2 << 20));
    let _ = std::fs::remove_file(&p);
}

#[test]
fn saving_over_a_loaded_file_leaves_the_loaded_snapshot_intact() {
    let (p, _) = saved("overwrite");
    let snap = SandboxSnapshot::load(&p).unwrap();
    sample().save(&p).unwrap();
    let m = &snap.vm().memory;
    let mut w = [0u8; 8];
    m.file().read_exact_at(&mut w, m.offset() + 0x1000).unwrap();
    assert_eq!(u64::from_le_bytes(w), 0xfeed);
    let _ = std::fs::remove_file(&p);
}

#[test]
fn truncated_files_name_what_is_cut_off() {
    let (p, b) = saved("trunc");
    let _ = std::fs::remove_file(&p);
    for cut in [0, 10, HEADER_LEN + 5, 300, b.len() - 4096, b.len() - 1] {
        match load_bytes("trunc-x", &b[..cut]) {
            Err(SnapshotFileError::Truncated { have, .. }) => assert_eq!(have, cut as u64),
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
    }
    let mut longer = b.clone();
    longer.push(0);
    assert!(matches!(
        load_bytes("trunc-long", &longer),
        Err(SnapshotFileError::Length { .. })
    ));
}

#[test]
fn a_flipped_byte_in_any_part_is_a_checksum_error_naming_it() {
    let (p, b) = saved("corrupt");
    let _ = std::fs::remove_file(&p);
    let h = header(&b);
    let mut at = vec![("header", 40usize)];
    for t in Tag::ALL {
        let s = h.section(t).unwrap();
        at.push((t.name(), (s.offset + s.length / 2) as usize));
    }
    // A byte of an all-zero page the file leaves as a hole.
    let mem = h.section(Tag::Memory).unwrap();
    at.push((Tag::Memory.name(), (mem.offset + 0x8000) as usize));
    for (what, i) in at {
        let mut c = b.clone();
        c[i] ^= 0x40;
        match load_bytes("corrupt-x", &c) {
            Err(SnapshotFileError::Checksum { what: w, .. }) => assert_eq!(w, what),
            other => panic!("byte {i} ({what}): expected Checksum, got {other:?}"),
        }
    }
}

#[test]
fn wrong_magic_version_and_guest_kind_are_named() {
    let (p, b) = saved("ident");
    let _ = std::fs::remove_file(&p);
    let mut c = b.clone();
    c[0] = b'X';
    assert!(matches!(
        load_bytes("m", &c),
        Err(SnapshotFileError::Magic { .. })
    ));
    let mut c = b.clone();
    c[8..12].copy_from_slice(&2u32.to_le_bytes());
    match load_bytes("v", &c) {
        Err(e @ SnapshotFileError::FormatVersion { found: 2 }) => {
            assert!(e.to_string().contains("version 2"), "{e}")
        }
        other => panic!("expected FormatVersion, got {other:?}"),
    }
    let c = patched(&b, |h| h.guest = 9);
    assert!(matches!(
        load_bytes("g", &c),
        Err(SnapshotFileError::GuestKind { found: 9 })
    ));
    let c = patched(&b, |h| h.sections[1].version = 7);
    assert!(matches!(
        load_bytes("sv", &c),
        Err(SnapshotFileError::SectionVersion { found: 7, .. })
    ));
}

#[test]
fn broken_section_tables_are_named() {
    let (p, b) = saved("table");
    let _ = std::fs::remove_file(&p);
    let c = patched(&b, |h| h.sections[2].offset += 1);
    assert!(matches!(
        load_bytes("align", &c),
        Err(SnapshotFileError::MemoryAlignment { .. })
    ));
    let c = patched(&b, |h| h.sections[0].length = u64::MAX);
    assert!(matches!(
        load_bytes("bounds", &c),
        Err(SnapshotFileError::SectionBounds { .. })
    ));
    let c = patched(&b, |h| h.sections[1].tag = Tag::Meta);
    assert!(matches!(
        load_bytes("dup", &c),
        Err(SnapshotFileError::DuplicateSection { .. })
    ));
    let mut c = b.clone();
    c[16..20].copy_from_slice(&1000u32.to_le_bytes());
    assert!(matches!(
        load_bytes("count", &c),
        Err(SnapshotFileError::SectionCount { count: 1000 })
    ));
}

#[test]
fn state_that_contradicts_the_metadata_is_refused() {
    let mut s = sample();
    let inner = Arc::get_mut(&mut s.inner).unwrap();
    inner.meta.vcpus = 3;
    let p = tmp("inconsistent");
    s.save(&p).unwrap();
    match SandboxSnapshot::load(&p) {
        Err(SnapshotFileError::Inconsistent {
            what: "vCPU states",
            found: 2,
            expected: 3,
        }) => {}
        other => panic!("expected Inconsistent, got {other:?}"),
    }
    let _ = std::fs::remove_file(&p);
}
