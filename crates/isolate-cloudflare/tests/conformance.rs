//! The shared behaviour + escape suite against the crate's own Worker on real local
//! `workerd` processes (a pool of two per case, on 127.0.0.1, outbound network denied). A
//! local workerd has no CPU or memory limits: the driver's deadline ends loops, and the
//! failure hook of the process that ran it kills and restarts it, so the next execution
//! works. Needs workerd (`cargo xtask test` installs
//! it); without it every case fails with the install command.

use std::sync::Arc;

use code_mode_conformance::Capabilities;
use code_mode_isolate_cloudflare::{CloudflareDriver, LocalWorkerd, LocalWorkerdPool};

fn driver() -> Arc<CloudflareDriver> {
    let binary = LocalWorkerd::locate().unwrap_or_else(|e| panic!("{e}"));
    let pool = LocalWorkerdPool::start(&binary, Some("conformance-token"), 2)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(pool.driver().unwrap_or_else(|e| panic!("{e}")))
}

code_mode_conformance::conformance_tests!(
    driver(),
    Capabilities {
        persistent_globals: false,
        code_generation: false,
        reports_memory_limit: false,
        engine_stack_signal: false,
    }
);
