//! The shared behaviour + escape-attempt suite on the V8 driver. The runtime must be
//! installed (`cargo xtask test` does it); without it every case fails with what to run.

use std::sync::Arc;

fn driver() -> Arc<code_mode_isolate_v8::V8Driver> {
    match code_mode_isolate_v8::V8Driver::new() {
        Ok(d) => Arc::new(d),
        Err(e) => panic!("{e}"),
    }
}

code_mode_conformance::conformance_tests!(driver());
