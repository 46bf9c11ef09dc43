//! `poll_oneoff`: clock subscriptions and stdio readiness.
//!
//! Every descriptor we have is always ready: stdin holds all of its bytes
//! from the start (so a read never blocks, at worst it sees end of file) and
//! stdout/stderr are always writable. A call with a descriptor subscription
//! therefore never waits; it reports the descriptors and whatever clocks have
//! already expired. Only a call with nothing but clocks waits, until the
//! earliest deadline.
//!
//! Waiting is a busy wait on the run's clock: the runner cannot halt the
//! guest's CPU (it has no timer interrupt to be woken by). It is bounded
//! twice: the sleep is paid for up front in fuel, [`SLEEP_NS_PER_FUEL`]
//! nanoseconds per unit (a sleep the fuel cannot pay for ends the run with
//! `OutOfFuel` at once, without spinning), and every [`CHECK_IN_NS`] the
//! embedder is asked whether to go on (also every [`CHECK_IN_SPINS`] clock
//! readings), as between slices of execution, so an unmetered sleep still
//! ends when the embedder stops the run.
//!
//! The subscriptions are read straight from the module's memory in two passes
//! (validate and find the earliest deadline, then write events), so a call
//! allocates nothing however many subscriptions it names.

use super::abi::{self, AbiError, Errno};
use super::ctx::{Stop, WasiCtx};
use super::funcs::is_open;

/// Size of a `subscription` record.
pub const SUBSCRIPTION_SIZE: u32 = 48;
/// Size of an `event` record.
pub const EVENT_SIZE: u32 = 32;
/// Fuel charged per subscription, on top of the call's base cost.
pub const SUBSCRIPTION_FUEL: u64 = 4;
/// Nanoseconds of sleep one unit of fuel pays for: a microsecond each.
pub const SLEEP_NS_PER_FUEL: u64 = 1_000;
/// How often a sleep asks the embedder whether to go on (and flushes output).
pub const CHECK_IN_NS: u64 = 50_000_000;
/// A sleep also checks in after this many clock readings, in case the clock
/// stands still.
pub const CHECK_IN_SPINS: u32 = 100_000;

/// `eventtype::clock`.
pub const EVENTTYPE_CLOCK: u8 = 0;
/// `eventtype::fd_read`.
pub const EVENTTYPE_FD_READ: u8 = 1;
/// `eventtype::fd_write`.
pub const EVENTTYPE_FD_WRITE: u8 = 2;
/// `subclockflags::subscription_clock_abstime`.
pub const SUBCLOCK_ABSTIME: u16 = 1;
/// `eventrwflags::fd_readwrite_hangup`: stdin is at end of file.
pub const EVENTRW_HANGUP: u16 = 1;

/// `clockid` values are 0..=3 (realtime, monotonic, process and thread CPU
/// time); all of them advance with the run's clock.
const CLOCK_ID_MAX: u32 = 3;
/// The CPU-time clocks count from the run's start.
const CLOCK_PROCESS_CPUTIME: u32 = 2;

/// One subscription, decoded.
enum Sub {
    /// Fires at `deadline` (in the run clock's nanoseconds).
    Clock { deadline: u64 },
    /// Wants `fd` readable (`EVENTTYPE_FD_READ`) or writable.
    Fd { kind: u8, fd: u32 },
}

/// Decodes subscription `index` of the array at `base` (checked to lie in
/// memory). `entry` is the call's entry time, `None` if there is no clock.
fn decode(
    ctx: &WasiCtx,
    mem: &[u8],
    base: u32,
    index: u32,
    entry: Option<u64>,
) -> Result<(u64, Sub), Errno> {
    let at = base + index * SUBSCRIPTION_SIZE;
    let fault = |error: AbiError| error.errno();
    let userdata = abi::read_u64(mem, at).map_err(fault)?;
    let tag = abi::slice(mem, at + 8, 1).map_err(fault)?[0];
    let sub = match tag {
        EVENTTYPE_CLOCK => {
            let id = abi::read_u32(mem, at + 16).map_err(fault)?;
            let timeout = abi::read_u64(mem, at + 24).map_err(fault)?;
            let flags = abi::slice(mem, at + 40, 2).map_err(fault)?;
            let flags = u16::from_le_bytes([flags[0], flags[1]]);
            if id > CLOCK_ID_MAX || flags & !SUBCLOCK_ABSTIME != 0 {
                return Err(Errno::INVAL);
            }
            let deadline = if flags & SUBCLOCK_ABSTIME != 0 {
                if id >= CLOCK_PROCESS_CPUTIME {
                    timeout.saturating_add(ctx.clock_start)
                } else {
                    timeout
                }
            } else if timeout == 0 {
                0
            } else {
                // Without a clock a relative timer never fires (see `wait`).
                entry.map_or(u64::MAX, |now| now.saturating_add(timeout))
            };
            Sub::Clock { deadline }
        }
        EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => Sub::Fd {
            kind: tag,
            fd: abi::read_u32(mem, at + 16).map_err(fault)?,
        },
        _ => return Err(Errno::INVAL),
    };
    Ok((userdata, sub))
}

