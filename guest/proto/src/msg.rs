//! The messages both agents and the host exchange, and their payload encoding.
//!
//! Field encoding (little endian): integers fixed width; `bool` one byte 0/1;
//! `Option<T>` a 0/1 tag byte then `T`; bytes and strings a u32 length then the
//! bytes (strings UTF-8); lists a u32 count then the items. Decoding checks every
//! length against what is left and never pre-allocates from a count.
//!
//! How the protocol grows without a version bump (both rules are what lets an
//! older peer talk to a newer one):
//! * a message may gain fields only at the end of its payload; a decoder reads the
//!   fields it knows and ignores any bytes after them;
//! * a new message gets a new type number; a decoder turns a type it does not know
//!   into [`Message::Unknown`] (not an error, the stream stays in sync), an agent
//!   answers an unknown request with `Error{Unsupported}`, and the host skips an
//!   unknown frame. Optional behaviour is announced in [`Hello::capabilities`].
//!
//! Conversations (the request id of every response = that of its request):
//! * `Hello` — agent → host, first frame on every connection (request id 0).
//! * `Ping{nonce}` → `Pong{nonce}`; `Echo{data}` → `EchoReply{data}` (one reply per
//!   frame; big data is echoed one frame at a time).
//! * `Exec` → `ExecStarted{pid}`, then `Stdout`/`Stderr` chunks while the process
//!   runs; the host may send `Stdin`, `StdinEof`, `Kill{signal}` with the same id;
//!   always ends with `ExecExit` (or `Error` if it could not start). An agent with
//!   [`caps::STDIN_ACK`] answers stdin bytes it has passed on (or dropped because
//!   the command no longer reads) with `StdinAck{bytes}`; the host keeps at most
//!   [`STDIN_WINDOW`] bytes unacknowledged, and bytes beyond that window are
//!   dropped by the agent, which then closes the command's stdin.
//! * `WriteFile{path,mode}`, `Data`*, `DataEnd` → `Ok` | `Error`.
//! * `ReadFile{path}` → `Data`*, `DataEnd` | `Error`.
//! * `Stat{path,follow}` → `FileInfo` | `Error`; `ListDir{path}` → `DirEntries`*
//!   (at most [`MAX_DIR_ENTRIES_PER_FRAME`] each), `DataEnd` | `Error`;
//!   `MakeDir`, `Remove`, `Rename` → `Ok` | `Error` (agents with [`caps::FS`]).
//! * `DiskRead` → `DiskData`; `DiskWrite`, `DiskFlush` → `Ok`; or `Error`.
//! * `RunWasm{module_len,..}`, `Data`* (the module), `DataEnd` → `Stdout`/`Stderr`
//!   chunks → `WasmExit` | `WasmTrap` | `OutOfFuel` | `WasmError` | `Error`.
//! * `PrepareWasm{module_len,..}`, `Data`* (the module), `DataEnd` →
//!   `WasmPrepared{template}` | `WasmError` | `Error`: the agent validates and
//!   compiles the module once and keeps it (one template per agent; a new one
//!   replaces the old).
//! * `RunPrepared{template,..}` → `Stdout`/`Stderr` chunks → `WasmExit` |
//!   `WasmTrap` | `OutOfFuel` | `WasmError` (`NotPrepared` if `template` is not
//!   the one the agent holds) | `Error`.
//! * `Shutdown` → `Ok`, then the agent goes away.
//! * Host functions of a run: `HostFunctions` after `RunWasm`; `HostCall` (agent)
//!   → `HostReturn` | `HostError` (host) while the module runs (see [`host_fn`]).

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::ProtoError;

pub mod host_fn;
pub use host_fn::{HostCall, HostFnDecl, HostReturn, HostType, HostValue};

/// Capability bits announced in [`Hello::capabilities`].
pub mod caps {
    /// Serves `Exec`.
    pub const EXEC: u64 = 1 << 0;
    /// Serves `WriteFile`/`ReadFile`.
    pub const FILES: u64 = 1 << 1;
    /// Serves `RunWasm`.
    pub const WASM: u64 = 1 << 2;
    /// Serves `Disk*`.
    pub const DISK: u64 = 1 << 3;
    /// Serves `Echo`.
    pub const ECHO: u64 = 1 << 4;
    /// Acknowledges exec stdin with `StdinAck` (flow control, see [`super::STDIN_WINDOW`]).
    pub const STDIN_ACK: u64 = 1 << 5;
    /// Stat, ListDir, MakeDir, Remove, Rename.
    pub const FS: u64 = 1 << 7;
    /// Serves `PrepareWasm`/`RunPrepared`.
    pub const WASM_TEMPLATES: u64 = 1 << 6;
}

