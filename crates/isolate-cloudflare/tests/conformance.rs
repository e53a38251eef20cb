//! The shared behaviour + escape suite against the crate's own Worker on a real local
//! `workerd` (one per case, on 127.0.0.1, outbound network denied). A local workerd has no
//! CPU or memory limits: the driver's deadline ends loops, and its failure hook kills and
//! restarts workerd, so the next execution works. Needs workerd (`cargo xtask test` installs
//! it); without it every case fails with the install command.

use std::sync::Arc;

use code_mode_conformance::Capabilities;
use code_mode_isolate_cloudflare::{CloudflareDriver, LocalWorkerd};

fn driver() -> Arc<CloudflareDriver> {
    let binary = LocalWorkerd::locate().unwrap_or_else(|e| panic!("{e}"));
    let workerd =
        LocalWorkerd::start(&binary, Some("conformance-token")).unwrap_or_else(|e| panic!("{e}"));
    Arc::new(workerd.driver().unwrap_or_else(|e| panic!("{e}")))
}

code_mode_conformance::conformance_tests!(
    driver(),
    Capabilities {
        persistent_globals: false,
        code_generation: false,
        reports_memory_limit: false,
    }
);
