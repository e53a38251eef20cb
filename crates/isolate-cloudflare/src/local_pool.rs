//! Several local workerd processes behind one driver.
//!
//! Why: workerd runs every isolate of a process on one thread and a local workerd enforces
//! no CPU limit, so a program computing until its deadline holds every other execution of
//! its process until the restart hook has replaced it. With several processes, the
//! driver sends each execution to the process with the fewest executions in flight that is
//! not restarting ([`CloudflareOptions::replica`]): such a program holds only its own
//! process, as an isolate on Cloudflare holds only its own thread.

use std::path::Path;
use std::sync::Arc;

use crate::{CloudflareDriver, CloudflareOptions, LocalWorkerd, WorkerdError};

/// Local workerd processes serving the code-mode Worker on 127.0.0.1, one port each.
#[derive(Debug)]
pub struct LocalWorkerdPool {
    processes: Vec<Arc<LocalWorkerd>>,
}

impl LocalWorkerdPool {
    /// Most processes a pool may have.
    pub const MAX_PROCESSES: usize = 64;

    /// One process per core ([`std::thread::available_parallelism`]), at least four: a
    /// program spinning in one holds it for its deadline and the restart after, so more
    /// processes than cores keep one free for the next execution more often.
    pub fn default_size() -> usize {
        std::thread::available_parallelism()
            .map_or(4, usize::from)
            .clamp(4, Self::MAX_PROCESSES)
    }

    /// Starts `processes` workerd processes (concurrently); `token` as for
    /// [`LocalWorkerd::start`]. Refuses 0 and more than [`Self::MAX_PROCESSES`].
    ///
    /// ```
    /// use code_mode_isolate_cloudflare::{LocalWorkerdPool, WorkerdError};
    /// let e = LocalWorkerdPool::start(std::path::Path::new("/nonexistent"), None, 0).err();
    /// assert!(matches!(e, Some(WorkerdError::Start(m)) if m.contains("between 1 and 64")));
    /// ```
    pub fn start(
        binary: &Path,
        token: Option<&str>,
        processes: usize,
    ) -> Result<Self, WorkerdError> {
        if !(1..=Self::MAX_PROCESSES).contains(&processes) {
            return Err(WorkerdError::Start(format!(
                "a pool has between 1 and {} processes, not {processes}",
                Self::MAX_PROCESSES
            )));
        }
        let started: Vec<Result<Arc<LocalWorkerd>, WorkerdError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..processes)
                .map(|_| s.spawn(|| LocalWorkerd::start(binary, token)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(WorkerdError::Start("a starting thread panicked".into()))
                    })
                })
                .collect()
        });
        // On any failure the started ones are dropped, which stops them.
        let processes = started.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Self { processes })
    }

    /// The processes.
    pub fn processes(&self) -> &[Arc<LocalWorkerd>] {
        &self.processes
    }

    /// The URL of each process.
    pub fn urls(&self) -> Vec<String> {
        self.processes.iter().map(|p| p.url()).collect()
    }

    /// A driver sending executions to every process of the pool (with the token, and each
    /// process's restart hook).
    pub fn driver(&self) -> Result<CloudflareDriver, code_mode::DriverError> {
        let (first, rest) = self
            .processes
            .split_first()
            .ok_or_else(|| code_mode::DriverError::new(crate::DRIVER_NAME, "the pool is empty"))?;
        let mut options = CloudflareOptions::new(first.url())
            .authorization(first.authorization())
            .on_failure(first.restart_hook());
        for p in rest {
            options = options.replica(p.url(), Some(p.restart_hook()));
        }
        CloudflareDriver::new(options)
    }
}