/// Most stdin bytes of one exec the host may have sent but not yet seen
/// acknowledged (agents with [`caps::STDIN_ACK`]); what the agent buffers per command.
pub const STDIN_WINDOW: u32 = 2 << 20;

/// Stable numeric error codes carried by [`Message::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No such file, disk or process.
    NotFound,
    /// The agent may not do that.
    PermissionDenied,
    /// This agent does not implement the request.
    Unsupported,
    /// The request is malformed or its arguments are invalid.
    Invalid,
    /// An I/O error in the guest.
    Io,
    /// The operation timed out in the guest.
    Timeout,
    /// A bug or unexpected state in the agent.
    Internal,
    /// The target already exists.
    AlreadyExists,
    /// A code this version does not know (sent by a newer peer).
    Other(u16),
}

impl ErrorCode {
    /// The wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::NotFound => 1,
            Self::PermissionDenied => 2,
            Self::Unsupported => 3,
            Self::Invalid => 4,
            Self::Io => 5,
            Self::Timeout => 6,
            Self::Internal => 7,
            Self::AlreadyExists => 8,
            Self::Other(v) => v,
        }
    }

    /// From the wire value (unknown values become [`ErrorCode::Other`]).
    pub fn from_u16(v: u16) -> Self {
        match v {
            1 => Self::NotFound,
            2 => Self::PermissionDenied,
            3 => Self::Unsupported,
            4 => Self::Invalid,
            5 => Self::Io,
            6 => Self::Timeout,
            7 => Self::Internal,
            8 => Self::AlreadyExists,
            v => Self::Other(v),
        }
    }
}

/// Why a WASM module could not run, in [`Message::WasmError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WasmErrorKind {
    /// The bytes are not a valid module.
    InvalidModule,
    /// The module needs more memory than allowed.
    MemoryLimit,
    /// The module imports something the runtime does not provide.
    MissingImport,
    /// The module has no usable entry point (`_start`).
    NoEntryPoint,
    /// `RunPrepared` names a template the agent does not hold (none was
    /// prepared, or a later `PrepareWasm` replaced it).
    NotPrepared,
    /// Anything else.
    Other(u16),
}

impl WasmErrorKind {
    /// The wire value.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::InvalidModule => 1,
            Self::MemoryLimit => 2,
            Self::MissingImport => 3,
            Self::NoEntryPoint => 4,
            Self::NotPrepared => 5,
            Self::Other(v) => v,
        }
    }

    /// From the wire value.
    pub fn from_u16(v: u16) -> Self {
        match v {
            1 => Self::InvalidModule,
            2 => Self::MemoryLimit,
            3 => Self::MissingImport,
            4 => Self::NoEntryPoint,
            5 => Self::NotPrepared,
            v => Self::Other(v),
        }
    }
}

/// First frame an agent sends on every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the agent speaks.
    pub version: u16,
    /// Guest kind, e.g. `"linux"` or `"micro"`.
    pub kind: String,
    /// [`caps`] bits.
    pub capabilities: u64,
}

/// A command to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// Program and arguments (`argv[0]` is looked up in `PATH`).
    pub argv: Vec<String>,
    /// Environment variables (the process gets only these, plus nothing inherited).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Whether the host will send `Stdin` frames (else stdin is `/dev/null`).
    pub stdin: bool,
    /// End the whole command (everything it started) after this long.
    pub timeout_ms: Option<u64>,
}

/// A WASM module to run; its bytes follow as `Data` frames and a `DataEnd`.
/// Directory entries per `DirEntries` frame (keeps frames well under `MAX_FRAME`
/// even with long names).
pub const MAX_DIR_ENTRIES_PER_FRAME: usize = 256;

pub use crate::file_stat::{FileKind, FileStat};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmSpec {
    /// Total module size in bytes (lets the agent allocate once and refuse early).
    pub module_len: u64,
    /// `argv` seen by the module.
    pub args: Vec<String>,
    /// Environment seen by the module.
    pub env: Vec<(String, String)>,
    /// Everything the module reads from stdin.
    pub stdin: Vec<u8>,
    /// Fuel limit (instructions, roughly); `None` = unlimited.
    pub fuel: Option<u64>,
    /// Linear memory limit; `None` = runtime default.
    pub max_memory_bytes: Option<u64>,
    /// Fresh host entropy for this run, mixed into the guest's `random_get`
    /// seed: a guest restored from a snapshot would otherwise repeat the
    /// random numbers it drew after the snapshot. Absent from older hosts.
    pub entropy: Option<[u8; 32]>,
    /// Preopened directories (their contents follow the module's bytes);
    /// `None`: none. Encoded last, as optional bytes (see `wasmfs.rs`).
    pub fs: Option<crate::wasmfs::WasmFs>,
}

