//! The shared behaviour and escape-attempt suite, run against the QuickJS-WASM driver.

code_mode_conformance::conformance_tests!(std::sync::Arc::new(
    code_mode_isolate_quickjs_wasm::QuickJsWasmDriver::new()
));
