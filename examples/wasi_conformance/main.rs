//! Runs the WASI preview 1 conformance suite (WebAssembly/wasi-testsuite's
//! prebuilt tests) against the micro guest's WASM runner, by the suite's rules,
//! and holds the result to `tests/wasi-conformance/expected-failures.txt`.
//!
//! `make wasi-conformance WASI_TESTSUITE=DIR`, or
//! `cargo run -p kvmsandbox --example wasi_conformance -- DIR [--jobs N]
//! [--timeout SECS] [--filter TEXT] [--expected FILE]`.
//!
//! Under an emulating host a test can take seconds to minutes, so tests run
//! `--jobs` at a time (default 2), each worker on its own sandbox, each test
//! under a wall-clock limit; a sandbox whose run timed out or failed is
//! replaced before the next test. The limit (default [`DEFAULT_TIMEOUT`]) is
//! only a "does not hang" bound: on a loaded 2-core host the slowest test
//! (`rust/fd_readdir`, 1000 files listed in small buffers) needs ~40 s alone
//! and over 60 s while another test runs beside it.

mod expect;
mod suite;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use expect::Verdict;
use kvmsandbox::{Sandbox, WasmDir, WasmOutcome, WasmRequest};
use suite::Test;

struct Options {
    suite: PathBuf,
    expected: PathBuf,
    jobs: usize,
    timeout: Duration,
    filter: Option<String>,
}

/// Each test's wall-clock limit unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

const USAGE: &str =
    "usage: wasi_conformance SUITE_DIR [--jobs N] [--timeout SECS] [--filter TEXT] [--expected FILE]";

fn parse_options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        suite: PathBuf::new(),
        expected: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/wasi-conformance/expected-failures.txt"),
        jobs: 2,
        timeout: DEFAULT_TIMEOUT,
        filter: None,
    };
    let mut suite = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--jobs" => {
                let text = value("--jobs")?;
                options.jobs = text
                    .parse()
                    .ok()
                    .filter(|jobs| *jobs > 0)
                    .ok_or(format!("--jobs {text:?} is not a positive number"))?;
            }
            "--timeout" => {
                let text = value("--timeout")?;
                let secs: u64 = text
                    .parse()
                    .map_err(|_| format!("--timeout {text:?} is not a number of seconds"))?;
                options.timeout = Duration::from_secs(secs);
            }
            "--filter" => options.filter = Some(value("--filter")?),
            "--expected" => options.expected = PathBuf::from(value("--expected")?),
            _ if suite.is_none() && !arg.starts_with("--") => suite = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    options.suite = suite.ok_or(USAGE.to_string())?;
    if !options.suite.is_dir() {
        return Err(format!(
            "the WASI test suite is not at {} (set WASI_TESTSUITE=DIR to a checkout of \
             WebAssembly/wasi-testsuite's prebuilt tests)",
            options.suite.display()
        ));
    }
    Ok(options)
}

/// What running one test showed.
struct Ran {
    passed: bool,
    detail: String,
    took: Duration,
}

fn request(test: &Test) -> Result<WasmRequest, String> {
    let module = std::fs::read(&test.wasm)
        .map_err(|error| format!("cannot read {}: {error}", test.wasm.display()))?;
    let mut args = vec![test.file_name.clone()];
    args.extend(test.args.iter().cloned());
    let folder = test.wasm.parent().unwrap_or(Path::new("."));
    let mut dirs = Vec::new();
    for (dir, guest_path) in &test.dirs {
        // A fresh copy per test (the module may change it), without the
        // suite's `*.cleanup` left-overs.
        let mut copy =
            WasmDir::from_host(guest_path.as_str(), folder.join(dir), false, MAX_DIR_BYTES)
                .map_err(|error| format!("cannot copy {dir}: {error}"))?;
        copy.files
            .retain(|file| !file.path.split('/').any(|part| part.ends_with(".cleanup")));
        dirs.push(copy);
    }
    Ok(WasmRequest {
        module,
        args,
        env: test.env.clone(),
        dirs,
        ..Default::default()
    })
}

/// Most bytes of a test's directory copied into the guest.
const MAX_DIR_BYTES: u64 = 16 << 20;

