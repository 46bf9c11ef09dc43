//! `kvmsandbox-vhost-vsock --socket VHU --uds-path HYBRID [--guest-cid N]`: serves
//! one vhost-user frontend, then exits (see the library's notes).

use kvmsandbox::devices::virtio::vsock::VsockConfig;

fn main() {
    let args = match kvmsandbox_vhost_vsock::args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kvmsandbox-vhost-vsock: {e}");
            std::process::exit(2);
        }
    };
    let cfg = VsockConfig::new(&args.uds_path).with_cid(args.guest_cid);
    if let Err(e) = kvmsandbox_vhost_vsock::serve::serve(&args.socket, cfg) {
        eprintln!("kvmsandbox-vhost-vsock: {e}");
        std::process::exit(1);
    }
}