/// A module to validate, compile and keep as the agent's template; its bytes
/// follow as `Data` frames and a `DataEnd`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrepareSpec {
    /// Total module size in bytes.
    pub module_len: u64,
    /// Linear memory limit of every run of the template; `None` = runtime default.
    pub max_memory_bytes: Option<u64>,
}

/// One run of the prepared template: only this call's inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunPreparedSpec {
    /// The template id `WasmPrepared` returned.
    pub template: u64,
    /// `argv` seen by the module.
    pub args: Vec<String>,
    /// Environment seen by the module.
    pub env: Vec<(String, String)>,
    /// Everything the module reads from stdin.
    pub stdin: Vec<u8>,
    /// Fuel limit; `None` = unlimited.
    pub fuel: Option<u64>,
    /// Seed of the run's `random_get` stream: the host sends a fresh one per
    /// run, since a guest restored from a snapshot would repeat its own.
    pub seed: [u8; 32],
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Agent greeting.
    Hello(Hello),
    /// Liveness check.
    Ping { nonce: u64 },
    /// Answer to `Ping`.
    Pong { nonce: u64 },
    /// Echo these bytes back.
    Echo { data: Vec<u8> },
    /// Answer to `Echo`.
    EchoReply { data: Vec<u8> },
    /// Generic success.
    Ok,
    /// Generic failure.
    Error { code: ErrorCode, message: String },
    /// Stop the agent (and the guest).
    Shutdown,
    /// Run a command.
    Exec(ExecSpec),
    /// The command started.
    ExecStarted { pid: u32 },
    /// Standard output chunk (Exec and RunWasm).
    Stdout { data: Vec<u8> },
    /// Standard error chunk (Exec and RunWasm).
    Stderr { data: Vec<u8> },
    /// Standard input chunk for a running Exec.
    Stdin { data: Vec<u8> },
    /// Close the running Exec's stdin.
    StdinEof,
    /// Send a signal to the running Exec's process group (SIGKILL: to everything
    /// the command started, e.g. its whole cgroup).
    Kill { signal: i32 },
    /// This many more bytes of the Exec's stdin were consumed (written to the
    /// command or dropped because it stopped reading): the host may send that many more.
    StdinAck { bytes: u32 },
    /// The command ended.
    ExecExit {
        code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    },
    /// Create/truncate a file; its bytes follow as `Data` + `DataEnd`.
    WriteFile { path: String, mode: u32 },
    /// Send a file back as `Data` + `DataEnd`.
    ReadFile { path: String },
    /// A chunk of a streamed byte sequence.
    Data { data: Vec<u8> },
    /// End of a streamed byte sequence.
    DataEnd,
    /// Describe `path` (the link itself unless `follow`).
    Stat { path: String, follow: bool },
    /// Answer to `Stat`.
    FileInfo(FileStat),
    /// List the directory `path`: `DirEntries` frames, then `DataEnd`.
    ListDir { path: String },
    /// Some entries of a listed directory (names only, no path).
    DirEntries { entries: Vec<FileStat> },
    /// Create directory `path` with permission bits `mode` (and its missing
    /// parents if `parents`; then an existing directory is not an error).
    MakeDir {
        path: String,
        mode: u32,
        parents: bool,
    },
    /// Remove the file, link or empty directory `path` (a directory with its
    /// contents if `recursive`).
    Remove { path: String, recursive: bool },
    /// Rename `from` to `to` (replacing a file at `to`).
    Rename { from: String, to: String },
    /// Read `len` bytes at `offset` of disk `disk`.
    DiskRead { disk: u32, offset: u64, len: u32 },
    /// Write `data` at `offset` of disk `disk`.
    DiskWrite {
        disk: u32,
        offset: u64,
        data: Vec<u8>,
    },
    /// Flush disk `disk`.
    DiskFlush { disk: u32 },
    /// Answer to `DiskRead`.
    DiskData { data: Vec<u8> },
    /// Run a WASM module.
    RunWasm(WasmSpec),
    /// The module's `_start` returned or called `proc_exit`.
    WasmExit { code: i32 },
    /// The module trapped.
    WasmTrap { message: String },
    /// The module used up its fuel.
    OutOfFuel,
    /// The module could not run.
    WasmError {
        kind: WasmErrorKind,
        message: String,
    },
    /// Validate, compile and keep a module as the agent's template.
    PrepareWasm(PrepareSpec),
    /// The template is ready; runs name it by this id.
    WasmPrepared { template: u64 },
    /// Run the template's `_start` with these inputs.
    RunPrepared(RunPreparedSpec),
    /// The host functions the module of the pending `RunWasm` may import.
    HostFunctions(Vec<HostFnDecl>),
    /// The running module called a host function (agent → host).
    HostCall(HostCall),
    /// What the host function returned.
    HostReturn(HostReturn),
    /// The host function failed: the module traps with this message.
    HostError { message: String },
    /// A message of a type this version does not know (sent by a newer peer); its
    /// payload is kept as is and re-encodes unchanged.
    Unknown { msg_type: u16, payload: Vec<u8> },
}

