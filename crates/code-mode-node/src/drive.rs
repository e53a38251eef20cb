//! Drives an execution's future on whichever thread wakes it.
//!
//! Why: napi-rs runs an `async fn` on its Tokio workers, so a call crossed four threads
//! (Node's → a worker → the engine thread → a worker → Node's), and each crossing wakes a
//! sleeping thread: after a quiet millisecond that costs some 40 µs apiece on a VM, more than
//! the execution itself. Here the first poll runs on Node's thread (it hands the program to
//! an engine thread), the next runs on the thread whose event woke it (the engine thread
//! that finished, a timer, a `dispose`), and the answer goes to Node's thread once, through
//! the promise's own thread-safe function. Polls are short: the waiting happens elsewhere.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// Nobody polls; a wake polls.
const IDLE: u8 = 0;
/// One thread polls; a wake leaves a note instead.
const POLLING: u8 = 1;
/// Woken during a poll: the poller polls again.
const NOTIFIED: u8 = 2;
/// The future finished.
const DONE: u8 = 3;

type Done<T> = Box<dyn FnOnce(T) + Send>;

struct Task<F: Future> {
    state: AtomicU8,
    future: Mutex<Option<Pin<Box<F>>>>,
    done: Mutex<Option<Done<F::Output>>>,
}

impl<F> Wake for Task<F>
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    fn wake(self: Arc<Self>) {
        run(&self);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        run(self);
    }
}

/// Polls `future` now, then on every wake, and hands its output to `done`.
pub(crate) fn spawn<F>(future: F, done: impl FnOnce(F::Output) + Send + 'static)
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    let task = Arc::new(Task {
        state: AtomicU8::new(IDLE),
        future: Mutex::new(Some(Box::pin(future))),
        done: Mutex::new(Some(Box::new(done))),
    });
    run(&task);
}

fn run<F>(task: &Arc<Task<F>>)
where
    F: Future + Send + 'static,
    F::Output: Send,
{
    // Claim the poll, or leave a note for the thread that holds it.
    let mut state = task.state.load(Ordering::Acquire);
    loop {
        let next = match state {
            IDLE => POLLING,
            POLLING => NOTIFIED,
            _ => return,
        };
        match task
            .state
            .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) if next == NOTIFIED => return,
            Ok(_) => break,
            Err(now) => state = now,
        }
    }
    let waker = Waker::from(task.clone());
    loop {
        let polled = {
            let mut slot = task.future.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(future) = slot.as_mut() else { return };
            // Timers and the engine's Tokio handle need napi's runtime as the current one.
            napi::bindgen_prelude::within_runtime_if_available(|| {
                future.as_mut().poll(&mut Context::from_waker(&waker))
            })
        };
        match polled {
            Poll::Ready(output) => {
                task.state.store(DONE, Ordering::Release);
                drop(
                    task.future
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take(),
                );
                let done = task
                    .done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(done) = done {
                    done(output);
                }
                return;
            }
            Poll::Pending => {
                match task.state.compare_exchange(
                    POLLING,
                    IDLE,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return,
                    // Woken meanwhile: poll again.
                    Err(_) => task.state.store(POLLING, Ordering::Release),
                }
            }
        }
    }
}
