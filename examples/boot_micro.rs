//! Boots the embedded micro guest and prints what it said and how long each boot
//! phase took. `cargo run -p kvmsandbox --example boot_micro`
use kvmsandbox::{Vm, VmConfig, VmExit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let vm = Vm::start(VmConfig::micro().vcpus(2).cmdline("test=exit"))?;
    let exit = vm.wait()?;
    println!("--- guest console ---\n{}", vm.console_output().trim_end());
    println!("--- host: {} ---", vm.host_kind());
    println!("boot phases (from create):\n{}", vm.timings());
    assert_eq!(exit, VmExit::Exited(0));
    Ok(())
}
