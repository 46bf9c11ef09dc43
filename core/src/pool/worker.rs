//! A pool thread: takes jobs one at a time and does the slow part (boot, reset,
//! kill) without the pool's lock, then books the outcome under it.

use super::pool::{Job, Shared};
use crate::error::Result;
use crate::sandbox::Sandbox;
use std::sync::Arc;

/// Runs jobs until the pool closes and no job is left.
pub(crate) fn run(sh: &Shared) {
    loop {
        let job = {
            let mut st = sh.lock();
            loop {
                if let Some(j) = st.jobs.pop_front() {
                    st.running += 1;
                    break j;
                }
                if st.closed {
                    return;
                }
                st = sh.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        match job {
            Job::Create => {
                let r = sh.source.create();
                finish(sh, r.map(|sb| (sb, true)), Outcome::default());
            }
            Job::Reset(sb) => {
                let (r, outcome) = reset(sh, sb);
                finish(sh, r, outcome);
            }
            Job::Discard(sb) => {
                sb.kill();
                drop(sb);
                let mut st = sh.lock();
                st.running -= 1;
                st.plan(&sh.config);
                drop(st);
                sh.work.notify_all();
            }
        }
    }
}

/// What a reset job did besides its result, for the counters.
#[derive(Default)]
struct Outcome {
    reset_ok: bool,
    reset_failed: bool,
    discarded: bool,
}

/// Makes a released sandbox clean: in place if the source can, else a fresh one
/// replaces it. The `bool` of the result says whether a new sandbox was made.
fn reset(sh: &Shared, sb: Arc<Sandbox>) -> (Result<(Sandbox, bool)>, Outcome) {
    let mut outcome = Outcome::default();
    match Arc::try_unwrap(sb) {
        Ok(mut sb) => match injected_failure(sh).map_or_else(|| sh.source.reset(&mut sb), Err) {
            Ok(true) => {
                outcome.reset_ok = true;
                return (Ok((sb, false)), outcome);
            }
            // The source cannot clean it in place: a fresh one is the reset.
            Ok(false) => outcome.reset_ok = true,
            Err(_) => {
                outcome.reset_failed = true;
                outcome.discarded = true;
            }
        },
        Err(shared) => {
            // Someone kept a handle past release: never hand this one out again.
            shared.kill();
            outcome.discarded = true;
        }
    }
    (sh.source.create().map(|sb| (sb, true)), outcome)
}

/// Test builds: a failure the test asked for instead of this reset.
#[cfg(feature = "test-utils")]
fn injected_failure(sh: &Shared) -> Option<crate::Error> {
    use std::sync::atomic::Ordering;
    sh.fail_resets
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .ok()
        .map(|_| crate::Error::Stopped {
            op: "pool reset (injected by fail_next_resets)",
        })
}

#[cfg(not(feature = "test-utils"))]
fn injected_failure(_: &Shared) -> Option<crate::Error> {
    None
}

/// Books a create or reset job's result: the sandbox goes idle (or is killed if
/// the pool closed meanwhile); a failure goes to a waiting acquirer.
fn finish(sh: &Shared, r: Result<(Sandbox, bool)>, outcome: Outcome) {
    let mut st = sh.lock();
    st.running -= 1;
    st.incoming -= 1;
    let m = &mut st.metrics;
    m.resets += u64::from(outcome.reset_ok);
    m.reset_failures += u64::from(outcome.reset_failed);
    m.discarded += u64::from(outcome.discarded);
    let mut doomed = None;
    match r {
        Ok((sb, new)) => {
            st.metrics.created += u64::from(new);
            if st.closed {
                st.metrics.discarded += 1;
                doomed = Some(sb);
            } else {
                st.idle.push_back(Arc::new(sb));
            }
        }
        Err(e) => {
            st.metrics.create_failures += 1;
            if st.waiters > st.failures.len() {
                st.failures.push_back(e);
            } else {
                st.refill_paused = true;
            }
        }
    }
    st.plan(&sh.config);
    drop(st);
    sh.ready.notify_all();
    sh.work.notify_all();
    drop(doomed);
}
