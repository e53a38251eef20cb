//! The execution clock: the timeout counts only while no approval is pending.
//!
//! A program that calls a tool needing a person's approval waits for that person; the wait
//! is not the program's doing, so it must not use up the program's time limit (the approval
//! wait has a limit of its own, [`Limits::approval_timeout`](crate::Limits::approval_timeout)).
//! Every driver measures its deadline with a [`Budget`] taken from the context's
//! [`ExecutionClock`]: time passes for the budget only while the clock is not *held*, and
//! core holds it for as long as any approval of the execution is pending.
//!
//! The hold stops the clock only while **no guest code runs**. A driver that enters its
//! engine while an approval is pending (another call's result arrived) marks the entry with
//! [`ExecutionClock::running`]: while such a mark is alive held time does not accrue, so every
//! slice of guest code is charged and a program cannot compute for free in short slices
//! while a person thinks. (Before, each entry during a hold was given the full "remaining"
//! time again, because the budget was frozen between entries.) The call pump marks every
//! step it takes; a driver whose guest runs elsewhere (a sidecar that counts CPU time
//! itself) forwards [`ExecutionClock::watch`], which reports whether the clock is stopped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Shared, cloneable clock of a context's executions; see the module docs.
///
/// ```
/// use std::time::Duration;
/// use code_mode::ExecutionClock;
///
/// let clock = ExecutionClock::new();
/// let budget = clock.budget(Duration::from_secs(10));
/// let hold = clock.hold();
/// assert!(clock.is_held());
/// std::thread::sleep(Duration::from_millis(20));
/// drop(hold);
/// // The 20 ms spent held did not count.
/// assert!(budget.used() < Duration::from_millis(15));
/// ```
#[derive(Clone)]
pub struct ExecutionClock {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// `true` while held; waiters watch it to stop and restart their timers.
    held: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    holds: u32,
    /// Guest code running now (marks alive): held time does not accrue meanwhile.
    running: u32,
    /// Since when the clock has been stopped (held, no guest code running).
    since: Option<Instant>,
    paused: Duration,
}

impl State {
    fn stopped(&self) -> bool {
        self.holds > 0 && self.running == 0
    }
}

impl Default for ExecutionClock {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ExecutionClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionClock")
            .field("held", &self.is_held())
            .field("paused", &self.paused())
            .finish()
    }
}

impl ExecutionClock {
    /// A running clock.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                held: watch::Sender::new(false),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `change` to the state and keeps the stopped interval and the watchers in
    /// step with it.
    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state();
        let was = state.stopped();
        change(&mut state);
        let now = state.stopped();
        if was == now {
            return;
        }
        if now {
            state.since = Some(Instant::now());
        } else if let Some(since) = state.since.take() {
            state.paused += since.elapsed();
        }
        self.inner.held.send_replace(now);
    }

    /// Stops the clock until the returned guard (and every other hold) is dropped; while
    /// guest code runs ([`running`](Self::running)) it goes on all the same.
    pub fn hold(&self) -> ClockHold {
        self.update(|s| s.holds = s.holds.saturating_add(1));
        ClockHold {
            clock: self.clone(),
        }
    }

    fn release(&self) {
        self.update(|s| s.holds = s.holds.saturating_sub(1));
    }

    /// Marks guest code as running until the returned guard is dropped: the clock counts
    /// meanwhile even if held. A driver takes it around every entry into its engine.
    ///
    /// ```
    /// use std::time::Duration;
    /// let clock = code_mode::ExecutionClock::new();
    /// let budget = clock.budget(Duration::from_secs(10));
    /// let _hold = clock.hold();
    /// {
    ///     let _guest = clock.running(); // guest code runs during the hold: charged
    ///     std::thread::sleep(Duration::from_millis(20));
    /// }
    /// std::thread::sleep(Duration::from_millis(20)); // nothing runs: not charged
    /// assert!(budget.used() >= Duration::from_millis(20));
    /// assert!(budget.used() < Duration::from_millis(35));
    /// ```
    pub fn running(&self) -> GuestRunning {
        self.update(|s| s.running = s.running.saturating_add(1));
        GuestRunning {
            clock: self.clone(),
        }
    }

    fn stop_running(&self) {
        self.update(|s| s.running = s.running.saturating_sub(1));
    }

    /// Whether some hold is alive (guest code may still be running; see
    /// [`is_stopped`](Self::is_stopped)).
    pub fn is_held(&self) -> bool {
        self.state().holds > 0
    }

    /// Whether the clock is stopped now: held, with no guest code running.
    pub fn is_stopped(&self) -> bool {
        self.state().stopped()
    }

    /// Total time the clock has been stopped (held with no guest code running), the current
    /// stop included.
    pub fn paused(&self) -> Duration {
        let state = self.state();
        state.paused + state.since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// Watches whether the clock is stopped (`true` while held with no guest code marked
    /// running): a driver whose deadline lives elsewhere (a sidecar process) forwards the
    /// changes.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.inner.held.subscribe()
    }

    /// A budget of `timeout` starting now.
    pub fn budget(&self, timeout: Duration) -> Budget {
        self.budget_after(timeout, Duration::ZERO)
    }

    /// A budget of `timeout` of which `used` was spent before (a resumed execution's
    /// earlier part): [`Budget::used`] and [`Budget::remaining`] count it, and
    /// [`Budget::timeout`] is still the whole timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// let budget = code_mode::ExecutionClock::new()
    ///     .budget_after(Duration::from_secs(30), Duration::from_secs(25));
    /// assert_eq!(budget.timeout(), Duration::from_secs(30));
    /// assert!(budget.remaining() <= Duration::from_secs(5));
    /// ```
    pub fn budget_after(&self, timeout: Duration, used: Duration) -> Budget {
        Budget {
            clock: self.clone(),
            start: Instant::now(),
            base: self.paused(),
            before: used,
            timeout,
        }
    }
}

