//! The sidecar pool: where new contexts are placed, and where a fresh execution moves when
//! its sidecar is wedged or gone before anything of it ran.
//!
//! Why placement lives apart from the driver: a context that has not run yet is not tied to
//! its sidecar. If that sidecar stops answering (its main thread is held), retires (an
//! isolate's thread stayed held past its deadline) or dies, an execution that created its context and has sent
//! nothing back yet (no console line, no tool call) is re-placed on another sidecar instead
//! of being lost: no tool ran, so each call still happens exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use code_mode::DriverError;

use crate::runtime::V8Runtime;
use crate::sidecar::Sidecar;

/// The sidecar processes of one driver.
pub(crate) struct Pool {
    pub(crate) runtime: V8Runtime,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Sidecar>>>>,
    next_slot: AtomicUsize,
    /// Passed to each sidecar (see `V8Options::contexts_per_isolate`).
    contexts_per_isolate: u32,
}

impl Pool {
    pub(crate) fn new(runtime: V8Runtime, size: usize, contexts_per_isolate: u32) -> Self {
        Self {
            runtime,
            slots: (0..size).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next_slot: AtomicUsize::new(0),
            contexts_per_isolate,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every sidecar of the pool, started (concurrently) where missing or dead. Fails only
    /// when none can run.
    pub(crate) async fn all(&self) -> Result<Vec<Arc<Sidecar>>, DriverError> {
        let started =
            futures::future::join_all((0..self.slots.len()).map(|i| self.sidecar_at(i))).await;
        let mut pool = Vec::with_capacity(started.len());
        let mut first_error = None;
        for s in started {
            match s {
                Ok(s) => pool.push(s),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (pool.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(pool),
        }
    }

    /// The most suitable sidecar for a new context (answering, idle, with an isolate ready,
    /// fewest contexts; ties go round-robin), other than `avoid` when there is a choice.
    pub(crate) async fn place(
        &self,
        avoid: Option<&Arc<Sidecar>>,
    ) -> Result<Arc<Sidecar>, DriverError> {
        let pool = self.all().await?;
        let start = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<&Arc<Sidecar>> = None;
        for k in 0..pool.len() {
            let candidate = &pool[(start + k) % pool.len()];
            if avoid.is_some_and(|a| Arc::ptr_eq(a, candidate)) && pool.len() > 1 {
                continue;
            }
            if best.is_none_or(|b| candidate.preference() > b.preference()) {
                best = Some(candidate);
            }
        }
        best.cloned()
            .ok_or_else(|| DriverError::new(crate::DRIVER_NAME, "the sidecar pool is empty"))
    }

    pub(crate) async fn sidecar_at(&self, i: usize) -> Result<Arc<Sidecar>, DriverError> {
        let Some(slot) = self.slots.get(i % self.slots.len().max(1)) else {
            return Err(DriverError::new(
                crate::DRIVER_NAME,
                "the sidecar pool is empty",
            ));
        };
        let mut slot = slot.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| s.is_alive() && !s.is_retiring()) {
            return Ok(s.clone());
        }
        // Missing, dead (it crashed or was killed) or retiring (it ends itself once its runs
        // in flight are done; their contexts hold it until then): start a replacement, so a
        // run moved off a retiring sidecar always has somewhere to go.
        let fresh = Sidecar::spawn(&self.runtime, self.contexts_per_isolate).await?;
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Isolates made by the running sidecars since each started.
    pub(crate) async fn isolates_made(&self) -> u64 {
        let mut made = 0;
        for slot in &self.slots {
            if let Some(s) = slot.lock().await.as_ref().filter(|s| s.is_alive()) {
                made += s.isolates_made();
            }
        }
        made
    }

    /// Process ids of the running sidecars.
    pub(crate) async fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for slot in &self.slots {
            if let Some(s) = slot.lock().await.as_ref().filter(|s| s.is_alive()) {
                pids.push(s.pid());
            }
        }
        pids
    }
}
