//! Command line of the backend binary. Hand-parsed: three options do not justify
//! an argument-parsing dependency.

use std::path::PathBuf;

use kvmsandbox::devices::virtio::vsock::DEFAULT_GUEST_CID;

/// What to serve, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The vhost-user socket this backend listens on (QEMU's `-chardev socket,path=`).
    pub socket: PathBuf,
    /// The hybrid vsock socket the host side connects to (`CONNECT <port>\n`).
    pub uds_path: PathBuf,
    /// The guest's context id.
    pub guest_cid: u64,
}

/// A command line that cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// An option this program does not have.
    #[error("unknown argument `{0}`; {USAGE}")]
    Unknown(String),
    /// An option given without its value.
    #[error("{0} needs a value; {USAGE}")]
    MissingValue(&'static str),
    /// A required option was not given.
    #[error("{0} is required; {USAGE}")]
    Required(&'static str),
    /// `--guest-cid` is not a number.
    #[error("--guest-cid `{0}` is not a number")]
    Cid(String),
}

/// One line of help.
pub const USAGE: &str =
    "usage: kvmsandbox-vhost-vsock --socket VHOST_USER_SOCKET --uds-path HYBRID_SOCKET [--guest-cid N]";

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
    let mut socket = None;
    let mut uds_path = None;
    let mut guest_cid = DEFAULT_GUEST_CID;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" => socket = Some(it.next().ok_or(ArgsError::MissingValue("--socket"))?),
            "--uds-path" => {
                uds_path = Some(it.next().ok_or(ArgsError::MissingValue("--uds-path"))?)
            }
            "--guest-cid" => {
                let v = it.next().ok_or(ArgsError::MissingValue("--guest-cid"))?;
                guest_cid = v.parse().map_err(|_| ArgsError::Cid(v))?;
            }
            _ => return Err(ArgsError::Unknown(a)),
        }
    }
    Ok(Args {
        socket: socket.ok_or(ArgsError::Required("--socket"))?.into(),
        uds_path: uds_path.ok_or(ArgsError::Required("--uds-path"))?.into(),
        guest_cid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_all_options_and_defaults_the_cid() {
        let a = parse(v(&["--socket", "/a", "--uds-path", "/b"])).unwrap();
        assert_eq!(a.socket, PathBuf::from("/a"));
        assert_eq!(a.uds_path, PathBuf::from("/b"));
        assert_eq!(a.guest_cid, DEFAULT_GUEST_CID);
        let a = parse(v(&[
            "--guest-cid",
            "7",
            "--socket",
            "/a",
            "--uds-path",
            "/b",
        ]))
        .unwrap();
        assert_eq!(a.guest_cid, 7);
    }

    #[test]
    fn rejects_bad_command_lines() {
        assert_eq!(
            parse(v(&["--uds-path", "/b"])),
            Err(ArgsError::Required("--socket"))
        );
        assert_eq!(
            parse(v(&["--socket"])),
            Err(ArgsError::MissingValue("--socket"))
        );
        assert_eq!(
            parse(v(&[
                "--socket",
                "/a",
                "--uds-path",
                "/b",
                "--guest-cid",
                "x"
            ])),
            Err(ArgsError::Cid("x".into()))
        );
        assert_eq!(
            parse(v(&["--bogus"])),
            Err(ArgsError::Unknown("--bogus".into()))
        );
    }
}