/// Wire type numbers.
mod ty {
    pub const HELLO: u16 = 0x01;
    pub const PING: u16 = 0x02;
    pub const PONG: u16 = 0x03;
    pub const ECHO: u16 = 0x04;
    pub const ECHO_REPLY: u16 = 0x05;
    pub const OK: u16 = 0x06;
    pub const ERROR: u16 = 0x07;
    pub const SHUTDOWN: u16 = 0x08;
    pub const EXEC: u16 = 0x10;
    pub const EXEC_STARTED: u16 = 0x11;
    pub const STDOUT: u16 = 0x12;
    pub const STDERR: u16 = 0x13;
    pub const STDIN: u16 = 0x14;
    pub const STDIN_EOF: u16 = 0x15;
    pub const KILL: u16 = 0x16;
    pub const EXEC_EXIT: u16 = 0x17;
    pub const STDIN_ACK: u16 = 0x18;
    pub const WRITE_FILE: u16 = 0x20;
    pub const READ_FILE: u16 = 0x21;
    pub const DATA: u16 = 0x22;
    pub const DATA_END: u16 = 0x23;
    pub const STAT: u16 = 0x24;
    pub const FILE_INFO: u16 = 0x25;
    pub const LIST_DIR: u16 = 0x26;
    pub const DIR_ENTRIES: u16 = 0x27;
    pub const MAKE_DIR: u16 = 0x28;
    pub const REMOVE: u16 = 0x29;
    pub const RENAME: u16 = 0x2a;
    pub const DISK_READ: u16 = 0x30;
    pub const DISK_WRITE: u16 = 0x31;
    pub const DISK_FLUSH: u16 = 0x32;
    pub const DISK_DATA: u16 = 0x33;
    pub const RUN_WASM: u16 = 0x40;
    pub const WASM_EXIT: u16 = 0x41;
    pub const WASM_TRAP: u16 = 0x42;
    pub const OUT_OF_FUEL: u16 = 0x43;
    pub const WASM_ERROR: u16 = 0x44;
    pub const PREPARE_WASM: u16 = 0x45;
    pub const WASM_PREPARED: u16 = 0x46;
    pub const RUN_PREPARED: u16 = 0x47;
    pub const HOST_FUNCTIONS: u16 = 0x60;
    pub const HOST_CALL: u16 = 0x61;
    pub const HOST_RETURN: u16 = 0x62;
    pub const HOST_ERROR: u16 = 0x63;

    pub const ALL: &[u16] = &[
        HELLO,
        PING,
        PONG,
        ECHO,
        ECHO_REPLY,
        OK,
        ERROR,
        SHUTDOWN,
        EXEC,
        EXEC_STARTED,
        STDOUT,
        STDERR,
        STDIN,
        STDIN_EOF,
        KILL,
        EXEC_EXIT,
        STDIN_ACK,
        WRITE_FILE,
        READ_FILE,
        DATA,
        DATA_END,
        STAT,
        FILE_INFO,
        LIST_DIR,
        DIR_ENTRIES,
        MAKE_DIR,
        REMOVE,
        RENAME,
        DISK_READ,
        DISK_WRITE,
        DISK_FLUSH,
        DISK_DATA,
        RUN_WASM,
        WASM_EXIT,
        WASM_TRAP,
        OUT_OF_FUEL,
        WASM_ERROR,
        PREPARE_WASM,
        WASM_PREPARED,
        RUN_PREPARED,
        HOST_FUNCTIONS,
        HOST_CALL,
        HOST_RETURN,
        HOST_ERROR,
    ];
}

