//! Command-line flags: which transport to listen on.

use std::path::PathBuf;

use kvmsandbox_proto::DEFAULT_AGENT_PORT;

/// Where the agent listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// AF_VSOCK on this port (the guest case).
    Vsock(u32),
    /// A Unix socket at this path (host-process mode, for tests).
    Unix(PathBuf),
}

/// A bad command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// A flag this agent does not know.
    #[error("unknown argument `{0}` (usage: kvmsandbox-agent [--vsock <port> | --unix <path>])")]
    Unknown(String),
    /// A flag without its value.
    #[error("`{0}` needs a value")]
    MissingValue(&'static str),
    /// A port that is not a u32.
    #[error("invalid vsock port `{0}`")]
    BadPort(String),
    /// No transport given and not running as PID 1.
    #[error("no transport given: pass --vsock <port> or --unix <path>")]
    NoTransport,
}

/// Parses `args` (without the program name). As PID 1 the default is vsock.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    is_pid1: bool,
) -> Result<Transport, ArgsError> {
    let mut it = args.into_iter();
    let mut transport = None;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--vsock" => {
                let v = it.next().ok_or(ArgsError::MissingValue("--vsock"))?;
                let port = v.parse().map_err(|_| ArgsError::BadPort(v.clone()))?;
                transport = Some(Transport::Vsock(port));
            }
            "--unix" => {
                let v = it.next().ok_or(ArgsError::MissingValue("--unix"))?;
                transport = Some(Transport::Unix(PathBuf::from(v)));
            }
            // The kernel passes unknown `key=value` command-line words to init as args.
            _ if is_pid1 => {}
            other => return Err(ArgsError::Unknown(other.to_string())),
        }
    }
    match transport {
        Some(t) => Ok(t),
        None if is_pid1 => Ok(Transport::Vsock(DEFAULT_AGENT_PORT)),
        None => Err(ArgsError::NoTransport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_both_transports_and_defaults() {
        assert_eq!(parse(s(&["--vsock", "5"]), false), Ok(Transport::Vsock(5)));
        assert_eq!(
            parse(s(&["--unix", "/a"]), false),
            Ok(Transport::Unix("/a".into()))
        );
        assert_eq!(
            parse(s(&[]), true),
            Ok(Transport::Vsock(DEFAULT_AGENT_PORT))
        );
        assert_eq!(parse(s(&[]), false), Err(ArgsError::NoTransport));
        assert_eq!(
            parse(s(&["--vsock", "x"]), false),
            Err(ArgsError::BadPort("x".into()))
        );
        assert_eq!(
            parse(s(&["--unix"]), false),
            Err(ArgsError::MissingValue("--unix"))
        );
        assert_eq!(
            parse(s(&["-z"]), false),
            Err(ArgsError::Unknown("-z".into()))
        );
    }
}
