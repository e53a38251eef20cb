//! Where executions go: one or more copies of the Worker, each with its own failure hook.
//!
//! Why several: a Worker on Cloudflare scales by itself, but a self-hosted workerd runs every
//! isolate of a process on one thread, so a program computing until its deadline holds every
//! execution of that process. Executions go to the copy with the fewest executions in
//! flight that is not recovering (its failure hook running, e.g. a local workerd
//! restarting), so one such program holds only its own process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::FailureHook;

/// One copy of the Worker.
pub(crate) struct Endpoint {
    /// `ws(s)://…/execute`.
    pub(crate) execute_url: String,
    on_failure: Option<FailureHook>,
    /// Held for writing while the failure hook runs: the failed execution answers at once,
    /// and the next one sent here waits for the recovery.
    recovering: Arc<tokio::sync::RwLock<()>>,
    in_flight: AtomicUsize,
}

impl Endpoint {
    pub(crate) fn new(execute_url: String, on_failure: Option<FailureHook>) -> Self {
        Self {
            execute_url,
            on_failure,
            recovering: Arc::default(),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Runs the failure hook in the background.
    pub(crate) async fn after_failure(&self) {
        if let Some(hook) = self.on_failure.clone() {
            let guard = self.recovering.clone().write_owned().await;
            tokio::task::spawn_blocking(move || {
                hook();
                drop(guard);
            });
        }
    }

    /// Waits for a recovery in progress to end.
    pub(crate) async fn recovered(&self) {
        drop(self.recovering.read().await);
    }

    fn is_recovering(&self) -> bool {
        self.recovering.try_read().is_err()
    }

    /// Counts an execution here until the guard drops.
    fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// An execution in flight at an endpoint.
pub(crate) struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The endpoints of a driver.
pub(crate) struct Endpoints {
    all: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
}

impl Endpoints {
    /// `all` must not be empty (the driver's constructor guarantees it).
    pub(crate) fn new(all: Vec<Endpoint>) -> Self {
        Self {
            all: all.into_iter().map(Arc::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) fn urls(&self) -> Vec<&str> {
        self.all.iter().map(|e| e.execute_url.as_str()).collect()
    }

    /// The endpoint for a new execution: not recovering if one is, then the fewest
    /// executions in flight; ties go round-robin. `None` only when there is no endpoint.
    pub(crate) fn pick(&self) -> Option<InFlight> {
        let n = self.all.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(&Arc<Endpoint>, (bool, usize))> = None;
        for k in 0..n {
            let e = &self.all[(start + k) % n];
            let rank = (e.is_recovering(), e.in_flight.load(Ordering::Relaxed));
            if best.as_ref().is_none_or(|(_, b)| rank < *b) {
                best = Some((e, rank));
            }
        }
        best.map(|(e, _)| e.enter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Endpoints {
        Endpoints::new(
            (0..n)
                .map(|i| Endpoint::new(format!("ws://127.0.0.1:{i}/execute"), None))
                .collect(),
        )
    }

    #[test]
    fn executions_go_where_fewest_are_in_flight() {
        let e = endpoints(3);
        let a = e.pick().unwrap_or_else(|| panic!("no endpoint"));
        let b = e.pick().unwrap_or_else(|| panic!("no endpoint"));
        let c = e.pick().unwrap_or_else(|| panic!("no endpoint"));
        let mut urls: Vec<_> = [&a, &b, &c]
            .iter()
            .map(|f| f.endpoint().execute_url.clone())
            .collect();
        urls.sort();
        urls.dedup();
        assert_eq!(
            urls.len(),
            3,
            "three executions share an endpoint: {urls:?}"
        );
        drop(b);
        let d = e.pick().unwrap_or_else(|| panic!("no endpoint"));
        assert_eq!(
            d.endpoint().execute_url,
            "ws://127.0.0.1:1/execute",
            "the freed endpoint is not taken"
        );
    }

    #[tokio::test]
    async fn a_recovering_endpoint_is_avoided() {
        let e = endpoints(2);
        let hold = e.all[0].recovering.clone().write_owned().await;
        for _ in 0..4 {
            let f = e.pick().unwrap_or_else(|| panic!("no endpoint"));
            assert_eq!(f.endpoint().execute_url, "ws://127.0.0.1:1/execute");
        }
        drop(hold);
        assert!(e.pick().is_some());
        assert!(endpoints(0).pick().is_none());
    }
}
