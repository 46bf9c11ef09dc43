//! The micro guest's clock without a TSC rate from KVM (issue 21 item 13): the
//! guest calibrates the TSC against the PIT, so WASI clocks advance at the
//! host's pace. `clock=calibrate` makes the guest ignore the rate the host
//! passed, as if KVM had reported none. Needs /dev/kvm.

use std::time::{Duration, Instant};

use kvmsandbox::{Sandbox, VmConfig, WasmOutcome, WasmRequest};

fn clock_wait() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/clock_wait.wat");
    wat::parse_file(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `clock_wait` (which waits 100 ms by the guest's clock) and returns the
/// guest's realtime reading at its start, in ns since the epoch.
fn guest_now(sb: &Sandbox) -> u64 {
    let out = sb
        .run_wasm(
            &WasmRequest {
                module: clock_wait(),
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(
        out.outcome,
        WasmOutcome::Exit(0),
        "console:\n{}",
        sb.console_output()
    );
    let bytes: [u8; 8] = out
        .stdout
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("stdout {:?}", out.stdout));
    u64::from_le_bytes(bytes)
}

/// The calibrated and the host's TSC rates from the guest's console line.
fn calibration(console: &str) -> (u64, u64) {
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix("clock: TSC calibrated against the PIT: "))
        .unwrap_or_else(|| panic!("no calibration line:\n{console}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    match numbers[..] {
        [calibrated, host] => (calibrated, host),
        _ => panic!("unexpected calibration line {line:?}"),
    }
}

#[test]
fn without_a_tsc_rate_the_guest_calibrates_and_its_clock_keeps_the_hosts_pace() {
    let sb = Sandbox::start(VmConfig::micro().cmdline("clock=calibrate")).unwrap();
    let console = sb.console_output();
    let (calibrated, host) = calibration(&console);
    eprintln!("calibrated TSC rate {calibrated} kHz, KVM's {host} kHz");
    if host != 0 {
        let error = calibrated.abs_diff(host) as f64 / host as f64;
        assert!(
            error < 0.05,
            "calibrated {calibrated} kHz, KVM says {host} kHz"
        );
    }
    let t = Instant::now();
    let first = guest_now(&sb);
    let one_run = t.elapsed();
    // A deadline loop of 100 ms by the guest's clock ended.
    assert!(
        one_run >= Duration::from_millis(50),
        "a 100 ms wait took {one_run:?} of host time"
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = t.elapsed().as_secs_f64();
    let second = guest_now(&sb);
    let after = t.elapsed().as_secs_f64();
    // The two readings were taken between (before - one_run) and after seconds
    // of host time apart.
    let (lo, hi) = (before - one_run.as_secs_f64(), after);
    let guest = second.saturating_sub(first) as f64 / 1e9;
    eprintln!(
        "guest clock advanced {guest:.3} s between the runs; host: between {lo:.3} s and {hi:.3} s"
    );
    // Generous: a 25 % rate error is still caught as implausible.
    assert!(
        guest >= lo * 0.75 && guest <= hi * 1.25,
        "guest clock advanced {guest:.3} s, host between {lo:.3} and {hi:.3} s"
    );
}
