//! A new VM from a snapshot (fork): what `Vm::start` does, minus loading and
//! booting a guest. RAM is the snapshot's image mapped `MAP_PRIVATE` (pages shared
//! copy-on-write with every other VM of that snapshot, nothing copied), mapped
//! before the memory slot is set and the slot before `KVM_CREATE_IRQCHIP` as on the
//! cold path; devices are built from the caller's config (its own vsock socket,
//! its own disk files) and take the snapshot's state; the vCPUs take the
//! snapshot's registers instead of a boot entry. Every mismatch between config
//! and snapshot is found before a vCPU runs; a failure drops the half-built VM.

use super::*;

fn create(e: impl Into<Error>) -> SnapshotError {
    SnapshotError::Create(Box::new(e.into()))
}

impl Vm {
    /// Builds and starts a VM that continues from `snap`. `cfg` supplies what a
    /// snapshot does not hold (vsock socket path, disk files, seccomp policy,
    /// console callback); its guest image, command line and ready marker are not
    /// used (the guest is already running). Its shape must match the snapshot:
    /// vCPU count, memory size, devices (kinds in order, disk sizes, read-only
    /// flags, ids), else a typed error naming both values. Returns once the
    /// vCPUs run; the console log starts empty (what the guest printed before
    /// the snapshot belongs to the VM it was taken of).
    pub fn from_snapshot(
        mut cfg: VmConfig,
        snap: &VmSnapshot,
    ) -> std::result::Result<Vm, SnapshotError> {
        let t0 = Instant::now();
        cfg.validate().map_err(create)?;
        if snap.version != VM_SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: snap.version,
            });
        }
        if snap.vcpus.len() != cfg.vcpus as usize {
            return Err(SnapshotError::VcpuCount {
                snapshot: snap.vcpus.len(),
                vm: cfg.vcpus as usize,
            });
        }
        if snap.memory.size() != cfg.mem_bytes() {
            return Err(image::MemorySnapshotError::SizeMismatch {
                image: snap.memory.size(),
                ram: cfg.mem_bytes(),
            }
            .into());
        }
        let device_count = cfg.disks.len() + usize::from(cfg.vsock.is_some());
        if snap.devices.len() != device_count {
            return Err(SnapshotError::DeviceCount {
                snapshot: snap.devices.len(),
                vm: device_count,
            });
        }
        kick::install().map_err(create)?;
        let host = HostKind::detect();
        let kvm = kvm::open(&cfg.kvm_device).map_err(create)?;
        if !kvm.check_extension(kvm_ioctls::Cap::SyncMmu) {
            return Err(SnapshotError::NoSyncMmu);
        }
        let is_linux = matches!(cfg.guest, Guest::Linux { .. });
        let console = ConsoleLog::new(String::new(), PANIC_PREFIXES);
        let state = Arc::new(RunState::new(console, t0));

        let vm = kvm
            .create_vm()
            .map_err(ioctl("KVM_CREATE_VM"))
            .map_err(create)?;
        vm.set_tss_address(0xfffb_d000)
            .map_err(ioctl("KVM_SET_TSS_ADDR"))
            .map_err(create)?;
        vm.set_identity_map_address(0xfffb_c000)
            .map_err(ioctl("KVM_SET_IDENTITY_MAP_ADDR"))
            .map_err(create)?;
        state.mark(|t| &mut t.vm_created);

        let mem = memory::create(cfg.mem_bytes()).map_err(create)?;
        snap.memory.map_over(&mem)?;
        memory::register(&vm, &mem).map_err(create)?;
        vm.create_irq_chip()
            .map_err(ioctl("KVM_CREATE_IRQCHIP"))
            .map_err(create)?;
        let has_pit = snap.pit.is_some();
        if has_pit {
            let pit = kvm_bindings::kvm_pit_config {
                flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit)
                .map_err(ioctl("KVM_CREATE_PIT2"))
                .map_err(create)?;
        }
        state.mark(|t| &mut t.memory_mapped);

        let (pio, mut mmio) = Self::legacydevices(&vm, &state).map_err(create)?;
        let placed = device_manager::place(&vm, &mem, &mut mmio, &cfg.disks, cfg.vsock.as_ref())
            .map_err(create)?;
        {
            let mut transports: Vec<_> = placed
                .transports
                .iter()
                .map(|t| crate::devices::bus::lock(t))
                .collect();
            check_devices(&transports, &snap.devices)?;
            restore_devices(&mut transports, &snap.devices)?;
        }

        snap.clock.apply(&vm)?;
        snap.irqchip.apply(&vm)?;
        if let Some(p) = &snap.pit {
            p.apply(&vm)?;
        }
        let vcpus = cfg.vcpus as u8;
        let mut fds = Vec::with_capacity(usize::from(vcpus));
        for (i, vcpu) in (0..vcpus).zip(&snap.vcpus) {
            let fd = Vm::create_vcpu(&kvm, &vm, i, vcpus, host).map_err(create)?;
            vcpu.apply(&fd, i)?;
            fds.push(fd);
        }
        state.mark(|t| &mut t.image_loaded);

        let parts = Parts {
            kvm,
            vm,
            mem,
            state,
            devices: placed.transports,
            host,
            marker: String::new(),
            image: Some(snap.memory.clone()),
            has_pit,
            is_linux,
            fds,
            pio,
            mmio,
        };
        let vm_handle =
            Vm::assemble_and_launch(parts, &mut cfg, &FailPoint::from_env()).map_err(create)?;
        Ok(vm_handle.started())
    }
}
