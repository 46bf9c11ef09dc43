//! Agent capabilities the Rust API has beyond exec, files and WASM: echo with a
//! per-call timeout, and the host-side agent limits of a sandbox.

use crate::args::{bytes_arg, handle, handle_mut, invalid, out, write_out};
use crate::boundary::ffi_status;
use crate::bytes::kvmsb_bytes;
use crate::sandbox::kvmsb_sandbox;
use crate::status::kvmsb_status;
use crate::timeout::answer_timeout;
use kvmsandbox_core::agent::AgentLimits;
use std::time::Duration;

/// Host-side bounds on what one agent call may take (see the Rust
/// `AgentLimits`). Read them with `kvmsb_sandbox_agent_limits`, change fields,
/// and set them with `kvmsb_sandbox_set_agent_limits`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct kvmsb_agent_limits {
    /// Most bytes one call collects per stream (default 64 MiB); more fails with
    /// KVMSB_STATUS_OUTPUT_LIMIT. Must be > 0.
    pub max_output: u64,
    /// Milliseconds after which a call without a timeout of its own ends
    /// (default one hour). Must be > 0.
    pub default_deadline_ms: u64,
    /// Frames for other requests skipped while waiting for an answer (default 1024).
    pub max_stale_frames: u32,
}

/// Writes the sandbox's agent limits to `*limits_out`.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_agent_limits(
    sandbox: *const kvmsb_sandbox,
    limits_out: *mut kvmsb_agent_limits,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(limits_out, "limits_out")?;
        let l = sb.inner.agent_limits();
        let c = kvmsb_agent_limits {
            max_output: l.max_output,
            default_deadline_ms: u64::try_from(l.default_deadline.as_millis()).unwrap_or(u64::MAX),
            max_stale_frames: l.max_stale_frames,
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(limits_out, c) };
        Ok(())
    })
}

/// Sets the sandbox's agent limits for later calls.
///
/// Thread-safety: needs exclusive use of the sandbox (no call running on it).
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_set_agent_limits(
    sandbox: *mut kvmsb_sandbox,
    limits: *const kvmsb_agent_limits,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle used by this thread alone (documented).
        let sb = unsafe { handle_mut(sandbox, "sandbox") }?;
        // SAFETY: a non-NULL limits points to a kvmsb_agent_limits.
        let l = *unsafe { handle(limits, "limits") }?;
        if l.max_output == 0 || l.default_deadline_ms == 0 {
            return Err(invalid(format!(
                "limits: max_output = {} and default_deadline_ms = {} must both be > 0",
                l.max_output, l.default_deadline_ms
            )));
        }
        // From the defaults: AgentLimits may gain fields, which keep them.
        let limits = AgentLimits::default()
            .with_max_output(l.max_output)
            .with_default_deadline(Duration::from_millis(l.default_deadline_ms))
            .with_max_stale_frames(l.max_stale_frames);
        let own = sb.inner.own_mut().ok_or_else(|| {
            invalid("sandbox: a pooled sandbox keeps its pool's agent limits".to_string())
        })?;
        own.set_agent_limits(limits);
        Ok(())
    })
}

/// Sends `data[0..len]` through the agent and returns what came back in
/// `*out_bytes`. `timeout_ms`: milliseconds or KVMSB_TIMEOUT_DEFAULT for the
/// answer (KVMSB_TIMEOUT_NONE is the default too: an answer wait always ends).
///
/// Ownership: the caller frees `*out_bytes` with `kvmsb_bytes_free`.
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_echo(
    sandbox: *const kvmsb_sandbox,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
    out_bytes: *mut kvmsb_bytes,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(out_bytes, "out_bytes")?;
        // SAFETY: NULL allowed when len is 0; otherwise len readable bytes.
        let data = unsafe { bytes_arg(data, len, "data") }?;
        let t = answer_timeout(timeout_ms)?;
        let back = sb.inner.within(t).echo(data)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_bytes, kvmsb_bytes::from_vec(back)) };
        Ok(())
    })
}