/// `poll_oneoff(in: *subscription, out: *event, nsubscriptions, nevents: *u32)`.
pub fn poll_oneoff(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    subs: u32,
    events: u32,
    count: u32,
    nevents: u32,
) -> Errno {
    if count == 0 {
        return Errno::INVAL;
    }
    if !ctx.charge(u64::from(count).saturating_mul(SUBSCRIPTION_FUEL)) {
        return Errno::SUCCESS; // the run stops; the errno is never seen
    }
    let checks = [
        abi::check_range(
            mem.len(),
            subs,
            u64::from(count) * u64::from(SUBSCRIPTION_SIZE),
        ),
        abi::check_range(mem.len(), events, u64::from(count) * u64::from(EVENT_SIZE)),
        abi::check_range(mem.len(), nevents, 4),
    ];
    if let Some(Err(error)) = checks.iter().find(|check| check.is_err()) {
        return error.errno();
    }
    let clock_ok = ctx.clock_resolution_ns.is_some();
    // Relative timers count from here, in both passes.
    let entry = clock_ok.then(|| (ctx.clock)());

    // Pass 1: validate, and see whether anything is ready without waiting.
    let mut earliest = u64::MAX;
    let mut fd_ready = false;
    for index in 0..count {
        match decode(ctx, mem, subs, index, entry) {
            Ok((_, Sub::Clock { deadline })) => earliest = earliest.min(deadline),
            Ok((_, Sub::Fd { .. })) => fd_ready = true,
            Err(errno) => return errno,
        }
    }
    let now = if fd_ready || earliest == 0 {
        entry.unwrap_or(0)
    } else if !clock_ok {
        // Nothing but timers and no clock to time them with.
        ctx.stop = Some(Stop::NoClock);
        return Errno::NOTSUP;
    } else {
        match wait(ctx, earliest) {
            Some(now) => now,
            None => return Errno::SUCCESS, // the run stops
        }
    };

    // Pass 2: one event per ready subscription, in subscription order.
    let mut written: u32 = 0;
    for index in 0..count {
        let Ok((userdata, sub)) = decode(ctx, mem, subs, index, entry) else {
            continue; // pass 1 accepted every record; nothing changed since
        };
        let event = match sub {
            Sub::Clock { deadline } if deadline <= now => Event {
                userdata,
                error: Errno::SUCCESS,
                kind: EVENTTYPE_CLOCK,
                nbytes: 0,
                flags: 0,
            },
            Sub::Clock { .. } => continue,
            Sub::Fd { kind, fd } => fd_event(ctx, userdata, kind, fd),
        };
        let at = events + written * EVENT_SIZE;
        if let Err(error) = event.write(mem, at) {
            return error.errno();
        }
        written += 1;
    }
    match abi::write_u32(mem, nevents, written) {
        Ok(()) => Errno::SUCCESS,
        Err(error) => error.errno(),
    }
}

/// The event for a descriptor subscription: always ready, or an error.
fn fd_event(ctx: &WasiCtx, userdata: u64, kind: u8, fd: u32) -> Event {
    let mut event = Event {
        userdata,
        error: Errno::SUCCESS,
        kind,
        nbytes: 0,
        flags: 0,
    };
    match (kind, fd) {
        (_, fd) if !is_open(ctx, fd) => event.error = Errno::BADF,
        (EVENTTYPE_FD_READ, 0) => {
            let left = ctx.stdin.len().saturating_sub(ctx.stdin_pos);
            event.nbytes = left as u64;
            if left == 0 {
                event.flags = EVENTRW_HANGUP;
            }
        }
        (EVENTTYPE_FD_WRITE, 1 | 2) => event.nbytes = crate::OUTPUT_CHUNK as u64,
        // Reading stdout/stderr or writing stdin: fd_read/fd_write say EBADF too.
        _ => event.error = Errno::BADF,
    }
    event
}