/// Keeps an [`ExecutionClock`] stopped while alive.
#[derive(Debug)]
#[must_use = "the clock runs again as soon as the hold is dropped"]
pub struct ClockHold {
    clock: ExecutionClock,
}

impl Drop for ClockHold {
    fn drop(&mut self) {
        self.clock.release();
    }
}

/// Marks guest code as running on an [`ExecutionClock`] while alive: see
/// [`ExecutionClock::running`].
#[derive(Debug)]
#[must_use = "guest code counts as running only while the mark is alive"]
pub struct GuestRunning {
    clock: ExecutionClock,
}

impl Drop for GuestRunning {
    fn drop(&mut self) {
        self.clock.stop_running();
    }
}

/// One execution's time budget on a clock.
#[derive(Debug, Clone)]
pub struct Budget {
    clock: ExecutionClock,
    start: Instant,
    base: Duration,
    /// Used before `start` (a resumed execution).
    before: Duration,
    timeout: Duration,
}

impl Budget {
    /// The timeout this budget grants.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time used: wall-clock time since the start, less the time the clock was held.
    pub fn used(&self) -> Duration {
        let held = self.clock.paused().saturating_sub(self.base);
        self.start.elapsed().saturating_sub(held) + self.before
    }

    /// Time left (zero once spent).
    pub fn remaining(&self) -> Duration {
        self.timeout.saturating_sub(self.used())
    }

    /// True once the budget is spent.
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// When the budget runs out if the clock keeps running from now: the deadline to give
    /// guest code entering the engine now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.remaining()
    }

    /// Whether the clock is held now.
    pub fn is_held(&self) -> bool {
        self.clock.is_held()
    }

    /// Marks guest code as running (see [`ExecutionClock::running`]).
    pub fn running(&self) -> GuestRunning {
        self.clock.running()
    }

    /// The clock this budget runs on.
    pub fn clock(&self) -> &ExecutionClock {
        &self.clock
    }

    /// Resolves once the budget is spent, waiting out every hold of the clock.
    pub async fn spent(&self) {
        self.spent_plus(Duration::ZERO).await;
    }

    /// Resolves `grace` after the budget is spent (holds not counted).
    pub async fn spent_plus(&self, grace: Duration) {
        let mut held = self.clock.watch();
        loop {
            if *held.borrow_and_update() {
                if held.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let left = (self.timeout + grace).saturating_sub(self.used());
            if left.is_zero() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                changed = held.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_stop_the_budget() {
        let clock = ExecutionClock::new();
        let budget = clock.budget(Duration::from_millis(100));
        let hold = clock.hold();
        let second = clock.hold();
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.spent().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(hold);
        assert!(clock.is_held());
        drop(second);
        assert!(!clock.is_held());
        assert!(!waiter.is_finished());
        let held_for = budget.clock().paused();
        assert!(held_for >= Duration::from_millis(50), "{held_for:?}");
        waiter.await.unwrap();
        assert!(budget.expired());
        // Spent only after 100 ms of unheld time: at least 150 ms of wall-clock time.
        assert!(budget.used() >= Duration::from_millis(100));
    }

    #[test]
    fn guest_code_running_during_a_hold_is_charged() {
        let clock = ExecutionClock::new();
        let budget = clock.budget(Duration::from_secs(60));
        let mut watch = clock.watch();
        let hold = clock.hold();
        assert!(*watch.borrow_and_update());
        // Ten slices of "guest code" during the hold, each 5 ms: all of them charged.
        for _ in 0..10 {
            let run = budget.running();
            assert!(!clock.is_stopped() && clock.is_held());
            assert!(!*watch.borrow_and_update());
            std::thread::sleep(Duration::from_millis(5));
            drop(run);
            assert!(clock.is_stopped());
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(hold);
        assert!(!*watch.borrow_and_update());
        let used = budget.used();
        assert!(used >= Duration::from_millis(50), "{used:?}");
        // Only the slices: the gaps between them were held with nothing running.
        assert!(clock.paused() >= Duration::from_millis(50));
        // Nested marks and holds in any order leave the clock consistent.
        let a = clock.running();
        let h = clock.hold();
        let b = clock.running();
        drop(a);
        assert!(!clock.is_stopped());
        drop(b);
        assert!(clock.is_stopped());
        drop(h);
        assert!(!clock.is_stopped() && !clock.is_held());
    }
}
