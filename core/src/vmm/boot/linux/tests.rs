//! Tests of the Linux loader over plain guest memory (no KVM): synthetic ELF and
//! bzImage images for every behaviour and error, plus the real kernel from
//! `guest/kernel/build.sh` when it has been built.

use std::path::Path;

use linux_loader::loader::bootparam::boot_params;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::fixtures::*;
use super::initrd::place;
use super::params::{BOOT_FLAG_MAGIC, E820_RAM, ELF_KERNEL_ALIGNMENT, HDR_MAGIC, LOADER_UNDEFINED};
use super::*;
use crate::vmm::layout::{CMDLINE_START, EBDA_START, HIMEM_START, ZERO_PAGE_START};

const MIB: u64 = 1 << 20;

fn zero_page(mem: &GuestMemoryMmap<()>) -> boot_params {
    mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap()
}

fn read(mem: &GuestMemoryMmap<()>, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
    buf
}

fn boot(
    mem: &GuestMemoryMmap<()>,
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
) -> Result<LinuxEntry, LinuxBootError> {
    load_linux(
        mem,
        &LinuxImage {
            kernel,
            initrd,
            cmdline,
        },
    )
}

fn assert_e820(bp: &boot_params, mem_end: u64) {
    assert_eq!(bp.e820_entries, 2);
    let table = bp.e820_table;
    let (a0, s0, t0) = ({ table[0].addr }, { table[0].size }, { table[0].r#type });
    let (a1, s1, t1) = ({ table[1].addr }, { table[1].size }, { table[1].r#type });
    assert_eq!((a0, s0, t0), (0, EBDA_START, E820_RAM));
    assert_eq!((a1, s1, t1), (HIMEM_START, mem_end - HIMEM_START, E820_RAM));
    assert_eq!({ table[2].size }, 0, "no third entry");
}

// ---------------------------------------------------------------- ELF vmlinux

#[test]
fn elf_entry_is_e_entry_and_segment_is_loaded() {
    let mem = guest_memory(32 * MIB);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    let entry = boot(&mem, k.path(), None, "console=ttyS0").unwrap();
    assert_eq!(entry.entry, GuestAddress(ELF_ENTRY));
    assert_eq!(entry.boot_params, GuestAddress(ZERO_PAGE_START));
    let expected: Vec<u8> = (0..ELF_FILESZ as usize).map(pattern).collect();
    assert_eq!(read(&mem, ELF_PADDR, ELF_FILESZ as usize), expected);
}

#[test]
fn elf_boot_params_header_and_e820() {
    let mem = guest_memory(32 * MIB);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    boot(&mem, k.path(), None, "console=ttyS0 reboot=k").unwrap();
    let bp = zero_page(&mem);
    let hdr = bp.hdr;
    assert_eq!({ hdr.boot_flag }, BOOT_FLAG_MAGIC);
    assert_eq!({ hdr.header }, HDR_MAGIC);
    assert_eq!({ hdr.type_of_loader }, LOADER_UNDEFINED);
    assert_eq!({ hdr.cmd_line_ptr }, CMDLINE_START as u32);
    assert_eq!(
        { hdr.cmdline_size },
        "console=ttyS0 reboot=k".len() as u32 + 1
    );
    assert_eq!({ hdr.kernel_alignment }, ELF_KERNEL_ALIGNMENT);
    assert_eq!({ hdr.ramdisk_image }, 0);
    assert_eq!({ hdr.ramdisk_size }, 0);
    assert_e820(&bp, 32 * MIB);
}

#[test]
fn cmdline_bytes_at_cmdline_start_nul_terminated() {
    let mem = guest_memory(32 * MIB);
    mem.write_slice(&[0xaa; 64], GuestAddress(CMDLINE_START))
        .unwrap();
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    let cmdline = "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 -- agent";
    boot(&mem, k.path(), None, cmdline).unwrap();
    let mut want = cmdline.as_bytes().to_vec();
    want.push(0);
    assert_eq!(read(&mem, CMDLINE_START, want.len()), want);
}

#[test]
fn empty_cmdline_is_a_single_nul() {
    let mem = guest_memory(32 * MIB);
    mem.write_slice(&[0xaa; 4], GuestAddress(CMDLINE_START))
        .unwrap();
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    boot(&mem, k.path(), None, "").unwrap();
    assert_eq!(read(&mem, CMDLINE_START, 1), [0]);
    assert_eq!({ zero_page(&mem).hdr.cmdline_size }, 1);
}

#[test]
fn elf_with_initrd_places_it_at_the_top_page_aligned() {
    let mem_end = 32 * MIB;
    let mem = guest_memory(mem_end);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    let data: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    let rd = TempFile::new("initrd", &data);
    boot(&mem, k.path(), Some(rd.path()), "console=ttyS0").unwrap();
    let hdr = zero_page(&mem).hdr;
    let addr = u64::from(hdr.ramdisk_image);
    assert_eq!(addr, (mem_end - 5000) & !0xfff);
    assert_eq!(addr % 0x1000, 0);
    assert_eq!({ hdr.ramdisk_size }, 5000);
    assert_eq!(read(&mem, addr, data.len()), data);
}

#[test]
fn elf_for_another_class_or_machine_is_rejected() {
    let mem = guest_memory(32 * MIB);
    let k32 = TempFile::new("vmlinux32", &elf_kernel(1, 62, 0x2000));
    match boot(&mem, k32.path(), None, "").unwrap_err() {
        LinuxBootError::UnsupportedElf {
            class: 1,
            machine: 62,
            path,
        } => {
            assert_eq!(path, k32.path())
        }
        e => panic!("unexpected {e:?}"),
    }
    let arm = TempFile::new("vmlinux-arm", &elf_kernel(2, 183, 0x2000));
    assert!(matches!(
        boot(&mem, arm.path(), None, "").unwrap_err(),
        LinuxBootError::UnsupportedElf {
            class: 2,
            machine: 183,
            ..
        }
    ));
}

#[test]
fn elf_whose_bss_passes_the_end_of_ram_does_not_fit() {
    let mem = guest_memory(4 * MIB);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 8 * MIB));
    match boot(&mem, k.path(), None, "").unwrap_err() {
        LinuxBootError::KernelDoesNotFit {
            kernel_end,
            mem_end,
            ..
        } => {
            assert_eq!(kernel_end, ELF_PADDR + 8 * MIB);
            assert_eq!(mem_end, 4 * MIB);
        }
        e => panic!("unexpected {e:?}"),
    }
}

// ---------------------------------------------------------------- bzImage

#[test]
fn bzimage_entry_is_load_address_plus_0x200_and_payload_is_loaded() {
    let mem = guest_memory(64 * MIB);
    let f = BzFields::default();
    let k = TempFile::new("bzImage", &bzimage(&f));
    let entry = boot(&mem, k.path(), None, "console=ttyS0").unwrap();
    assert_eq!(entry.entry, GuestAddress(0x10_0200));
    assert_eq!(entry.boot_params, GuestAddress(ZERO_PAGE_START));
    let expected: Vec<u8> = (0..f.payload_len).map(pattern).collect();
    assert_eq!(read(&mem, 0x10_0000, f.payload_len), expected);
}

#[test]
fn bzimage_setup_header_is_copied_with_loader_fields() {
    let mem = guest_memory(64 * MIB);
    let f = BzFields {
        cmdline_size: 1000,
        initrd_addr_max: 0x37ff_ffff,
        ..BzFields::default()
    };
    let k = TempFile::new("bzImage", &bzimage(&f));
    boot(&mem, k.path(), None, "console=ttyS0").unwrap();
    let bp = zero_page(&mem);
    let hdr = bp.hdr;
    // From the image:
    assert_eq!({ hdr.version }, f.version);
    assert_eq!({ hdr.setup_sects }, f.setup_sects);
    assert_eq!({ hdr.loadflags }, 1);
    assert_eq!({ hdr.xloadflags }, f.xloadflags);
    assert_eq!({ hdr.kernel_alignment }, f.kernel_alignment);
    assert_eq!({ hdr.relocatable_kernel }, 1);
    assert_eq!({ hdr.cmdline_size }, 1000, "the kernel's own limit is kept");
    assert_eq!({ hdr.initrd_addr_max }, 0x37ff_ffff);
    assert_eq!({ hdr.pref_address }, f.pref_address);
    assert_eq!({ hdr.init_size }, f.init_size);
    assert_eq!({ hdr.code32_start }, 0x10_0000);
    // Ours:
    assert_eq!({ hdr.boot_flag }, BOOT_FLAG_MAGIC);
    assert_eq!({ hdr.header }, HDR_MAGIC);
    assert_eq!({ hdr.type_of_loader }, LOADER_UNDEFINED);
    assert_eq!({ hdr.cmd_line_ptr }, CMDLINE_START as u32);
    assert_e820(&bp, 64 * MIB);
}

#[test]
fn bzimage_initrd_respects_initrd_addr_max() {
    let mem = guest_memory(128 * MIB);
    let f = BzFields {
        initrd_addr_max: (64 * MIB - 1) as u32,
        ..BzFields::default()
    };
    let k = TempFile::new("bzImage", &bzimage(&f));
    let rd = TempFile::new("initrd", &[0x5a; 3 * 4096 + 1]);
    boot(&mem, k.path(), Some(rd.path()), "").unwrap();
    let hdr = zero_page(&mem).hdr;
    assert_eq!(u64::from(hdr.ramdisk_image), 64 * MIB - 4 * 4096);
    assert_eq!({ hdr.ramdisk_size }, 3 * 4096 + 1);
    assert_eq!(
        read(&mem, 64 * MIB - 4 * 4096, 3 * 4096 + 1),
        vec![0x5a; 3 * 4096 + 1]
    );
}

#[test]
fn bzimage_initrd_stays_above_the_decompression_area() {
    // Kernel decompresses into [16 MiB, 16 MiB + 4 MiB); RAM ends at 21 MiB: 1 MiB left.
    let mem = guest_memory(21 * MIB);
    let k = TempFile::new("bzImage", &bzimage(&BzFields::default()));
    let fits = TempFile::new("initrd-fits", &vec![1u8; MIB as usize]);
    boot(&mem, k.path(), Some(fits.path()), "").unwrap();
    assert_eq!(u64::from(zero_page(&mem).hdr.ramdisk_image), 20 * MIB);

    let too_big = TempFile::new("initrd-big", &vec![1u8; MIB as usize + 1]);
    match boot(&mem, k.path(), Some(too_big.path()), "").unwrap_err() {
        LinuxBootError::InitrdTooLarge {
            size,
            available,
            path,
        } => {
            assert_eq!((size, available), (MIB + 1, MIB));
            assert_eq!(path, too_big.path());
        }
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn bzimage_older_than_2_06_is_too_old() {
    let mem = guest_memory(64 * MIB);
    let k = TempFile::new(
        "bzImage-old",
        &bzimage(&BzFields {
            version: 0x0205,
            ..BzFields::default()
        }),
    );
    let err = boot(&mem, k.path(), None, "").unwrap_err();
    assert!(
        matches!(
            err,
            LinuxBootError::BzImageTooOld {
                version: 0x0205,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("2.05"), "{err}");
}

#[test]
fn bzimage_2_06_is_accepted_and_limits_the_cmdline_to_its_size() {
    let mem = guest_memory(64 * MIB);
    let f = BzFields {
        version: 0x0206,
        cmdline_size: 16,
        ..BzFields::default()
    };
    let k = TempFile::new("bzImage-206", &bzimage(&f));
    boot(&mem, k.path(), None, "0123456789abcdef").unwrap();
    assert!(matches!(
        boot(&mem, k.path(), None, "0123456789abcdefg").unwrap_err(),
        LinuxBootError::CmdlineTooLong { len: 17, max: 16 }
    ));
}

#[test]
fn bzimage_without_64bit_entry_is_rejected() {
    let mem = guest_memory(64 * MIB);
    let k = TempFile::new(
        "bzImage-32",
        &bzimage(&BzFields {
            xloadflags: 0,
            ..BzFields::default()
        }),
    );
    assert!(matches!(
        boot(&mem, k.path(), None, "").unwrap_err(),
        LinuxBootError::NotA64BitKernel { xloadflags: 0, .. }
    ));
}

#[test]
fn bzimage_whose_decompression_area_passes_ram_does_not_fit() {
    let mem = guest_memory(16 * MIB);
    let k = TempFile::new("bzImage", &bzimage(&BzFields::default()));
    assert!(matches!(
        boot(&mem, k.path(), None, "").unwrap_err(),
        LinuxBootError::KernelDoesNotFit { kernel_end, mem_end, .. }
            if kernel_end == 20 * MIB && mem_end == 16 * MIB
    ));
}

// ---------------------------------------------------------------- errors

#[test]
fn missing_kernel_is_kernel_not_found() {
    let mem = guest_memory(32 * MIB);
    let p = Path::new("/nonexistent/kvmsandbox/vmlinux");
    match boot(&mem, p, None, "").unwrap_err() {
        LinuxBootError::KernelNotFound { path } => assert_eq!(path, p),
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn text_file_is_not_a_kernel() {
    let mem = guest_memory(32 * MIB);
    let t = TempFile::new(
        "notes.txt",
        b"this is not a kernel\n".repeat(100).as_slice(),
    );
    let err = boot(&mem, t.path(), None, "").unwrap_err();
    assert!(matches!(err, LinuxBootError::NotAKernel { .. }), "{err:?}");
    assert!(err.to_string().contains("notes.txt"), "{err}");
    let empty = TempFile::new("empty", b"");
    assert!(matches!(
        boot(&mem, empty.path(), None, "").unwrap_err(),
        LinuxBootError::NotAKernel { .. }
    ));
}

#[test]
fn kernel_format_recognises_without_loading() {
    let elf = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    let bz = TempFile::new("bzImage", &bzimage(&BzFields::default()));
    let txt = TempFile::new("text", b"hello");
    assert_eq!(kernel_format(elf.path()).unwrap(), KernelFormat::Elf);
    assert_eq!(kernel_format(bz.path()).unwrap(), KernelFormat::BzImage);
    assert!(matches!(
        kernel_format(txt.path()),
        Err(LinuxBootError::NotAKernel { .. })
    ));
}

#[test]
fn directory_as_kernel_is_an_io_error() {
    let mem = guest_memory(32 * MIB);
    let err = boot(&mem, &std::env::temp_dir(), None, "").unwrap_err();
    assert!(matches!(err, LinuxBootError::Io { .. }), "{err:?}");
}

#[test]
fn missing_initrd_is_initrd_not_found() {
    let mem = guest_memory(32 * MIB);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    let p = Path::new("/nonexistent/kvmsandbox/initrd.cpio");
    match boot(&mem, k.path(), Some(p), "").unwrap_err() {
        LinuxBootError::InitrdNotFound { path } => assert_eq!(path, p),
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn too_large_initrd_names_sizes() {
    // Kernel ends at 2 MiB + 8 KiB; RAM at 3 MiB: 1 MiB - 8 KiB free.
    let mem = guest_memory(3 * MIB);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    let rd = TempFile::new("initrd", &vec![0u8; MIB as usize]);
    let err = boot(&mem, k.path(), Some(rd.path()), "").unwrap_err();
    match &err {
        LinuxBootError::InitrdTooLarge {
            size, available, ..
        } => {
            assert_eq!((*size, *available), (MIB, MIB - 0x2000));
        }
        e => panic!("unexpected {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&MIB.to_string()) && msg.contains(&(MIB - 0x2000).to_string()),
        "{msg}"
    );
}

#[test]
fn too_long_cmdline_for_elf_kernel() {
    let mem = guest_memory(32 * MIB);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    boot(&mem, k.path(), None, &"a".repeat(2047)).unwrap();
    match boot(&mem, k.path(), None, &"a".repeat(2048)).unwrap_err() {
        LinuxBootError::CmdlineTooLong { len, max } => assert_eq!((len, max), (2048, 2047)),
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn non_ascii_cmdline_is_rejected_with_offset() {
    let mem = guest_memory(32 * MIB);
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    assert!(matches!(
        boot(&mem, k.path(), None, "console=ttyS0\nquiet").unwrap_err(),
        LinuxBootError::InvalidCmdline {
            offset: 13,
            byte: b'\n'
        }
    ));
    assert!(matches!(
        boot(&mem, k.path(), None, "a\0b").unwrap_err(),
        LinuxBootError::InvalidCmdline { offset: 1, byte: 0 }
    ));
}

#[test]
fn memory_with_a_hole_is_rejected() {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[
        (GuestAddress(0), MIB as usize),
        (GuestAddress(2 * MIB), 30 * MIB as usize),
    ])
    .unwrap();
    let k = TempFile::new("vmlinux", &elf_kernel(2, 62, 0x2000));
    assert!(matches!(
        boot(&mem, k.path(), None, "").unwrap_err(),
        LinuxBootError::MemoryLayout { mem_end } if mem_end == 32 * MIB
    ));
}

// ---------------------------------------------------------------- placement (pure)

#[test]
fn place_picks_highest_page_aligned_address() {
    assert_eq!(place(0x1000, 0x10_0000, 0x20_0000), Ok(0x1f_f000));
    assert_eq!(place(0x1001, 0x10_0000, 0x20_0000), Ok(0x1f_e000));
    // Exactly fills [page-rounded kernel end, limit).
    assert_eq!(
        place(0x10_0000 - 0x1000, 0x10_0001, 0x20_0000),
        Ok(0x10_1000)
    );
    assert_eq!(
        place(0x10_0000 - 0x1000 + 1, 0x10_0001, 0x20_0000),
        Err(0x10_0000 - 0x1000)
    );
    // Unaligned limit: end stays below it.
    assert_eq!(place(0x10, 0, 0x1_0008), Ok(0xf000));
    // Kernel above the limit: nothing fits.
    assert_eq!(place(1, 0x30_0000, 0x20_0000), Err(0));
}

// ---------------------------------------------------------------- the real kernel

#[test]
fn real_vmlinux_and_bzimage_load_when_built() {
    // `make test` builds the kernel first; a missing kernel is a failure, not a pass.
    let dir = real_kernel_dir()
        .expect("the real kernel is not built: run `make kernel` (or set KVMSANDBOX_KERNEL_DIR)");
    let mem_end = 256 * MIB;
    let rd = TempFile::new("initrd", &[0x42; 10_000]);

    // vmlinux: entry = e_entry of the file (startup_64, 16 MiB on x86_64).
    let vmlinux = dir.join("vmlinux");
    let head = std::fs::read(&vmlinux).unwrap();
    let e_entry = u64::from_le_bytes(head[24..32].try_into().unwrap());
    let mem = guest_memory(mem_end);
    let entry = boot(&mem, &vmlinux, Some(rd.path()), "console=ttyS0").unwrap();
    assert_eq!(entry.entry, GuestAddress(e_entry));
    // startup_64 sits just above LOAD_PHYSICAL_ADDR (16 MiB) on x86_64.
    assert!(
        (0x100_0000..0x120_0000).contains(&e_entry),
        "e_entry {e_entry:#x}"
    );
    assert_eq!(kernel_format(&vmlinux).unwrap(), KernelFormat::Elf);
    let bp = zero_page(&mem);
    assert_eq!({ bp.hdr.ramdisk_size }, 10_000);
    assert_e820(&bp, mem_end);

    // bzImage: header copied from the file, 64-bit entry at 1 MiB + 0x200.
    let bz = dir.join("bzImage");
    let file = std::fs::read(&bz).unwrap();
    let mem = guest_memory(mem_end);
    assert_eq!(kernel_format(&bz).unwrap(), KernelFormat::BzImage);
    let entry = boot(&mem, &bz, Some(rd.path()), "console=ttyS0").unwrap();
    assert_eq!(entry.entry, GuestAddress(0x10_0200));
    let hdr = zero_page(&mem).hdr;
    assert!({ hdr.version } >= 0x020c, "protocol {:#x}", { hdr.version });
    assert_eq!({ hdr.xloadflags } & 1, 1, "XLF_KERNEL_64");
    let file_version = u16::from_le_bytes([file[0x206], file[0x207]]);
    assert_eq!({ hdr.version }, file_version);
    let initrd_at = u64::from(hdr.ramdisk_image);
    let (pref, init) = ({ hdr.pref_address }, u64::from(hdr.init_size));
    assert!(
        initrd_at >= pref + init,
        "initrd {initrd_at:#x} overlaps the decompressed kernel"
    );
    assert_eq!(read(&mem, initrd_at, 10_000), vec![0x42; 10_000]);
    let setup_len = (usize::from(file[0x1f1]).max(4) + 1) * 512;
    assert_eq!(
        read(&mem, 0x10_0000, 4096),
        file[setup_len..setup_len + 4096]
    );
}
