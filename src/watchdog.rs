//! Stops calls at their deadline from a thread of its own, so that a call can run on the thread
//! that received its invocation: no hand-off to another thread and back on the warm path.
//!
//! Registering a call wakes the watchdog thread only when its deadline is the earliest one
//! watched, which for calls of one timeout arriving one after the other is almost never: a
//! finished call is forgotten lazily, when the thread next wakes or the next call registers
//! among many.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use extism::CancelHandle;

/// How often an interrupt is repeated until the call stops (one sent before the call armed its
/// deadline is absorbed by it).
const REPEAT: Duration = Duration::from_millis(10);

/// From how many watched calls on registering a call forgets the finished ones.
const FORGET_FROM: usize = 32;

/// One call being watched.
pub struct Watch {
    state: Arc<WatchState>,
}

struct WatchState {
    finished: AtomicBool,
    interrupted: AtomicBool,
}

impl Watch {
    /// Whether the deadline came and the call was interrupted.
    pub fn interrupted(&self) -> bool {
        self.state.interrupted.load(Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.state.finished.store(true, Ordering::SeqCst);
    }
}

struct Entry {
    deadline: Instant,
    cancel: CancelHandle,
    state: Arc<WatchState>,
}

struct Watchdog {
    entries: Mutex<Watched>,
    changed: Condvar,
}

#[derive(Default)]
struct Watched {
    entries: Vec<Entry>,
    /// When the thread wakes next by itself (`None`: it waits to be told).
    wakes_at: Option<Instant>,
}

static WATCHDOG: LazyLock<Arc<Watchdog>> = LazyLock::new(|| {
    let watchdog = Arc::new(Watchdog {
        entries: Mutex::new(Watched::default()),
        changed: Condvar::new(),
    });
    let thread = Arc::clone(&watchdog);
    std::thread::Builder::new()
        .name("call-watchdog".into())
        .spawn(move || thread.run())
        .expect("spawn the call watchdog thread");
    watchdog
});

/// Interrupts the call behind `cancel` at `deadline` (and every 10 ms after, until it stops),
/// unless the returned [`Watch`] is dropped first.
pub fn watch(deadline: Instant, cancel: CancelHandle) -> Watch {
    let state = Arc::new(WatchState {
        finished: AtomicBool::new(false),
        interrupted: AtomicBool::new(false),
    });
    let watchdog = &*WATCHDOG;
    let mut watched = watchdog.entries.lock().expect("watchdog lock");
    // Finished calls are forgotten here too, so many short calls between two wakes of the
    // thread do not pile up.
    if watched.entries.len() >= FORGET_FROM {
        watched
            .entries
            .retain(|entry| !entry.state.finished.load(Ordering::SeqCst));
    }
    watched.entries.push(Entry {
        deadline,
        cancel,
        state: Arc::clone(&state),
    });
    if watched.wakes_at.is_none_or(|at| deadline < at) {
        watched.wakes_at = Some(deadline);
        watchdog.changed.notify_one();
    }
    Watch { state }
}

impl Watchdog {
    fn run(&self) {
        let mut watched = self.entries.lock().expect("watchdog lock");
        loop {
            let now = Instant::now();
            watched
                .entries
                .retain(|entry| !entry.state.finished.load(Ordering::SeqCst));
            for entry in watched.entries.iter().filter(|e| e.deadline <= now) {
                entry.state.interrupted.store(true, Ordering::SeqCst);
                let _ = entry.cancel.cancel();
            }
            let next = watched
                .entries
                .iter()
                .map(|entry| entry.deadline.max(now + REPEAT))
                .min();
            watched.wakes_at = next;
            watched = match next {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    self.changed
                        .wait_timeout(watched, wait)
                        .expect("watchdog lock")
                        .0
                }
                None => self.changed.wait(watched).expect("watchdog lock"),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looping() -> extism::Plugin {
        let wasm = wat::parse_str(
            r#"(module
                (func (export "spin") (result i32) (loop (br 0)) (i32.const 0))
                (func (export "quick") (result i32) (i32.const 0)))"#,
        )
        .unwrap();
        extism::Plugin::new(&wasm, [], false).unwrap()
    }

    #[test]
    fn a_call_past_its_deadline_is_interrupted_and_others_are_not() {
        let mut spinning = looping();
        let mut quick = looping();
        let started = Instant::now();
        // A later deadline, registered first: the earlier one must still wake the thread.
        let late = watch(started + Duration::from_secs(60), quick.cancel_handle());
        let early = watch(
            started + Duration::from_millis(50),
            spinning.cancel_handle(),
        );
        assert!(spinning.call::<&str, &[u8]>("spin", "").is_err());
        assert!(early.interrupted());
        assert!(started.elapsed() < Duration::from_secs(5));
        quick.call::<&str, &[u8]>("quick", "").unwrap();
        assert!(!late.interrupted());
    }
}
