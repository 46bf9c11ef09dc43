//! Cost of the micro guest's primitives under this host's KVM (`test=bench`),
//! timed from console line arrival. Informational: run with `--nocapture` to see
//! the numbers; asserts only that every phase ran. Needs /dev/kvm.

use kvmsandbox::{Vm, VmConfig, VmExit};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[test]
fn guest_primitive_costs() {
    let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let l2 = lines.clone();
    let cfg = VmConfig::micro()
        .cmdline("test=bench")
        .on_console_line(move |l| l2.lock().unwrap().push((Instant::now(), l.to_string())));
    let vm = Vm::start(cfg).unwrap();
    assert_eq!(vm.wait().unwrap(), VmExit::Exited(0));
    let v = lines.lock().unwrap();
    let mut phases = 0;
    for w in v.windows(2) {
        if w[0].1.starts_with("bench ") && w[0].1 != "bench done" {
            let it: u32 = w[0].1.rsplit(' ').next().unwrap().parse().unwrap();
            eprintln!("{:<24} {:?} per iteration", w[0].1, (w[1].0 - w[0].0) / it);
            phases += 1;
        }
    }
    assert_eq!(phases, 8, "{v:?}");
    assert_eq!(v.last().map(|l| l.1.as_str()), Some("bench done"));
}