impl Message {
    /// The wire type number.
    pub fn msg_type(&self) -> u16 {
        match self {
            Self::Hello(_) => ty::HELLO,
            Self::Ping { .. } => ty::PING,
            Self::Pong { .. } => ty::PONG,
            Self::Echo { .. } => ty::ECHO,
            Self::EchoReply { .. } => ty::ECHO_REPLY,
            Self::Ok => ty::OK,
            Self::Error { .. } => ty::ERROR,
            Self::Shutdown => ty::SHUTDOWN,
            Self::Exec(_) => ty::EXEC,
            Self::ExecStarted { .. } => ty::EXEC_STARTED,
            Self::Stdout { .. } => ty::STDOUT,
            Self::Stderr { .. } => ty::STDERR,
            Self::Stdin { .. } => ty::STDIN,
            Self::StdinEof => ty::STDIN_EOF,
            Self::Kill { .. } => ty::KILL,
            Self::ExecExit { .. } => ty::EXEC_EXIT,
            Self::StdinAck { .. } => ty::STDIN_ACK,
            Self::WriteFile { .. } => ty::WRITE_FILE,
            Self::ReadFile { .. } => ty::READ_FILE,
            Self::Data { .. } => ty::DATA,
            Self::DataEnd => ty::DATA_END,
            Self::Stat { .. } => ty::STAT,
            Self::FileInfo(_) => ty::FILE_INFO,
            Self::ListDir { .. } => ty::LIST_DIR,
            Self::DirEntries { .. } => ty::DIR_ENTRIES,
            Self::MakeDir { .. } => ty::MAKE_DIR,
            Self::Remove { .. } => ty::REMOVE,
            Self::Rename { .. } => ty::RENAME,
            Self::DiskRead { .. } => ty::DISK_READ,
            Self::DiskWrite { .. } => ty::DISK_WRITE,
            Self::DiskFlush { .. } => ty::DISK_FLUSH,
            Self::DiskData { .. } => ty::DISK_DATA,
            Self::RunWasm(_) => ty::RUN_WASM,
            Self::WasmExit { .. } => ty::WASM_EXIT,
            Self::WasmTrap { .. } => ty::WASM_TRAP,
            Self::OutOfFuel => ty::OUT_OF_FUEL,
            Self::WasmError { .. } => ty::WASM_ERROR,
            Self::PrepareWasm(_) => ty::PREPARE_WASM,
            Self::WasmPrepared { .. } => ty::WASM_PREPARED,
            Self::RunPrepared(_) => ty::RUN_PREPARED,
            Self::HostFunctions(_) => ty::HOST_FUNCTIONS,
            Self::HostCall(_) => ty::HOST_CALL,
            Self::HostReturn(_) => ty::HOST_RETURN,
            Self::HostError { .. } => ty::HOST_ERROR,
            Self::Unknown { msg_type, .. } => *msg_type,
        }
    }

