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

    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::ExpectedFail => "XFAIL",
            Verdict::Fail => "FAIL",
            Verdict::UnexpectedPass => "XPASS",
        }
    }
}
