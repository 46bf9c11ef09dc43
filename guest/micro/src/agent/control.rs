//! The control port: `kvmsandbox_proto` frames. Hello first, then one request at
//! a time per connection (replies carry the request id). Replies are sent with
//! the blocking `send`, which keeps servicing the device while it waits for
//! credit.
//!
//! A module's bytes are held in a buffer reserved fallibly, against what the
//! heap can give, once its length is announced: a module that does not fit is
//! an error reply, never an allocation failure (which would abort the guest).
//! While a module runs, each check-in of the runner serves the agent's other
//! connections and ends the run if this one went away or the host asked for
//! Shutdown elsewhere. A module's host function calls go out on the run's
//! connection and wait there for the host's answer (`host_call.rs`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use kvmsandbox_proto::msg::host_fn::MAX_HOST_FUNCTIONS;
use kvmsandbox_proto::msg::{
    caps, Hello, HostFnDecl, PrepareSpec, RunPreparedSpec, WasmErrorKind, WasmSpec,
};
use kvmsandbox_proto::{ErrorCode, Frame, FrameDecoder, Message, PROTOCOL_VERSION};

use super::host_call::{self, NoAnswer};
use super::{disk, Step};
use crate::virtio::blk::Blk;
use crate::virtio::vsock::{ConnId, Vsock, VsockError};
use crate::wasm::{self, OutStream, RunHost, Template, WasmOutcome};

/// Bytes read from the connection per step.
const READ_CHUNK: usize = 64 * 1024;
/// Largest module we accept (bounded by RAM anyway; refuse absurd claims early).
const MAX_MODULE: u64 = 64 << 20;
/// Largest image of preopened directories a run may bring (the free heap
/// bounds it further).
const MAX_IMAGE: u64 = 256 << 20;
/// Largest `DiskRead` answered in one `DiskData` frame.
const MAX_DISK_READ: u32 = kvmsandbox_proto::frame::MAX_CHUNK as u32;

/// A module being received.
struct PendingWasm {
    request_id: u32,
    module_len: u64,
    purpose: Purpose,
    module: Vec<u8>,
    /// Host functions the module may import (`HostFunctions`).
    hosts: Vec<HostFnDecl>,
}

/// What a module being received is for.
enum Purpose {
    /// `RunWasm`: run it once.
    Run(WasmSpec),
    /// `PrepareWasm`: keep it as the agent's template.
    Prepare(PrepareSpec),
}

/// One control connection.
pub struct Control {
    decoder: FrameDecoder,
    wasm: Option<PendingWasm>,
}

fn send_frame(vs: &mut Vsock, conn: ConnId, id: u32, msg: Message) -> Result<(), VsockError> {
    match Frame::new(id, msg).encode() {
        Ok(bytes) => vs.send_vec(conn, bytes),
        // Only an oversized payload fails to encode; report it instead.
        Err(e) => {
            let msg = Message::Error {
                code: ErrorCode::Internal,
                message: format!("{e}"),
            };
            let bytes = Frame::new(id, msg).encode().unwrap_or_default();
            vs.send_vec(conn, bytes)
        }
    }
}

fn error(code: ErrorCode, message: String) -> Message {
    Message::Error { code, message }
}

impl Control {
    /// Greets the host on a new connection.
    pub fn new(vs: &mut Vsock, conn: ConnId, _disks: usize) -> Self {
        let mut capabilities = caps::DISK | caps::ECHO;
        if wasm::AVAILABLE {
            capabilities |= caps::WASM | caps::WASM_TEMPLATES;
        }
        let hello = Hello {
            version: u16::from(PROTOCOL_VERSION),
            kind: String::from("micro"),
            capabilities,
        };
        // A failure means the peer is gone; the next step notices and closes.
        let _ = send_frame(vs, conn, 0, Message::Hello(hello));
        Control {
            decoder: FrameDecoder::new(),
            wasm: None,
        }
    }