    /// A short name for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "Hello",
            Self::Ping { .. } => "Ping",
            Self::Pong { .. } => "Pong",
            Self::Echo { .. } => "Echo",
            Self::EchoReply { .. } => "EchoReply",
            Self::Ok => "Ok",
            Self::Error { .. } => "Error",
            Self::Shutdown => "Shutdown",
            Self::Exec(_) => "Exec",
            Self::ExecStarted { .. } => "ExecStarted",
            Self::Stdout { .. } => "Stdout",
            Self::Stderr { .. } => "Stderr",
            Self::Stdin { .. } => "Stdin",
            Self::StdinEof => "StdinEof",
            Self::Kill { .. } => "Kill",
            Self::ExecExit { .. } => "ExecExit",
            Self::StdinAck { .. } => "StdinAck",
            Self::WriteFile { .. } => "WriteFile",
            Self::ReadFile { .. } => "ReadFile",
            Self::Data { .. } => "Data",
            Self::DataEnd => "DataEnd",
            Self::Stat { .. } => "Stat",
            Self::FileInfo(_) => "FileInfo",
            Self::ListDir { .. } => "ListDir",
            Self::DirEntries { .. } => "DirEntries",
            Self::MakeDir { .. } => "MakeDir",
            Self::Remove { .. } => "Remove",
            Self::Rename { .. } => "Rename",
            Self::DiskRead { .. } => "DiskRead",
            Self::DiskWrite { .. } => "DiskWrite",
            Self::DiskFlush { .. } => "DiskFlush",
            Self::DiskData { .. } => "DiskData",
            Self::RunWasm(_) => "RunWasm",
            Self::WasmExit { .. } => "WasmExit",
            Self::WasmTrap { .. } => "WasmTrap",
            Self::OutOfFuel => "OutOfFuel",
            Self::WasmError { .. } => "WasmError",
            Self::PrepareWasm(_) => "PrepareWasm",
            Self::WasmPrepared { .. } => "WasmPrepared",
            Self::RunPrepared(_) => "RunPrepared",
            Self::HostFunctions(_) => "HostFunctions",
            Self::HostCall(_) => "HostCall",
            Self::HostReturn(_) => "HostReturn",
            Self::HostError { .. } => "HostError",
            Self::Unknown { .. } => "Unknown",
        }
    }

    /// Whether `t` is a type number this version knows.
    pub fn is_known_type(t: u16) -> bool {
        ty::ALL.contains(&t)
    }

    /// Appends the payload (not the header) to `out`.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            Self::Hello(h) => {
                w.u16(h.version);
                w.str(&h.kind);
                w.u64(h.capabilities);
            }
            Self::Ping { nonce } | Self::Pong { nonce } => w.u64(*nonce),
            Self::Echo { data }
            | Self::EchoReply { data }
            | Self::Stdout { data }
            | Self::Stderr { data }
            | Self::Stdin { data }
            | Self::Data { data }
            | Self::DiskData { data } => w.bytes(data),
            Self::Ok | Self::Shutdown | Self::StdinEof | Self::DataEnd | Self::OutOfFuel => {}
            Self::Error { code, message } => {
                w.u16(code.to_u16());
                w.str(message);
            }
            Self::Exec(e) => {
                w.strs(&e.argv);
                w.env(&e.env);
                w.opt_str(e.cwd.as_deref());
                w.bool(e.stdin);
                w.opt_u64(e.timeout_ms);
            }
            Self::ExecStarted { pid } => w.u32(*pid),
            Self::StdinAck { bytes } => w.u32(*bytes),
            Self::Unknown { payload, .. } => w.0.extend_from_slice(payload),
            Self::Kill { signal } => w.i32(*signal),
            Self::ExecExit {
                code,
                signal,
                timed_out,
            } => {
                w.opt_i32(*code);
                w.opt_i32(*signal);
                w.bool(*timed_out);
            }
            Self::WriteFile { path, mode } => {
                w.str(path);
                w.u32(*mode);
            }
            Self::ReadFile { path } | Self::ListDir { path } => w.str(path),
            Self::Stat { path, follow } => {
                w.str(path);
                w.bool(*follow);
            }
            Self::FileInfo(st) => st.encode(&mut w),
            Self::DirEntries { entries } => {
                w.len(entries.len());
                for e in entries {
                    e.encode(&mut w);
                }
            }
            Self::MakeDir {
                path,
                mode,
                parents,
            } => {
                w.str(path);
                w.u32(*mode);
                w.bool(*parents);
            }
            Self::Remove { path, recursive } => {
                w.str(path);
                w.bool(*recursive);
            }
            Self::Rename { from, to } => {
                w.str(from);
                w.str(to);
            }
            Self::DiskRead { disk, offset, len } => {
                w.u32(*disk);
                w.u64(*offset);
                w.u32(*len);
            }
            Self::DiskWrite { disk, offset, data } => {
                w.u32(*disk);
                w.u64(*offset);
                w.bytes(data);
            }
            Self::DiskFlush { disk } => w.u32(*disk),
            Self::RunWasm(s) => {
                w.u64(s.module_len);
                w.strs(&s.args);
                w.env(&s.env);
                w.bytes(&s.stdin);
                w.opt_u64(s.fuel);
                w.opt_u64(s.max_memory_bytes);
                match &s.entropy {
                    Some(e) => {
                        w.u8(1);
                        w.raw(e);
                    }
                    None => w.u8(0),
                }
                match &s.fs {
                    Some(fs) => {
                        w.u8(1);
                        w.bytes(&fs.to_bytes());
                    }
                    None => w.u8(0),
                }
            }
            Self::WasmExit { code } => w.i32(*code),
            Self::WasmTrap { message } => w.str(message),
            Self::WasmError { kind, message } => {
                w.u16(kind.to_u16());
                w.str(message);
            }
            Self::PrepareWasm(p) => {
                w.u64(p.module_len);
                w.opt_u64(p.max_memory_bytes);
            }
            Self::WasmPrepared { template } => w.u64(*template),
            Self::RunPrepared(r) => {
                w.u64(r.template);
                w.strs(&r.args);
                w.env(&r.env);
                w.bytes(&r.stdin);
                w.opt_u64(r.fuel);
                w.0.extend_from_slice(&r.seed);
            }
            Self::HostFunctions(decls) => w.host_decls(decls),
            Self::HostCall(call) => w.host_call(call),
            Self::HostReturn(ret) => w.host_return(ret),
            Self::HostError { message } => w.str(message),
        }
    }

    /// Decodes the payload of a message of type `msg_type`. Bytes after the last
    /// known field are ignored and an unknown type becomes [`Message::Unknown`]
    /// (see the module notes on how the protocol grows).
    pub fn decode_payload(msg_type: u16, payload: &[u8]) -> Result<Message, ProtoError> {
        let mut r = Reader { buf: payload };
        let msg = match msg_type {
            ty::HELLO => Self::Hello(Hello {
                version: r.u16("hello.version")?,
                kind: r.string("hello.kind")?,
                capabilities: r.u64("hello.capabilities")?,
            }),
            ty::PING => Self::Ping {
                nonce: r.u64("ping.nonce")?,
            },
            ty::PONG => Self::Pong {
                nonce: r.u64("pong.nonce")?,
            },
            ty::ECHO => Self::Echo {
                data: r.bytes("echo.data")?,
            },
            ty::ECHO_REPLY => Self::EchoReply {
                data: r.bytes("echo_reply.data")?,
            },
            ty::OK => Self::Ok,
            ty::ERROR => Self::Error {
                code: ErrorCode::from_u16(r.u16("error.code")?),
                message: r.string("error.message")?,
            },
            ty::SHUTDOWN => Self::Shutdown,
            ty::EXEC => Self::Exec(ExecSpec {
                argv: r.strings("exec.argv")?,
                env: r.env("exec.env")?,
                cwd: r.opt_string("exec.cwd")?,
                stdin: r.bool("exec.stdin")?,
                timeout_ms: r.opt_u64("exec.timeout_ms")?,
            }),
            ty::EXEC_STARTED => Self::ExecStarted {
                pid: r.u32("exec_started.pid")?,
            },
            ty::STDOUT => Self::Stdout {
                data: r.bytes("stdout.data")?,
            },
            ty::STDERR => Self::Stderr {
                data: r.bytes("stderr.data")?,
            },
            ty::STDIN => Self::Stdin {
                data: r.bytes("stdin.data")?,
            },
            ty::STDIN_EOF => Self::StdinEof,
            ty::KILL => Self::Kill {
                signal: r.i32("kill.signal")?,
            },
            ty::STDIN_ACK => Self::StdinAck {
                bytes: r.u32("stdin_ack.bytes")?,
            },
            ty::EXEC_EXIT => Self::ExecExit {
                code: r.opt_i32("exec_exit.code")?,
                signal: r.opt_i32("exec_exit.signal")?,
                timed_out: r.bool("exec_exit.timed_out")?,
            },
            ty::WRITE_FILE => Self::WriteFile {
                path: r.string("write_file.path")?,
                mode: r.u32("write_file.mode")?,
            },
            ty::READ_FILE => Self::ReadFile {
                path: r.string("read_file.path")?,
            },
            ty::STAT => Self::Stat {
                path: r.string("stat.path")?,
                follow: r.bool("stat.follow")?,
            },
            ty::FILE_INFO => Self::FileInfo(FileStat::decode(&mut r)?),
            ty::LIST_DIR => Self::ListDir {
                path: r.string("list_dir.path")?,
            },
            ty::DIR_ENTRIES => {
                let n = r.count("dir_entries.count", FileStat::MIN_ENCODED)?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    entries.push(FileStat::decode(&mut r)?);
                }
                Self::DirEntries { entries }
            }
            ty::MAKE_DIR => Self::MakeDir {
                path: r.string("make_dir.path")?,
                mode: r.u32("make_dir.mode")?,
                parents: r.bool("make_dir.parents")?,
            },
            ty::REMOVE => Self::Remove {
                path: r.string("remove.path")?,
                recursive: r.bool("remove.recursive")?,
            },
            ty::RENAME => Self::Rename {
                from: r.string("rename.from")?,
                to: r.string("rename.to")?,
            },
            ty::DATA => Self::Data {
                data: r.bytes("data.data")?,
            },
            ty::DATA_END => Self::DataEnd,
            ty::DISK_READ => Self::DiskRead {
                disk: r.u32("disk_read.disk")?,
                offset: r.u64("disk_read.offset")?,
                len: r.u32("disk_read.len")?,
            },
            ty::DISK_WRITE => Self::DiskWrite {
                disk: r.u32("disk_write.disk")?,
                offset: r.u64("disk_write.offset")?,
                data: r.bytes("disk_write.data")?,
            },
            ty::DISK_FLUSH => Self::DiskFlush {
                disk: r.u32("disk_flush.disk")?,
            },
            ty::DISK_DATA => Self::DiskData {
                data: r.bytes("disk_data.data")?,
            },
            ty::RUN_WASM => Self::RunWasm(WasmSpec {
                module_len: r.u64("run_wasm.module_len")?,
                args: r.strings("run_wasm.args")?,
                env: r.env("run_wasm.env")?,
                stdin: r.bytes("run_wasm.stdin")?,
                fuel: r.opt_u64("run_wasm.fuel")?,
                max_memory_bytes: r.opt_u64("run_wasm.max_memory_bytes")?,
                entropy: r.opt_array32("run_wasm.entropy")?,
                fs: match r.buf.is_empty() {
                    true => None,
                    false => match r.tag("run_wasm.fs")? {
                        true => Some(crate::wasmfs::WasmFs::from_bytes(r.slice("run_wasm.fs")?)?),
                        false => None,
                    },
                },
            }),
            ty::WASM_EXIT => Self::WasmExit {
                code: r.i32("wasm_exit.code")?,
            },
            ty::WASM_TRAP => Self::WasmTrap {
                message: r.string("wasm_trap.message")?,
            },
            ty::OUT_OF_FUEL => Self::OutOfFuel,
            ty::WASM_ERROR => Self::WasmError {
                kind: WasmErrorKind::from_u16(r.u16("wasm_error.kind")?),
                message: r.string("wasm_error.message")?,
            },
            ty::PREPARE_WASM => Self::PrepareWasm(PrepareSpec {
                module_len: r.u64("prepare_wasm.module_len")?,
                max_memory_bytes: r.opt_u64("prepare_wasm.max_memory_bytes")?,
            }),
            ty::WASM_PREPARED => Self::WasmPrepared {
                template: r.u64("wasm_prepared.template")?,
            },
            ty::RUN_PREPARED => Self::RunPrepared(RunPreparedSpec {
                template: r.u64("run_prepared.template")?,
                args: r.strings("run_prepared.args")?,
                env: r.env("run_prepared.env")?,
                stdin: r.bytes("run_prepared.stdin")?,
                fuel: r.opt_u64("run_prepared.fuel")?,
                seed: r.array("run_prepared.seed")?,
            }),
            ty::HOST_FUNCTIONS => Self::HostFunctions(r.host_decls()?),
            ty::HOST_CALL => Self::HostCall(r.host_call()?),
            ty::HOST_RETURN => Self::HostReturn(r.host_return()?),
            ty::HOST_ERROR => Self::HostError {
                message: r.string("host_error.message")?,
            },
            msg_type => Self::Unknown {
                msg_type,
                payload: payload.to_vec(),
            },
        };
        Ok(msg)
    }
}

