//! The expected-failures list and each test's verdict against it. The list
//! must stay true: a listed test that passes is an error too, so a fix shows
//! up as a list to shorten.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Why the list cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot read the expected-failures list {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: expected `<test id> <reason>`, got {text:?}")]
    Syntax {
        path: PathBuf,
        line: usize,
        text: String,
    },
}

/// Test id -> why it cannot pass yet. Lines are `<id> <reason>`; `#` starts a
/// comment line.
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, ListError> {
    let text = fs::read_to_string(path).map_err(|source| ListError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// [`load`]'s parser; `path` only names the list in errors.
pub fn parse(path: &Path, text: &str) -> Result<BTreeMap<String, String>, ListError> {
    let mut list = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(char::is_whitespace) {
            Some((id, reason)) if !reason.trim().is_empty() => {
                list.insert(id.to_string(), reason.trim().to_string());
            }
            _ => {
                return Err(ListError::Syntax {
                    path: path.to_path_buf(),
                    line: index + 1,
                    text: line.to_string(),
                })
            }
        }
    }
    Ok(list)
}

/// A test's result judged against the list.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Failed, and listed.
    ExpectedFail,
    /// Failed, not listed: the run fails.
    Fail,
    /// Passed while listed: the run fails (the list is out of date).
    UnexpectedPass,
}

impl Verdict {
    pub fn of(passed: bool, listed: bool) -> Verdict {
        match (passed, listed) {
            (true, false) => Verdict::Pass,
            (true, true) => Verdict::UnexpectedPass,
            (false, true) => Verdict::ExpectedFail,
            (false, false) => Verdict::Fail,
        }
    }

    /// Whether this result alone makes the whole run fail.
    pub fn fails_the_run(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::UnexpectedPass)
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::ExpectedFail => "XFAIL",
            Verdict::Fail => "FAIL",
            Verdict::UnexpectedPass => "XPASS",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unlisted_failures_and_listed_passes_fail_the_run() {
        assert!(!Verdict::of(true, false).fails_the_run());
        assert!(!Verdict::of(false, true).fails_the_run());
        assert_eq!(Verdict::of(false, false), Verdict::Fail);
        assert!(Verdict::of(false, false).fails_the_run());
        assert_eq!(Verdict::of(true, true), Verdict::UnexpectedPass);
        assert!(Verdict::of(true, true).fails_the_run());
    }

    #[test]
    fn the_list_is_ids_with_reasons() {
        let text = "# comment\n\nrust/a  needs a socket \nc/b why\n";
        let list = parse(Path::new("list"), text).map_err(|e| e.to_string());
        let list = list.unwrap_or_default();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list.get("rust/a").map(String::as_str),
            Some("needs a socket")
        );
        assert_eq!(list.get("c/b").map(String::as_str), Some("why"));
    }

    #[test]
    fn an_entry_without_a_reason_is_refused() {
        let error = parse(Path::new("list"), "ok/a fine\nrust/a\n");
        assert!(matches!(error, Err(ListError::Syntax { line: 2, .. })));
    }
}