    /// Reads what arrived and answers every whole frame. `busy`: another
    /// session is running a module (then this one may not start one);
    /// `template`: the agent's prepared module (shared by all connections);
    /// `others` serves the other sessions during a run and says whether to go on.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        vs: &mut Vsock,
        conn: ConnId,
        disks: &mut [Blk],
        template: &mut Option<Template>,
        busy: bool,
        others: &mut Others,
    ) -> Step {
        let mut progress = false;
        if vs.available(conn) > 0 {
            let decoder = &mut self.decoder;
            if let Ok(n) = vs.recv_with(conn, READ_CHUNK, |bytes| decoder.feed(bytes)) {
                progress = n > 0;
            }
        }
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    match self.handle(vs, conn, disks, template, frame, busy, others) {
                        Ok(false) => {}
                        Ok(true) => return Step::Shutdown,
                        Err(_) => {
                            vs.close(conn);
                            return Step::Done;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Out of sync: say why, then drop the connection.
                    let _ = send_frame(
                        vs,
                        conn,
                        0,
                        error(ErrorCode::Invalid, format!("bad frame: {e}")),
                    );
                    vs.close(conn);
                    return Step::Done;
                }
            }
        }
        if vs.at_eof(conn) {
            vs.close(conn);
            return Step::Done;
        }
        if progress {
            Step::Progress
        } else {
            Step::Idle
        }
    }

    /// Answers one frame; `Ok(true)` means shut the guest down.
    #[allow(clippy::too_many_arguments)]
    fn handle(
        &mut self,
        vs: &mut Vsock,
        conn: ConnId,
        disks: &mut [Blk],
        template: &mut Option<Template>,
        f: Frame,
        busy: bool,
        others: &mut Others,
    ) -> Result<bool, VsockError> {
        let id = f.request_id;
        let reply = match f.msg {
            Message::Ping { nonce } => Message::Pong { nonce },
            Message::Echo { data } => Message::EchoReply { data },
            Message::Shutdown => {
                send_frame(vs, conn, id, Message::Ok)?;
                return Ok(true);
            }
            Message::DiskRead { disk, offset, len } => match disks.get_mut(disk as usize) {
                None => no_disk(disk, disks.len()),
                Some(_) if len > MAX_DISK_READ => error(
                    ErrorCode::Invalid,
                    format!("read of {len} bytes exceeds {MAX_DISK_READ}"),
                ),
                Some(b) => match disk::read(b, offset, len as usize) {
                    Ok(data) => Message::DiskData { data },
                    Err(e) => disk_error(e),
                },
            },
            Message::DiskWrite { disk, offset, data } => match disks.get_mut(disk as usize) {
                None => no_disk(disk, disks.len()),
                Some(b) => match disk::write(b, offset, &data) {
                    Ok(()) => Message::Ok,
                    Err(e) => disk_error(e),
                },
            },
            Message::DiskFlush { disk } => match disks.get_mut(disk as usize) {
                None => no_disk(disk, disks.len()),
                Some(b) => match b.flush() {
                    Ok(()) => Message::Ok,
                    Err(e) => disk_error(e),
                },
            },
            Message::RunWasm(spec) => match module_buffer(spec.module_len, image_len(&spec)) {
                Err(message) => error(ErrorCode::Invalid, message),
                Ok(module) => {
                    self.wasm = Some(PendingWasm {
                        request_id: id,
                        module_len: spec.module_len + image_len(&spec),
                        purpose: Purpose::Run(spec),
                        module,
                        hosts: Vec::new(),
                    });
                    return Ok(false);
                }
            },
            Message::PrepareWasm(spec) => {
                if !busy {
                    // The new template replaces the old: free it first, so
                    // the new module has its memory.
                    *template = None;
                }
                match module_buffer(spec.module_len, 0) {
                    Err(message) => error(ErrorCode::Invalid, message),
                    Ok(module) => {
                        self.wasm = Some(PendingWasm {
                            request_id: id,
                            module_len: spec.module_len,
                            purpose: Purpose::Prepare(spec),
                            module,
                            hosts: Vec::new(),
                        });
                        return Ok(false);
                    }
                }
            }
            Message::RunPrepared(_) if busy => error(
                ErrorCode::Invalid,
                String::from("another module is running"),
            ),
            Message::RunPrepared(spec) => {
                return run_prepared(vs, conn, disks, template, id, &spec, others).map(|()| false)
            }
            Message::HostFunctions(decls) => match self.wasm.as_mut() {
                Some(p) if p.request_id == id && decls.len() <= MAX_HOST_FUNCTIONS => {
                    p.hosts = decls;
                    return Ok(false);
                }
                Some(p) if p.request_id == id => {
                    self.wasm = None;
                    error(
                        ErrorCode::Invalid,
                        format!(
                            "{} host functions declared, at most {MAX_HOST_FUNCTIONS} are allowed",
                            decls.len()
                        ),
                    )
                }
                _ => error(
                    ErrorCode::Invalid,
                    format!("HostFunctions for request {id} which is not receiving a module"),
                ),
            },
            Message::Data { data } => match self.wasm.as_mut() {
                Some(p) if p.request_id == id => {
                    let fits = (p.module.len() + data.len()) as u64 <= p.module_len;
                    // Reserved for module_len already: this cannot allocate.
                    if fits && p.module.try_reserve(data.len()).is_ok() {
                        p.module.extend_from_slice(&data);
                        return Ok(false);
                    }
                    self.wasm = None;
                    error(
                        ErrorCode::Invalid,
                        String::from("module data exceeds the announced module_len"),
                    )
                }
                _ => error(
                    ErrorCode::Invalid,
                    format!("Data for request {id} which is not receiving a module"),
                ),
            },
            Message::DataEnd => match self.wasm.take() {
                Some(_) if busy => error(
                    ErrorCode::Invalid,
                    String::from("another module is running"),
                ),
                Some(p) if p.request_id == id => {
                    return match p.purpose {
                        Purpose::Run(_) => run(vs, conn, disks, p, others),
                        Purpose::Prepare(_) => prepare(vs, conn, template, p),
                    }
                    .map(|()| false)
                }
                other => {
                    self.wasm = other;
                    error(
                        ErrorCode::Invalid,
                        format!("DataEnd for request {id} which is not receiving a module"),
                    )
                }
            },
            other => error(
                ErrorCode::Unsupported,
                format!("the micro guest does not serve {}", other.name()),
            ),
        };
        send_frame(vs, conn, id, reply)?;
        Ok(false)
    }
}