/// Appends fields to a payload.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn raw(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Lengths above u32::MAX cannot fit a frame anyway; `Frame::encode` refuses the
    /// oversized payload, so saturating here only keeps the arithmetic total.
    pub(crate) fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub(crate) fn strs(&mut self, v: &[String]) {
        self.len(v.len());
        for s in v {
            self.str(s);
        }
    }
    pub(crate) fn env(&mut self, v: &[(String, String)]) {
        self.len(v.len());
        for (k, val) in v {
            self.str(k);
            self.str(val);
        }
    }
    pub(crate) fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
            None => self.u8(0),
        }
    }
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.u64(x);
            }
            None => self.u8(0),
        }
    }
    pub(crate) fn opt_i32(&mut self, v: Option<i32>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.i32(x);
            }
            None => self.u8(0),
        }
    }
}

/// Reads fields from a payload, checking every length.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::Truncated {
                field,
                needed: n,
                left: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.array::<1>(field)?[0])
    }
    /// A trailing optional 32-byte field: absent (an older peer) when the
    /// payload ends before it.
    fn opt_array32(&mut self, field: &'static str) -> Result<Option<[u8; 32]>, ProtoError> {
        if self.buf.is_empty() || !self.tag(field)? {
            return Ok(None);
        }
        Ok(Some(self.array::<32>(field)?))
    }
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, ProtoError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(ProtoError::InvalidValue {
                field,
                value: u64::from(v),
            }),
        }
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtoError> {
        Ok(i32::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, ProtoError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn slice(&mut self, field: &'static str) -> Result<&'a [u8], ProtoError> {
        let n = self.u32(field)? as usize;
        self.take(n, field)
    }
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, ProtoError> {
        Ok(self.slice(field)?.to_vec())
    }
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, ProtoError> {
        let raw = self.slice(field)?;
        core::str::from_utf8(raw)
            .map(String::from)
            .map_err(|_| ProtoError::InvalidUtf8 { field })
    }
    /// A list count; each item takes at least `min_item` bytes, so a count that
    /// cannot fit in what is left is rejected before any allocation.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        min_item: usize,
    ) -> Result<usize, ProtoError> {
        let n = self.u32(field)? as usize;
        let needed = n.saturating_mul(min_item);
        if needed > self.buf.len() {
            return Err(ProtoError::Truncated {
                field,
                needed,
                left: self.buf.len(),
            });
        }
        Ok(n)
    }
    pub(crate) fn strings(&mut self, field: &'static str) -> Result<Vec<String>, ProtoError> {
        let n = self.count(field, 4)?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.string(field)?);
        }
        Ok(out)
    }
    pub(crate) fn env(&mut self, field: &'static str) -> Result<Vec<(String, String)>, ProtoError> {
        let n = self.count(field, 8)?;
        let mut out = Vec::new();
        for _ in 0..n {
            let k = self.string(field)?;
            let v = self.string(field)?;
            out.push((k, v));
        }
        Ok(out)
    }
    pub(crate) fn tag(&mut self, field: &'static str) -> Result<bool, ProtoError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(ProtoError::InvalidValue {
                field,
                value: u64::from(v),
            }),
        }
    }
    pub(crate) fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, ProtoError> {
        if self.tag(field)? {
            Ok(Some(self.string(field)?))
        } else {
            Ok(None)
        }
    }
    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, ProtoError> {
        if self.tag(field)? {
            Ok(Some(self.u64(field)?))
        } else {
            Ok(None)
        }
    }
    pub(crate) fn opt_i32(&mut self, field: &'static str) -> Result<Option<i32>, ProtoError> {
        if self.tag(field)? {
            Ok(Some(self.i32(field)?))
        } else {
            Ok(None)
        }
    }
}
