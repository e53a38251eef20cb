//! The names of code-mode's own tools.
//!
//! Why a file of its own: the prompt names them to the model, tool registration refuses
//! them to applications, and tracing names its spans after them; none of those should import
//! another for a constant.

/// Name of the execution tool.
pub const EXECUTE_TOOL_NAME: &str = "execute_typescript";

/// Name of the discovery tool.
pub const DISCOVER_TOOL_NAME: &str = "discover_tools";

/// Names of code-mode's own tools, which an application tool may not take.
///
/// ```
/// assert!(code_mode::RESERVED_TOOL_NAMES.contains(&code_mode::EXECUTE_TOOL_NAME));
/// assert!(code_mode::RESERVED_TOOL_NAMES.contains(&code_mode::DISCOVER_TOOL_NAME));
/// ```
pub const RESERVED_TOOL_NAMES: &[&str] = &[EXECUTE_TOOL_NAME, DISCOVER_TOOL_NAME];