/// Serves the agent's other sessions during a run; `false`: stop the run.
pub type Others<'a> = dyn FnMut(&mut Vsock, &mut [Blk]) -> bool + 'a;

/// Bytes of the directories' image a run receives after its module.
fn image_len(spec: &WasmSpec) -> u64 {
    spec.fs.as_ref().map_or(0, |fs| fs.image_len)
}

/// An empty buffer with room for a module of `len` bytes and a directories'
/// image of `image` bytes, or why not.
fn module_buffer(len: u64, image: u64) -> Result<Vec<u8>, String> {
    if len > MAX_MODULE {
        return Err(format!("module of {len} bytes exceeds {MAX_MODULE}"));
    }
    if image > MAX_IMAGE {
        return Err(format!(
            "directory image of {image} bytes exceeds {MAX_IMAGE}"
        ));
    }
    let len = len + image;
    // Leave the module as much again to run in (its memory cap is half of
    // what is free when it starts).
    let free = crate::heap::free_bytes() as u64;
    if len > free / 2 {
        return Err(format!(
            "module of {len} bytes does not fit the guest's free heap of {free} bytes"
        ));
    }
    let mut module = Vec::new();
    match module.try_reserve_exact(len as usize) {
        Ok(()) => Ok(module),
        Err(_) => Err(format!(
            "cannot reserve {len} bytes for the module (free heap {free} bytes)"
        )),
    }
}