/// Busy-waits until the run clock reaches `deadline`, after paying for the
/// sleep. Returns the clock's reading then, or `None` if the run must stop
/// (`ctx.stop` says why).
fn wait(ctx: &mut WasiCtx, deadline: u64) -> Option<u64> {
    let mut now = (ctx.clock)();
    if deadline <= now {
        return Some(now);
    }
    if !ctx.charge((deadline - now).div_ceil(SLEEP_NS_PER_FUEL)) {
        return None;
    }
    ctx.flush();
    let mut next_check_in = now.saturating_add(CHECK_IN_NS);
    let mut spins: u32 = 0;
    while now < deadline {
        spins += 1;
        if now >= next_check_in || spins >= CHECK_IN_SPINS {
            spins = 0;
            ctx.flush();
            if !ctx.host.keep_going() {
                ctx.stop = Some(Stop::Interrupted);
                return None;
            }
            next_check_in = now.saturating_add(CHECK_IN_NS);
        }
        core::hint::spin_loop();
        now = (ctx.clock)();
    }
    Some(now)
}

/// An `event` record.
struct Event {
    userdata: u64,
    error: Errno,
    kind: u8,
    nbytes: u64,
    flags: u16,
}

impl Event {
    fn write(&self, mem: &mut [u8], at: u32) -> Result<(), AbiError> {
        let record = abi::slice_mut(mem, at, EVENT_SIZE)?;
        record.fill(0);
        record[0..8].copy_from_slice(&self.userdata.to_le_bytes());
        record[8..10].copy_from_slice(&self.error.0.to_le_bytes());
        record[10] = self.kind;
        record[16..24].copy_from_slice(&self.nbytes.to_le_bytes());
        record[24..26].copy_from_slice(&self.flags.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RunHost, Stream};
    use core::cell::Cell;

    const SUBS: u32 = 0;
    const EVENTS: u32 = 1024;
    const NEVENTS: u32 = 2048;

    /// An embedder that counts output and check-ins and stops after `allow`.
    struct Host {
        check_ins: u32,
        allow: u32,
    }

    impl RunHost for Host {
        fn output(&mut self, _: Stream, _: &[u8]) {}
        fn keep_going(&mut self) -> bool {
            self.check_ins += 1;
            self.check_ins <= self.allow
        }
    }

    /// A clock that advances 1 ms on every reading, and counts them.
    struct Clock(Cell<u64>, Cell<u32>);

    impl Clock {
        fn new() -> Clock {
            Clock(Cell::new(1_000_000_000), Cell::new(0))
        }
        fn read(&self) -> u64 {
            self.1.set(self.1.get() + 1);
            self.0.set(self.0.get() + 1_000_000);
            self.0.get()
        }
    }

    fn with_ctx<R>(stdin: &[u8], allow: u32, f: impl FnOnce(&mut WasiCtx, &Clock) -> R) -> R {
        let clock = Clock::new();
        let read = || clock.read();
        let mut host = Host {
            check_ins: 0,
            allow,
        };
        let mut ctx = WasiCtx::new(&[], &[], stdin, &read, [0; 32], &mut host);
        clock.1.set(0); // count the readings `f` causes
        f(&mut ctx, &clock)
    }

    fn clock_sub(mem: &mut [u8], index: u32, userdata: u64, id: u32, timeout: u64, flags: u16) {
        let at = (SUBS + index * SUBSCRIPTION_SIZE) as usize;
        mem[at..at + 48].fill(0);
        mem[at..at + 8].copy_from_slice(&userdata.to_le_bytes());
        mem[at + 8] = EVENTTYPE_CLOCK;
        mem[at + 16..at + 20].copy_from_slice(&id.to_le_bytes());
        mem[at + 24..at + 32].copy_from_slice(&timeout.to_le_bytes());
        mem[at + 40..at + 42].copy_from_slice(&flags.to_le_bytes());
    }

    fn fd_sub(mem: &mut [u8], index: u32, userdata: u64, kind: u8, fd: u32) {
        let at = (SUBS + index * SUBSCRIPTION_SIZE) as usize;
        mem[at..at + 48].fill(0);
        mem[at..at + 8].copy_from_slice(&userdata.to_le_bytes());
        mem[at + 8] = kind;
        mem[at + 16..at + 20].copy_from_slice(&fd.to_le_bytes());
    }

    /// (userdata, error, type, nbytes, flags) of event `index`.
    fn event(mem: &[u8], index: u32) -> (u64, u16, u8, u64, u16) {
        let at = (EVENTS + index * EVENT_SIZE) as usize;
        let r = &mem[at..at + 32];
        (
            u64::from_le_bytes(r[0..8].try_into().unwrap()),
            u16::from_le_bytes([r[8], r[9]]),
            r[10],
            u64::from_le_bytes(r[16..24].try_into().unwrap()),
            u16::from_le_bytes([r[24], r[25]]),
        )
    }

    fn nevents(mem: &[u8]) -> u32 {
        abi::read_u32(mem, NEVENTS).unwrap()
    }

    /// A relative monotonic timer alone waits until it expires, reports one
    /// clock event and pays for the sleep in fuel.
    #[test]
    fn relative_timer_waits_then_fires() {
        let mut mem = alloc::vec![0u8; 4096];
        clock_sub(&mut mem, 0, 0x1234, 1, 5_000_000, 0);
        let (errno, reads, fuel) = with_ctx(b"", 10, |ctx, clock| {
            let errno = poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 1, NEVENTS);
            (errno, clock.1.get(), ctx.fuel_used)
        });
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(nevents(&mem), 1);
        assert_eq!(event(&mem, 0), (0x1234, 0, EVENTTYPE_CLOCK, 0, 0));
        // Entry reading, the sleep's first reading, then 1 ms per reading.
        assert!(reads >= 6, "the clock was read {reads} times");
        assert!(
            (4_000..=6_000).contains(&fuel),
            "{fuel} fuel for a 5 ms sleep"
        );
    }

