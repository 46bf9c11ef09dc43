//! Runs one WASI module on the host with a host directory copied in as the
//! preopen `/` (what `make wasi-conformance` does in the guest, minus the
//! VM): a quick way to check the file system calls against a program.
//! `cargo run --release --example run_dir -- MODULE.wasm DIR [ARGS...]`;
//! prints the module's output, its outcome and the directory's contents
//! after the run.

use kvmsandbox_wasm_runner::{
    run_with_dirs, Dirs, EntryKind, FsEntry, FsLimits, Preopen, RunRequest, Stream,
};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Every file, directory and symlink below `dir` (relative paths, parents first).
fn collect(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>, u8)>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<_> = read.flatten().collect();
    names.sort_by_key(|entry| entry.file_name());
    for entry in names {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            out.push((name, target.to_string_lossy().into_owned().into_bytes(), 2));
        } else if meta.is_dir() {
            out.push((name.clone(), Vec::new(), 1));
            collect(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(entry.path()).unwrap_or_default(), 0));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [module, dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: run_dir MODULE.wasm DIR [ARGS...]");
        std::process::exit(2);
    };
    let module_bytes = std::fs::read(module).expect("module readable");
    let mut items = Vec::new();
    collect(Path::new(dir), "", &mut items);
    let entries: Vec<FsEntry> = items
        .iter()
        .map(|(path, bytes, kind)| FsEntry {
            path: path.as_bytes(),
            kind: match kind {
                0 => EntryKind::File(bytes),
                1 => EntryKind::Dir,
                _ => EntryKind::Symlink(bytes),
            },
        })
        .collect();
    let name = Path::new(module)
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    let mut argv: Vec<&[u8]> = vec![name.as_bytes()];
    argv.extend(rest.iter().map(|arg| arg.as_bytes()));
    let clock = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    };
    let req = RunRequest {
        module: &module_bytes,
        args: &argv,
        env: &[],
        stdin: b"",
        fuel: Some(20_000_000_000),
        max_memory_bytes: Some(256 << 20),
        random_seed: [7; 32],
        clock: &clock,
        clock_resolution_ns: Some(1_000),
    };
    let preopens = [Preopen {
        guest_path: b"/",
        read_only: false,
        entries: &entries,
    }];
    let dirs = Dirs {
        preopens: &preopens,
        limits: FsLimits::default(),
    };
    let mut sink = |stream: Stream, bytes: &[u8]| match stream {
        Stream::Stdout => print!("{}", String::from_utf8_lossy(bytes)),
        Stream::Stderr => eprint!("{}", String::from_utf8_lossy(bytes)),
    };
    match run_with_dirs(&req, &dirs, &mut sink) {
        Ok((outcome, stats, out)) => {
            println!("outcome: {outcome:?}");
            eprintln!("fuel: {:?}", stats.fuel_consumed);
            for dir in out {
                for entry in dir.entries {
                    println!(
                        "  {} {:?}",
                        String::from_utf8_lossy(&entry.path),
                        entry.kind
                    );
                }
            }
        }
        Err(error) => println!("error: {error}"),
    }
}