fn no_disk(disk: u32, count: usize) -> Message {
    error(
        ErrorCode::NotFound,
        format!("no disk {disk} (the guest has {count})"),
    )
}

fn disk_error(e: crate::virtio::blk::BlkError) -> Message {
    use crate::virtio::blk::BlkError as B;
    let code = match e {
        B::Unaligned { .. } | B::OutOfRange { .. } => ErrorCode::Invalid,
        B::ReadOnly => ErrorCode::PermissionDenied,
        B::Unsupported { .. } => ErrorCode::Unsupported,
        _ => ErrorCode::Io,
    };
    error(code, format!("{e}"))
}

/// The run's view of its connection: output goes out as frames, and each
/// check-in serves the other sessions and stops the run if this connection
/// went away.
struct RunIo<'a, 'o> {
    vs: &'a mut Vsock,
    disks: &'a mut [Blk],
    conn: ConnId,
    id: u32,
    failed: Option<VsockError>,
    others: &'a mut Others<'o>,
    /// The run's host functions, as the runner takes them.
    imports: Vec<wasm::HostImport>,
    /// Reads host function answers (nothing else arrives during a run).
    decoder: FrameDecoder,
    /// A host function call lost the host or saw Shutdown: stop the run.
    stopped: bool,
}

impl<'a, 'o> RunIo<'a, 'o> {
    /// A run of request `id` on `conn` that may call `imports`.
    fn new(
        vs: &'a mut Vsock,
        disks: &'a mut [Blk],
        conn: ConnId,
        id: u32,
        others: &'a mut Others<'o>,
        imports: Vec<wasm::HostImport>,
    ) -> Self {
        RunIo {
            vs,
            disks,
            conn,
            id,
            failed: None,
            others,
            imports,
            decoder: FrameDecoder::new(),
            stopped: false,
        }
    }
}

impl RunHost for RunIo<'_, '_> {
    fn output(&mut self, stream: OutStream, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        for chunk in bytes.chunks(kvmsandbox_proto::frame::MAX_CHUNK) {
            let data = chunk.to_vec();
            let msg = match stream {
                OutStream::Stdout => Message::Stdout { data },
                OutStream::Stderr => Message::Stderr { data },
            };
            if let Err(e) = send_frame(self.vs, self.conn, self.id, msg) {
                self.failed = Some(e);
                return;
            }
        }
    }

    fn host_functions(&self) -> &[wasm::HostImport] {
        &self.imports
    }

    fn host_call(&mut self, call: &wasm::HostCallArgs<'_>) -> Result<wasm::HostReply, String> {
        if self.failed.is_some() || self.stopped {
            return Err(String::from("the run is ending"));
        }
        let wire = host_call::to_wire(call);
        let (vs, disks, decoder) = (&mut *self.vs, &mut *self.disks, &mut self.decoder);
        match host_call::call(vs, disks, self.conn, self.id, decoder, self.others, wire) {
            Ok(Ok(reply)) => Ok(host_call::from_wire(reply)),
            Ok(Err(message)) => Err(message),
            Err(NoAnswer::Lost(message)) => {
                self.stopped = true;
                Err(message)
            }
            Err(NoAnswer::Stopped) => {
                self.stopped = true;
                Err(String::from("the guest is shutting down"))
            }
        }
    }

    fn keep_going(&mut self) -> bool {
        if self.failed.is_some() || self.stopped {
            return false;
        }
        self.vs.poll();
        if self.vs.is_closed(self.conn) || self.vs.at_eof(self.conn) {
            return false;
        }
        (self.others)(self.vs, self.disks)
    }
}

