//! Type-checks the model's program against the declarations it was shown, with the real
//! TypeScript compiler, before anything runs.
//!
//! [`TypeScriptChecker`] implements [`code_mode::TypeChecker`]: give it to
//! [`CodeModeBuilder::type_check`](code_mode::CodeModeBuilder::type_check) with a
//! [`TypeCheckMode`](code_mode::TypeCheckMode) (`report` runs the program anyway and attaches
//! the compiler's errors to the result; `block` runs only programs without errors). Core
//! wraps the program, supplies the declarations and maps lines back to the model's code;
//! this crate runs the compiler.
//!
//! The compiler is TypeScript 7 (the native `tsgo`), kept loaded by a long-lived helper
//! process (Node.js running its API client), started on first use and reused: a warm check
//! of a 20-line program takes a few milliseconds (see the README for the measurements that
//! chose it over the JavaScript compiler).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use code_mode::{CodeMode, ExecuteOptions, Tool, ToolError, TypeCheckMode};
//! use code_mode_typecheck::TypeScriptChecker;
//! use serde_json::json;
//!
//! let weather = Tool::new("get_weather", "Weather for a city.",
//!     json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
//!     |_, _| async { Ok::<_, ToolError>(json!({"temp": 21})) })?;
//! let code_mode = CodeMode::builder()
//!     .tool(weather)
//!     .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
//!     .type_check(TypeCheckMode::Block, Arc::new(TypeScriptChecker::new()?))
//!     .build()?;
//! let r = code_mode.execute("return await external_get_weather({ town: 'Paris' })", ExecuteOptions::default()).await;
//! assert_eq!(r.error.unwrap().kind.name(), "TypeCheckError");
//! # Ok(()) }
//! ```

mod checker;
mod runtime;

pub use checker::{MAX_CHECK_TIMEOUT, TypeCheckError, TypeScriptChecker, TypeScriptOptions};
pub use runtime::{NODE_VERSION, RuntimeError, TYPESCRIPT_VERSION, TypeScriptRuntime};
