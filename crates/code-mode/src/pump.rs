//! The call pump: the host loop of an engine that runs guest code in short steps.
//!
//! An engine that the host enters and leaves (QuickJS in-process, QuickJS in WebAssembly)
//! runs a program the same way: start it; while it is pending, start the tool calls it asked
//! for (all at once, so `Promise.all` runs them concurrently), wait for the next to finish or
//! for the time budget to run out, hand every finished result back and let the guest run the
//! jobs they unblock. Both QuickJS drivers had this loop, written twice; an engine now says
//! only how to take its guest's new calls and how to take one step, and [`pump`] does the
//! rest, including the two outcomes no engine sees itself: a program waiting on nothing
//! (deadlock) and a budget spent while tools run (timeout).

use std::ops::ControlFlow;

use futures::FutureExt;
use futures::future::{BoxFuture, Either};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use crate::bindings::{BindingFuture, GuestError};
use crate::clock::Budget;
use crate::error::ExecutionError;

/// A finished tool call: the guest's call id and the tool's result.
pub type Delivery = (u32, Result<Value, GuestError>);

/// An engine the [`pump`] drives.
///
/// `Output` is what an execution ends with: usually the program's outcome, or (for an engine
/// whose calls can fail at its own level, like a wasm trap) a result around it.
pub trait PumpedEngine {
    /// What the execution ends with.
    type Output;

    /// Appends to `calls` the tool calls the guest made since the last look, with the ids
    /// they will be answered under. (The pump lends one buffer for every round: a tool call
    /// costs a few microseconds, so a fresh allocation per round shows.)
    fn take_calls(&mut self, calls: &mut Vec<(u32, BindingFuture)>);

    /// Hands the finished calls in `done` back to the guest (in order, draining it) and lets
    /// it run until it waits again; `Break` once the program has settled (or failed). Guest
    /// code entering now runs under what is left of `time`.
    fn step(
        &mut self,
        done: &mut Vec<Delivery>,
        time: &Budget,
    ) -> impl Future<Output = ControlFlow<Self::Output>> + Send;

    /// Called when the guest waits and no call is running: the output to end with, if the
    /// engine has a reason to stop here (calls it holds back, to be answered later); `None`
    /// (the default) makes it a deadlock.
    fn idle(&mut self) -> Option<Self::Output> {
        None
    }

    /// The output of an execution the pump ended itself (deadlock, timeout).
    fn ended(&mut self, error: ExecutionError) -> Self::Output;
}

/// Runs a started program to its end: `first` is the state the engine was left in when the
/// program was started (`Continue` while it is pending).
///
/// ```
/// use std::ops::ControlFlow;
/// use code_mode::driver::{Budget, Delivery, PumpedEngine, pump};
/// use code_mode::{ExecutionClock, ExecutionError, GuestError};
/// use code_mode::driver::BindingFuture;
///
/// /// A "guest" that calls one tool and returns its result plus one.
/// struct Toy { asked: bool, answer: Option<i64> }
/// impl PumpedEngine for Toy {
///     type Output = Result<i64, ExecutionError>;
///     fn take_calls(&mut self, calls: &mut Vec<(u32, BindingFuture)>) {
///         if self.asked { return; }
///         self.asked = true;
///         let call: BindingFuture = Box::pin(async { Ok::<_, GuestError>(serde_json::json!(41)) });
///         calls.push((1, call));
///     }
///     async fn step(&mut self, done: &mut Vec<Delivery>, _: &Budget) -> ControlFlow<Self::Output> {
///         for (_, r) in done.drain(..) { self.answer = r.ok().and_then(|v| v.as_i64()); }
///         match self.answer { Some(n) => ControlFlow::Break(Ok(n + 1)), None => ControlFlow::Continue(()) }
///     }
///     fn ended(&mut self, e: ExecutionError) -> Self::Output { Err(e) }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let time = ExecutionClock::new().budget(std::time::Duration::from_secs(5));
/// let mut toy = Toy { asked: false, answer: None };
/// assert_eq!(pump(&mut toy, ControlFlow::Continue(()), &time).await.unwrap(), 42);
/// # });
/// ```
pub async fn pump<E: PumpedEngine>(
    engine: &mut E,
    first: ControlFlow<E::Output>,
    time: &Budget,
) -> E::Output {
    let mut inflight: FuturesUnordered<BoxFuture<'static, Delivery>> = FuturesUnordered::new();
    let mut calls = Vec::new();
    let mut done = Vec::new();
    let mut state = first;
    loop {
        if let ControlFlow::Break(output) = state {
            return output;
        }
        engine.take_calls(&mut calls);
        for (id, future) in calls.drain(..) {
            inflight.push(Box::pin(future.map(move |r| (id, r))));
        }
        if inflight.is_empty() {
            return match engine.idle() {
                Some(output) => output,
                None => engine.ended(ExecutionError::deadlock()),
            };
        }
        done.clear();
        // Calls that are already done are delivered without arming a timer.
        while let Some(Some(d)) = inflight.next().now_or_never() {
            done.push(d);
        }
        if done.is_empty() {
            // Waiting on calls: the budget's clock stops while an approval is pending.
            let spent = std::pin::pin!(time.spent());
            match futures::future::select(inflight.next(), spent).await {
                Either::Left((Some(d), _)) => done.push(d),
                Either::Left((None, _)) => {}
                Either::Right(((), _)) => {
                    return engine.ended(ExecutionError::timeout(time.timeout()));
                }
            }
            while let Some(Some(d)) = inflight.next().now_or_never() {
                done.push(d);
            }
        }
        // Guest code runs in this step: charged even while an approval holds the clock.
        let running = time.running();
        state = engine.step(&mut done, time).await;
        drop(running);
    }
}
