//! The shared behaviour and escape-attempt suite, run against the native QuickJS driver.

// rquickjs gives no hook on QuickJS's stack guard: its own overflow error is recognised by
// exact name and message (the QuickJS-WASM driver patches the guard and needs neither).
code_mode_conformance::conformance_tests!(
    std::sync::Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()),
    code_mode_conformance::Capabilities {
        engine_stack_signal: false,
        ..Default::default()
    }
);