/// Runs `test` on `sandbox` (made first if there is none), dropping the
/// sandbox if the run did not end with a module outcome.
fn run_one(test: &Test, sandbox: &mut Option<Sandbox>, timeout: Duration) -> Ran {
    let started = Instant::now();
    let ran = |passed, detail: String| Ran {
        passed,
        detail,
        took: started.elapsed(),
    };
    let req = match request(test) {
        Ok(req) => req,
        Err(detail) => return ran(false, detail),
    };
    let sb = match sandbox {
        Some(sb) => sb,
        None => match Sandbox::micro() {
            Ok(sb) => sandbox.insert(sb),
            Err(error) => return ran(false, format!("cannot start a sandbox: {error}")),
        },
    };
    let output = match sb.run_wasm(&req, Some(timeout)) {
        Ok(output) => output,
        Err(error) => {
            *sandbox = None;
            return ran(false, format!("{error}"));
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let tail: String = stderr.chars().take(160).collect();
    let mut problems = Vec::new();
    match &output.outcome {
        WasmOutcome::Exit(code) if *code == test.exit_code => {}
        WasmOutcome::Exit(code) => {
            problems.push(format!("exit code {code}, expected {}", test.exit_code))
        }
        other => problems.push(format!("{other:?}")),
    }
    if let Some(expected) = &test.stdout {
        if output.stdout != expected.as_bytes() {
            problems.push(format!(
                "stdout {:?}, expected {expected:?}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
    }
    if problems.is_empty() {
        return ran(true, String::new());
    }
    if !tail.is_empty() {
        problems.push(format!("stderr: {tail}"));
    }
    ran(false, problems.join("; "))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("wasi_conformance: {message}");
            return ExitCode::from(2);
        }
    };
    let listed = match expect::load(&options.expected) {
        Ok(listed) => listed,
        Err(error) => {
            eprintln!("wasi_conformance: {error}");
            return ExitCode::from(2);
        }
    };
    let mut tests = match suite::discover(&options.suite) {
        Ok(tests) => tests,
        Err(error) => {
            eprintln!("wasi_conformance: {error}");
            return ExitCode::from(2);
        }
    };
    let mut stale: Vec<&String> = Vec::new();
    if let Some(filter) = &options.filter {
        tests.retain(|test| test.id.contains(filter.as_str()));
        if tests.is_empty() {
            eprintln!("wasi_conformance: no test id contains {filter:?}");
            return ExitCode::from(2);
        }
    } else {
        stale = listed
            .keys()
            .filter(|id| !tests.iter().any(|test| &test.id == *id))
            .collect();
    }
    println!(
        "running {} WASI tests from {}, {} at a time, {} s each at most",
        tests.len(),
        options.suite.display(),
        options.jobs,
        options.timeout.as_secs()
    );
    let started = Instant::now();
    let queue = Arc::new(Mutex::new(tests.into_iter().collect::<VecDeque<_>>()));
    let (tx, rx) = mpsc::channel::<(Test, Ran)>();
    let workers: Vec<_> = (0..options.jobs)
        .map(|_| {
            let queue = queue.clone();
            let tx = tx.clone();
            let timeout = options.timeout;
            std::thread::spawn(move || {
                let mut sandbox = None;
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(test) = next else { break };
                    let ran = run_one(&test, &mut sandbox, timeout);
                    if tx.send((test, ran)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut failed_the_run = false;
    for (test, ran) in rx {
        let verdict = Verdict::of(ran.passed, listed.contains_key(&test.id));
        *counts.entry(verdict.label()).or_default() += 1;
        failed_the_run |= verdict.fails_the_run();
        let note = match verdict {
            Verdict::Pass => String::new(),
            Verdict::UnexpectedPass => format!(
                "  listed as expected to fail ({}): remove it from the list",
                listed.get(&test.id).map(String::as_str).unwrap_or_default()
            ),
            Verdict::ExpectedFail | Verdict::Fail => format!("  {}", ran.detail),
        };
        println!(
            "{:<5} {:<48} {:>6.1} s{note}",
            verdict.label(),
            test.id,
            ran.took.as_secs_f64()
        );
    }
    for worker in workers {
        let _ = worker.join();
    }
    for id in &stale {
        println!("STALE {id}: on the expected-failures list but not in the suite");
    }
    let count = |label| counts.get(label).copied().unwrap_or(0);
    let passed = count("PASS") + count("XPASS");
    let failed = count("FAIL") + count("XFAIL");
    println!(
        "{passed} passed, {failed} failed ({} expected failures) in {:.0} s",
        count("XFAIL"),
        started.elapsed().as_secs_f64()
    );
    if failed_the_run || !stale.is_empty() {
        println!(
            "wasi_conformance: {} unexpected failures, {} unexpected passes, {} stale list entries",
            count("FAIL"),
            count("XPASS"),
            stale.len()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