/// Runs a fully received module, streaming its output as it goes.
fn run(
    vs: &mut Vsock,
    conn: ConnId,
    disks: &mut [Blk],
    p: PendingWasm,
    others: &mut Others,
) -> Result<(), VsockError> {
    let id = p.request_id;
    if let Some(msg) = incomplete(&p) {
        return send_frame(vs, conn, id, error(ErrorCode::Invalid, msg));
    }
    let Purpose::Run(spec) = &p.purpose else {
        return send_frame(
            vs,
            conn,
            id,
            error(ErrorCode::Internal, String::from("not a run")),
        );
    };
    let mut io = RunIo::new(vs, disks, conn, id, others, host_call::imports(&p.hosts));
    let (outcome, image) = wasm::run_wasm(spec, &p.module, &mut io);
    drop(p);
    finish(io, outcome, image)
}

/// Why a received module is not whole, if it is not.
fn incomplete(p: &PendingWasm) -> Option<String> {
    (p.module.len() as u64 != p.module_len).then(|| {
        format!(
            "module has {} bytes, {} announced",
            p.module.len(),
            p.module_len
        )
    })
}

/// Compiles a fully received module into the agent's template.
fn prepare(
    vs: &mut Vsock,
    conn: ConnId,
    template: &mut Option<Template>,
    p: PendingWasm,
) -> Result<(), VsockError> {
    let id = p.request_id;
    if let Some(msg) = incomplete(&p) {
        return send_frame(vs, conn, id, error(ErrorCode::Invalid, msg));
    }
    let Purpose::Prepare(spec) = &p.purpose else {
        return send_frame(
            vs,
            conn,
            id,
            error(ErrorCode::Internal, String::from("not a prepare")),
        );
    };
    let reply = match wasm::prepare(&p.module, spec) {
        Ok(t) => {
            let reply = Message::WasmPrepared { template: t.id };
            *template = Some(t);
            reply
        }
        Err((kind, message)) => Message::WasmError { kind, message },
    };
    // The module's bytes are not needed once compiled.
    drop(p);
    send_frame(vs, conn, id, reply)
}

/// Runs the agent's template with one call's inputs, streaming its output.
fn run_prepared(
    vs: &mut Vsock,
    conn: ConnId,
    disks: &mut [Blk],
    template: &mut Option<Template>,
    id: u32,
    spec: &RunPreparedSpec,
    others: &mut Others,
) -> Result<(), VsockError> {
    let t = match template.as_mut() {
        Some(t) if t.id == spec.template => t,
        held => {
            let message = match held {
                Some(t) => format!(
                    "template {} is not prepared (the agent holds template {})",
                    spec.template, t.id
                ),
                None => format!(
                    "template {} is not prepared (the agent holds none)",
                    spec.template
                ),
            };
            let kind = WasmErrorKind::NotPrepared;
            return send_frame(vs, conn, id, Message::WasmError { kind, message });
        }
    };
    let mut io = RunIo::new(vs, disks, conn, id, others, Vec::new());
    let outcome = wasm::run_prepared(t, spec, &mut io);
    finish(io, outcome, None)
}

/// Sends a run's writable directories (`image`), then its last frame (or
/// reports that its connection failed).
fn finish(io: RunIo, outcome: WasmOutcome, image: Option<Vec<u8>>) -> Result<(), VsockError> {
    let (conn, id) = (io.conn, io.id);
    if let Some(e) = io.failed {
        return Err(e);
    }
    if let Some(image) = image {
        for chunk in image.chunks(kvmsandbox_proto::frame::MAX_CHUNK) {
            let data = chunk.to_vec();
            send_frame(io.vs, conn, id, Message::Data { data })?;
        }
        send_frame(io.vs, conn, id, Message::DataEnd)?;
    }
    let reply = match outcome {
        WasmOutcome::Exit(code) => Message::WasmExit { code },
        WasmOutcome::Trap(message) => Message::WasmTrap { message },
        WasmOutcome::OutOfFuel => Message::OutOfFuel,
        WasmOutcome::Error(kind, message) => Message::WasmError { kind, message },
        WasmOutcome::Unsupported(message) => error(ErrorCode::Unsupported, message),
    };
    send_frame(io.vs, conn, id, reply)
}
