//! docs/seccomp.md carries the generated allow-lists; this keeps them in step.
//! Regenerate with `KVMSANDBOX_BLESS_SECCOMP_DOC=1 cargo test -p kvmsandbox --lib seccomp_doc`.

use super::super::*;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/seccomp.md");

fn markers(kind: ThreadKind) -> (String, String) {
    let tag = match kind {
        ThreadKind::Vcpu => "vcpu",
        ThreadKind::Vmm => "vmm",
    };
    (
        format!("<!-- BEGIN generated allow-list: {tag} -->\n"),
        format!("<!-- END generated allow-list: {tag} -->"),
    )
}

/// Replaces the generated block of `kind` in `doc`; `None` if the markers are missing.
fn regenerate(doc: &str, kind: ThreadKind) -> Option<String> {
    let (begin, end) = markers(kind);
    let start = doc.find(&begin)? + begin.len();
    let stop = start + doc[start..].find(&end)?;
    Some(format!(
        "{}{}{}",
        &doc[..start],
        allow_list_markdown(kind),
        &doc[stop..]
    ))
}

#[test]
fn seccomp_doc_allow_lists_are_current() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let mut fresh = doc.clone();
    for kind in [ThreadKind::Vcpu, ThreadKind::Vmm] {
        fresh = regenerate(&fresh, kind).unwrap_or_else(|| panic!("{DOC}: no markers for {kind}"));
    }
    if fresh != doc && std::env::var_os("KVMSANDBOX_BLESS_SECCOMP_DOC").is_some() {
        std::fs::write(DOC, &fresh).unwrap();
        return;
    }
    assert!(
        fresh == doc,
        "{DOC} is stale: rerun with KVMSANDBOX_BLESS_SECCOMP_DOC=1 to regenerate its tables"
    );
}

#[test]
fn seccomp_doc_markdown_lists_every_entry() {
    for kind in [ThreadKind::Vcpu, ThreadKind::Vmm] {
        let md = allow_list_markdown(kind);
        for (name, reason) in allowed_syscalls(kind) {
            assert!(
                md.contains(&format!("| `{name}` |")) && md.contains(reason),
                "{kind} {name}"
            );
        }
        for value in allowed_ioctls(kind) {
            assert!(md.contains(value.name), "{kind} {}", value.name);
        }
    }
}
