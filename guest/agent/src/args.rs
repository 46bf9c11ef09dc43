//! Command-line flags: which transport to listen on, where to keep command cgroups.

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

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// Where to listen.
    pub transport: Transport,
    /// A cgroup v2 directory under which the agent makes its commands' cgroups
    /// (default: PID 1 the cgroup2 mount, host mode the agent's own cgroup).
    pub cgroup_root: Option<PathBuf>,
}

/// A bad command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// A flag this agent does not know.
    #[error("unknown argument `{0}` (usage: kvmsandbox-agent [--vsock <port> | --unix <path>] [--cgroup-root <dir>])")]
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
pub fn parse(args: impl IntoIterator<Item = String>, is_pid1: bool) -> Result<Args, ArgsError> {
    let mut it = args.into_iter();
    let mut transport = None;
    let mut cgroup_root = None;
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
            "--cgroup-root" => {
                let v = it.next().ok_or(ArgsError::MissingValue("--cgroup-root"))?;
                cgroup_root = Some(PathBuf::from(v));
            }
            // The kernel passes unknown `key=value` command-line words to init as args.
            _ if is_pid1 => {}
            other => return Err(ArgsError::Unknown(other.to_string())),
        }
    }
    let transport = match transport {
        Some(t) => t,
        None if is_pid1 => Transport::Vsock(DEFAULT_AGENT_PORT),
        None => return Err(ArgsError::NoTransport),
    };
    Ok(Args {
        transport,
        cgroup_root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn parse(v: Vec<String>, pid1: bool) -> Result<Transport, ArgsError> {
        super::parse(v, pid1).map(|a| a.transport)
    }

    #[test]
    fn cgroup_root_is_optional() {
        let a = super::parse(s(&["--unix", "/a", "--cgroup-root", "/cg"]), false).unwrap();
        assert_eq!(a.cgroup_root, Some(PathBuf::from("/cg")));
        assert_eq!(
            super::parse(s(&["--unix", "/a"]), false)
                .unwrap()
                .cgroup_root,
            None
        );
        assert_eq!(
            super::parse(s(&["--unix", "/a", "--cgroup-root"]), false),
            Err(ArgsError::MissingValue("--cgroup-root"))
        );
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
