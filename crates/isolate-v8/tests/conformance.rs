//! The shared behaviour + escape-attempt suite on the V8 driver. The runtime must be
//! installed (`cargo xtask test` does it); without it every case fails with what to run.

use std::sync::Arc;

fn driver() -> Arc<code_mode_isolate_v8::V8Driver> {
    match code_mode_isolate_v8::V8Driver::new() {
        Ok(d) => Arc::new(d),
        Err(e) => panic!("{e}"),
    }
}

// V8 tells isolated-vm nothing when its stack guard fires: its own overflow error is
// recognised by exact name and message.
code_mode_conformance::conformance_tests!(
    driver(),
    code_mode_conformance::Capabilities {
        engine_stack_signal: false,
        ..Default::default()
    }
);
