//! # code-mode-skills
//!
//! A persistent library of **skills**: programs the model wrote, that worked, saved under a
//! name with input and output schemas. Later conversations get the relevant skills back as
//! tools, so the model stops rewriting the same code.
//!
//! - [`SkillLibrary::session`] is the entry point: given a [`CodeMode`](code_mode::CodeMode)
//!   (driver, tools, limits) and the conversation, it selects skills ([`select`], with an
//!   optional cheap model and a lexical fallback) and returns the tools
//!   (`execute_typescript` with `skill_*` functions, `search_skills`, `get_skill`,
//!   `register_skill`, one tool per selected skill) and the system prompt.
//! - Every run, as a tool or from code, emits `code_mode:skill_call` /
//!   `code_mode:skill_result` / `code_mode:skill_error`, updates the stats and may promote
//!   the skill's [`TrustLevel`]; registration emits `skill:registered`. Skills can call
//!   skills (up to [`MAX_SKILL_DEPTH`]).
//! - [`TrustPolicy`] gates what each level may do (by default, untrusted skills are usable
//!   from code but not offered as direct tools).
//! - [`SkillStorage`] backends: [`FileSystemStorage`] (default), [`InMemoryStorage`],
//!   `PostgresStorage` (feature `postgres`), `MongoStorage` (feature `mongo`).
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() {
//! use std::sync::Arc;
//! use code_mode::{CodeMode, Tool, ToolContext, ToolError};
//! use code_mode_skills::{InMemoryStorage, Registration, SkillLibrary, TrustLevel};
//! use serde_json::json;
//!
//! let add = Tool::new("add", "Adds.", json!({"type": "object"}),
//!     |v, _| async move { Ok::<_, ToolError>(json!(v["a"].as_f64().unwrap_or(0.0) + v["b"].as_f64().unwrap_or(0.0))) }).unwrap();
//! let code_mode = CodeMode::builder()
//!     .tool(add)
//!     .driver(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new()))
//!     .build().unwrap();
//! let library = SkillLibrary::builder(Arc::new(InMemoryStorage::new())).build();
//! library.register(Registration {
//!     name: "sum3".into(),
//!     description: "Sums three numbers.".into(),
//!     code: "const ab = await external_add({a: input.a, b: input.b}); return await external_add({a: ab, b: input.c});".into(),
//!     input_schema: json!({"type": "object"}),
//!     output_schema: json!({"type": "number"}),
//!     ..Registration::default()
//! }).await.unwrap();
//! let out = library.run(&code_mode, "sum3", json!({"a": 1, "b": 2, "c": 3}), &ToolContext::default()).await.unwrap();
//! assert_eq!(out.as_f64(), Some(6.0));
//! let skill = library.storage().get("sum3").await.unwrap().unwrap();
//! assert_eq!((skill.stats.runs, skill.trust), (1, TrustLevel::Untrusted));
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "durable")]
mod durable_state;
mod error;
mod library;
mod prompt;
mod search;
pub mod select;
mod skill;
pub mod storage;
mod tools;
mod trust;
mod vocabulary;

#[cfg(feature = "durable")]
pub use durable_state::{DurableState, DurableStateError, default_state_dir};
pub use error::SkillError;
pub use library::{MAX_SKILL_DEPTH, Registration, SkillLibrary, SkillLibraryBuilder, SkillSession};
pub use prompt::{library_section, library_section_in};
pub use search::rank;
pub use select::{Selection, SelectionMethod};
pub use skill::{
    MAX_CODE_BYTES, MAX_DESCRIPTION_BYTES, MAX_NAME_LEN, MAX_SCHEMA_BYTES, RunRecord, Skill,
    SkillIndexEntry, SkillStats, now_rfc3339, validate_name,
};
#[cfg(feature = "mongo")]
pub use storage::MongoStorage;
#[cfg(feature = "postgres")]
pub use storage::PostgresStorage;
pub use storage::{Expect, FileSystemStorage, InMemoryStorage, SkillList, SkillStorage};
pub use trust::{Threshold, TrustLevel, TrustPolicy, TrustStrategy};
pub use vocabulary::{UnknownVocabulary, Vocabulary};
