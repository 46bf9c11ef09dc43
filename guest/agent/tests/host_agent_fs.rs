//! The files API (stat, list, mkdir, remove, rename, streamed upload/download)
//! against the Linux agent running as a host process, through the host client and
//! through `Sandbox`.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, SystemTime};

use common::{fnv, noise, HostAgent, TIMEOUT};
use kvmsandbox::agent::{AgentError, AgentLimits, ErrorCode, FileKind};
use kvmsandbox::{Error, ErrorKind, Sandbox};

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kvmsb-fs-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn remote(e: &AgentError) -> Option<ErrorCode> {
    e.remote_code()
}

#[test]
fn stat_list_mkdir_rename_remove() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let root = scratch("ops");
    let r = root.to_str().unwrap();

    c.make_dir(&format!("{r}/a/b/c"), 0o750, true).unwrap();
    // `parents` tolerates an existing directory; without it that is AlreadyExists.
    c.make_dir(&format!("{r}/a/b/c"), 0o750, true).unwrap();
    let e = c.make_dir(&format!("{r}/a"), 0o755, false).unwrap_err();
    assert_eq!(remote(&e), Some(ErrorCode::AlreadyExists), "{e}");
    let e = c.make_dir(&format!("{r}/x/y"), 0o755, false).unwrap_err();
    assert_eq!(remote(&e), Some(ErrorCode::NotFound), "{e}");

    std::fs::write(root.join("a/f.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink("f.txt", root.join("a/l")).unwrap();

    let d = c.stat(&format!("{r}/a/b/c"), false).unwrap();
    assert_eq!(
        (d.name.as_str(), d.kind, d.mode),
        ("c", FileKind::Dir, 0o750)
    );
    let f = c.stat(&format!("{r}/a/f.txt"), false).unwrap();
    assert_eq!((f.kind, f.size), (FileKind::File, 5));
    let age = SystemTime::now().duration_since(f.modified).unwrap();
    assert!(age < Duration::from_secs(60), "mtime {age:?} ago");
    let l = c.stat(&format!("{r}/a/l"), false).unwrap();
    assert_eq!(
        (l.kind, l.link_target.as_deref()),
        (FileKind::Symlink, Some("f.txt"))
    );
    let followed = c.stat(&format!("{r}/a/l"), true).unwrap();
    assert_eq!((followed.kind, followed.size), (FileKind::File, 5));
    let e = c.stat(&format!("{r}/nope"), false).unwrap_err();
    assert_eq!(remote(&e), Some(ErrorCode::NotFound), "{e}");

    let mut listing: Vec<(String, FileKind)> = c
        .list_dir(&format!("{r}/a"))
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    listing.sort();
    assert_eq!(
        listing,
        vec![
            ("b".to_string(), FileKind::Dir),
            ("f.txt".to_string(), FileKind::File),
            ("l".to_string(), FileKind::Symlink),
        ]
    );
    let e = c.list_dir(&format!("{r}/a/f.txt")).unwrap_err();
    assert!(
        remote(&e).is_some(),
        "listing a file must be a guest error: {e}"
    );

    c.rename(&format!("{r}/a/f.txt"), &format!("{r}/a/g.txt"))
        .unwrap();
    assert_eq!(std::fs::read(root.join("a/g.txt")).unwrap(), b"hello");
    let e = c
        .rename(&format!("{r}/nope"), &format!("{r}/x"))
        .unwrap_err();
    assert_eq!(remote(&e), Some(ErrorCode::NotFound), "{e}");

    // A non-empty directory needs `recursive`.
    assert!(c.remove(&format!("{r}/a"), false).is_err());
    assert!(root.join("a/b/c").exists());
    c.remove(&format!("{r}/a/l"), false).unwrap();
    assert!(
        root.join("a/g.txt").exists(),
        "removing a link leaves its target"
    );
    c.remove(&format!("{r}/a"), true).unwrap();
    assert!(!root.join("a").exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn big_directory_listing_streams_in_frames_and_is_capped() {
    let agent = HostAgent::start();
    let root = scratch("big");
    let n = 1500; // several DirEntries frames
    for i in 0..n {
        std::fs::write(root.join(format!("file-{i:05}")), b"").unwrap();
    }
    let mut c = agent.client();
    let names: BTreeMap<String, u64> = c
        .list_dir(root.to_str().unwrap())
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.size))
        .collect();
    assert_eq!(names.len(), n);
    assert!(names.contains_key("file-01499"));

    // The listing counts against the output cap like any collected output.
    c.set_limits(AgentLimits::default().with_max_output(4096));
    let e = c.list_dir(root.to_str().unwrap()).unwrap_err();
    assert!(matches!(e, AgentError::OutputLimit { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn sandbox_upload_and_download_stream_big_files() {
    let agent = HostAgent::start();
    let sb = Sandbox::attach_host_agent(&agent.sock, TIMEOUT).unwrap();
    let root = scratch("xfer");
    let src = root.join("src.bin");
    let data = noise(9 * 1024 * 1024 + 7, 3);
    std::fs::write(&src, &data).unwrap();
    let guest = root.join("guest.bin");
    let n = sb.upload(&src, guest.to_str().unwrap(), 0o600).unwrap();
    assert_eq!(n, data.len() as u64);
    let info = sb.stat(guest.to_str().unwrap(), true).unwrap();
    assert_eq!((info.size, info.mode), (data.len() as u64, 0o600));
    let back = root.join("back.bin");
    assert_eq!(sb.download(guest.to_str().unwrap(), &back).unwrap(), n);
    let mut got = Vec::new();
    std::fs::File::open(&back)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(fnv(&got), fnv(&data));

    // A missing host file is a typed host-file error naming the path.
    let e = sb
        .upload(&root.join("missing"), "/tmp/x", 0o644)
        .unwrap_err();
    assert!(matches!(e, Error::HostFile { .. }), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
    assert_eq!(e.kind(), ErrorKind::Io);
    // A missing guest file is NotFound.
    let e = sb
        .download(&format!("{}/nope", root.display()), &root.join("n"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let _ = std::fs::remove_dir_all(&root);
}
