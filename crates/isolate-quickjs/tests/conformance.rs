//! The shared behaviour and escape-attempt suite, run against the native QuickJS driver.

code_mode_conformance::conformance_tests!(std::sync::Arc::new(
    code_mode_isolate_quickjs::QuickJsDriver::new()
));