    /// Of two timers only the one that expired is reported; an absolute
    /// deadline in the past fires at once without a sleep.
    #[test]
    fn only_expired_timers_fire() {
        let mut mem = alloc::vec![0u8; 4096];
        clock_sub(&mut mem, 0, 1, 0, 60_000_000_000, 0);
        clock_sub(&mut mem, 1, 2, 0, 5, SUBCLOCK_ABSTIME);
        let (errno, fuel) = with_ctx(b"", 10, |ctx, _| {
            let errno = poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 2, NEVENTS);
            (errno, ctx.fuel_used)
        });
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(nevents(&mem), 1);
        assert_eq!(event(&mem, 0), (2, 0, EVENTTYPE_CLOCK, 0, 0));
        assert_eq!(fuel, 2 * SUBSCRIPTION_FUEL, "no sleep was paid for");
    }

    /// Stdio is always ready, so a timer beside it never makes the call
    /// wait; a bad descriptor is an event with EBADF, not a failed call.
    #[test]
    fn stdio_is_ready_without_waiting() {
        let mut mem = alloc::vec![0u8; 4096];
        clock_sub(&mut mem, 0, 10, 1, 60_000_000_000, 0);
        fd_sub(&mut mem, 1, 11, EVENTTYPE_FD_READ, 0);
        fd_sub(&mut mem, 2, 12, EVENTTYPE_FD_WRITE, 1);
        fd_sub(&mut mem, 3, 13, EVENTTYPE_FD_WRITE, 2);
        fd_sub(&mut mem, 4, 14, EVENTTYPE_FD_READ, 7);
        fd_sub(&mut mem, 5, 15, EVENTTYPE_FD_READ, 1);
        let reads = with_ctx(b"abc", 10, |ctx, clock| {
            assert_eq!(
                poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 6, NEVENTS),
                Errno::SUCCESS
            );
            clock.1.get()
        });
        assert_eq!(reads, 1, "the clock is read once, nothing waits");
        assert_eq!(nevents(&mem), 5);
        let chunk = crate::OUTPUT_CHUNK as u64;
        assert_eq!(event(&mem, 0), (11, 0, EVENTTYPE_FD_READ, 3, 0));
        assert_eq!(event(&mem, 1), (12, 0, EVENTTYPE_FD_WRITE, chunk, 0));
        assert_eq!(event(&mem, 2), (13, 0, EVENTTYPE_FD_WRITE, chunk, 0));
        assert_eq!(event(&mem, 3), (14, Errno::BADF.0, EVENTTYPE_FD_READ, 0, 0));
        assert_eq!(event(&mem, 4), (15, Errno::BADF.0, EVENTTYPE_FD_READ, 0, 0));
    }

    /// Stdin at end of file is readable with the hangup flag; a closed
    /// stdout is EBADF.
    #[test]
    fn eof_and_closed_stdio() {
        let mut mem = alloc::vec![0u8; 4096];
        fd_sub(&mut mem, 0, 1, EVENTTYPE_FD_READ, 0);
        fd_sub(&mut mem, 1, 2, EVENTTYPE_FD_WRITE, 1);
        with_ctx(b"", 10, |ctx, _| {
            ctx.closed[1] = true;
            assert_eq!(
                poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 2, NEVENTS),
                Errno::SUCCESS
            );
        });
        assert_eq!(nevents(&mem), 2);
        assert_eq!(event(&mem, 0), (1, 0, EVENTTYPE_FD_READ, 0, EVENTRW_HANGUP));
        assert_eq!(event(&mem, 1), (2, Errno::BADF.0, EVENTTYPE_FD_WRITE, 0, 0));
    }

    /// Bad arguments fail the whole call before anything is written.
    #[test]
    fn bad_subscriptions_and_pointers() {
        let mut mem = alloc::vec![0u8; 4096];
        let len = mem.len() as u32;
        // (set up memory, events pointer, count, nevents pointer, errno)
        type Case<'f> = (&'f dyn Fn(&mut [u8]), u32, u32, u32, Errno);
        let cases: [Case; 7] = [
            (&|_| {}, EVENTS, 0, NEVENTS, Errno::INVAL),
            (&|m| fd_sub(m, 0, 1, 3, 0), EVENTS, 1, NEVENTS, Errno::INVAL),
            (
                &|m| clock_sub(m, 0, 1, 4, 0, 0),
                EVENTS,
                1,
                NEVENTS,
                Errno::INVAL,
            ),
            (
                &|m| clock_sub(m, 0, 1, 0, 0, 2),
                EVENTS,
                1,
                NEVENTS,
                Errno::INVAL,
            ),
            (
                &|m| fd_sub(m, 0, 1, 1, 0),
                len - 16,
                1,
                NEVENTS,
                Errno::FAULT,
            ),
            (&|m| fd_sub(m, 0, 1, 1, 0), EVENTS, 1, len - 2, Errno::FAULT),
            (
                &|m| fd_sub(m, 0, 1, 1, 0),
                EVENTS,
                200,
                NEVENTS,
                Errno::FAULT,
            ),
        ];
        for (index, (setup, events, count, nevents_at, expected)) in cases.iter().enumerate() {
            mem.fill(0);
            setup(&mut mem);
            let errno = with_ctx(b"", 10, |ctx, _| {
                poll_oneoff(ctx, &mut mem, SUBS, *events, *count, *nevents_at)
            });
            assert_eq!(errno, *expected, "case {index}");
            assert!(
                mem[EVENTS as usize..].iter().all(|b| *b == 0),
                "case {index} wrote"
            );
        }
    }

    /// A sleep the fuel cannot pay for ends the run at once, without spinning.
    #[test]
    fn unaffordable_sleep_stops_without_spinning() {
        let mut mem = alloc::vec![0u8; 4096];
        clock_sub(&mut mem, 0, 1, 1, u64::MAX, 0);
        let (stop, reads) = with_ctx(b"", 10, |ctx, clock| {
            ctx.fuel_available = 1_000_000;
            poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 1, NEVENTS);
            (ctx.stop, clock.1.get())
        });
        assert_eq!(stop, Some(Stop::OutOfFuel));
        assert!(reads <= 2, "clock read {reads} times");
        assert_eq!(nevents(&mem), 0);
    }

    /// An unmetered sleep checks in with the embedder and stops when told.
    #[test]
    fn long_sleep_checks_in_and_can_be_interrupted() {
        let mut mem = alloc::vec![0u8; 4096];
        clock_sub(&mut mem, 0, 1, 1, 3_600_000_000_000, 0);
        let (stop, reads) = with_ctx(b"", 3, |ctx, clock| {
            poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 1, NEVENTS);
            (ctx.stop, clock.1.get())
        });
        assert_eq!(stop, Some(Stop::Interrupted));
        // Four check-ins 50 ms of 1-ms readings apart, not an hour of them.
        assert!((150..=260).contains(&reads), "clock read {reads} times");
    }

    /// Without a clock, waiting on timers alone stops the run (as reading a
    /// clock does); a zero timeout needs no clock.
    #[test]
    fn timers_without_a_clock() {
        let mut mem = alloc::vec![0u8; 4096];
        clock_sub(&mut mem, 0, 1, 1, 1_000, 0);
        let (errno, stop) = with_ctx(b"", 10, |ctx, _| {
            ctx.clock_resolution_ns = None;
            (
                poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 1, NEVENTS),
                ctx.stop,
            )
        });
        assert_eq!((errno, stop), (Errno::NOTSUP, Some(Stop::NoClock)));
        clock_sub(&mut mem, 0, 1, 1, 0, 0);
        let (errno, stop) = with_ctx(b"", 10, |ctx, _| {
            ctx.clock_resolution_ns = None;
            (
                poll_oneoff(ctx, &mut mem, SUBS, EVENTS, 1, NEVENTS),
                ctx.stop,
            )
        });
        assert_eq!((errno, stop), (Errno::SUCCESS, None));
        assert_eq!(nevents(&mem), 1);
    }
}
