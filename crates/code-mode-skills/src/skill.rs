//! The skill record, its validation, and how a run changes it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SkillError;
use crate::trust::{TrustLevel, TrustStrategy};

/// Longest skill name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest skill code, in bytes.
pub const MAX_CODE_BYTES: usize = 64 * 1024;
/// Largest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// Largest JSON Schema (each), in bytes of JSON.
pub const MAX_SCHEMA_BYTES: usize = 32 * 1024;
/// Most usage hints, and longest hint in bytes.
pub(crate) const MAX_HINTS: usize = 16;
const MAX_HINT_BYTES: usize = 512;

/// Usage statistics of a skill (all versions' runs are counted from the version's creation).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillStats {
    /// Runs, as a tool or from code.
    pub runs: u64,
    /// Successful runs.
    pub successes: u64,
    /// Failed runs.
    pub failures: u64,
    /// When it last ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<String>,
    /// Duration of the last run, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<f64>,
    /// Sum of all run durations, in milliseconds.
    #[serde(default)]
    pub total_duration_ms: f64,
}

impl SkillStats {
    /// Successes / runs (0 before the first run).
    pub fn success_rate(&self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.successes as f64 / self.runs as f64
        }
    }

    /// Mean duration in milliseconds, if it ran.
    pub fn mean_duration_ms(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.total_duration_ms / self.runs as f64)
    }
}

/// One run, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Whether it succeeded.
    pub success: bool,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// When it ended (RFC 3339).
    pub at: String,
}

impl RunRecord {
    /// A run ending now.
    pub fn now(success: bool, duration_ms: f64) -> Self {
        Self {
            success,
            duration_ms,
            at: now_rfc3339(),
        }
    }
}

/// A saved program the model can call again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skill {
    /// Stable id (UUID v4) of this skill, kept across versions.
    pub id: String,
    /// Tool name, and `skill_<name>` in the sandbox.
    pub name: String,
    /// What it does (shown to the model).
    pub description: String,
    /// TypeScript function body; it receives `input` and returns the output.
    pub code: String,
    /// JSON Schema of `input`.
    pub input_schema: Value,
    /// JSON Schema of the returned value.
    pub output_schema: Value,
    /// When to use it.
    #[serde(default)]
    pub usage_hints: Vec<String>,
    /// Tools and skills it calls (documentation).
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Usage.
    #[serde(default)]
    pub stats: SkillStats,
    /// Trust earned by this version.
    pub trust: TrustLevel,
    /// 1 for the first version, +1 for each replacement.
    pub version: u32,
    /// When the skill was first registered (RFC 3339).
    pub created_at: String,
    /// When this version was saved or its stats last changed (RFC 3339).
    pub updated_at: String,
}

/// A skill without its code, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillIndexEntry {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Usage hints.
    pub usage_hints: Vec<String>,
    /// Trust level.
    pub trust: TrustLevel,
    /// Runs so far.
    pub runs: u64,
    /// Success rate in 0..=1.
    pub success_rate: f64,
}

impl Skill {
    /// The listing form.
    pub fn index_entry(&self) -> SkillIndexEntry {
        SkillIndexEntry {
            name: self.name.clone(),
            description: self.description.clone(),
            usage_hints: self.usage_hints.clone(),
            trust: self.trust,
            runs: self.stats.runs,
            success_rate: self.stats.success_rate(),
        }
    }

    /// Applies a run: counts it, and promotes the trust level per `strategy`.
    pub fn apply_run(&mut self, run: &RunRecord, strategy: &TrustStrategy) {
        let s = &mut self.stats;
        s.runs += 1;
        if run.success {
            s.successes += 1;
        } else {
            s.failures += 1;
        }
        s.last_run_at = Some(run.at.clone());
        s.last_duration_ms = Some(run.duration_ms);
        s.total_duration_ms += run.duration_ms;
        self.trust = strategy.evaluate(self.trust, &self.stats);
        self.updated_at = run.at.clone();
    }

    /// Checks every field: name, sizes, schemas (valid JSON Schema objects). The code is
    /// checked by the library (it needs the TypeScript parser).
    pub fn validate(&self) -> Result<(), SkillError> {
        validate_name(&self.name)?;
        let invalid = |reason: String| SkillError::Invalid {
            name: self.name.clone(),
            reason,
        };
        if self.code.trim().is_empty() {
            return Err(invalid("the code is empty".into()));
        }
        if self.code.len() > MAX_CODE_BYTES {
            return Err(invalid(format!(
                "the code is {} bytes, above the limit of {MAX_CODE_BYTES}",
                self.code.len()
            )));
        }
        if self.description.trim().is_empty() {
            return Err(invalid("the description is empty".into()));
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(invalid(format!(
                "the description is {} bytes, above the limit of {MAX_DESCRIPTION_BYTES}",
                self.description.len()
            )));
        }
        if self.usage_hints.len() > MAX_HINTS
            || self.usage_hints.iter().any(|h| h.len() > MAX_HINT_BYTES)
        {
            return Err(invalid(format!(
                "at most {MAX_HINTS} usage hints of at most {MAX_HINT_BYTES} bytes each"
            )));
        }
        if self.depends_on.len() > 64 || self.depends_on.iter().any(|d| d.len() > 128) {
            return Err(invalid("dependsOn lists at most 64 names".into()));
        }
        for (which, schema) in [
            ("inputSchema", &self.input_schema),
            ("outputSchema", &self.output_schema),
        ] {
            let size = schema.to_string().len();
            if size > MAX_SCHEMA_BYTES {
                return Err(invalid(format!(
                    "{which} is {size} bytes, above the limit of {MAX_SCHEMA_BYTES}"
                )));
            }
            if !schema.is_object() {
                return Err(invalid(format!("{which} must be a JSON Schema object")));
            }
        }
        Ok(())
    }
}

/// Checks a skill name: a lower snake_case identifier (`^[a-z][a-z0-9_]*$`), at most 64
/// characters, not prefixed `external_` or `skill_`, not a reserved tool name. Such a name
/// is also a safe file name: it can never leave the storage directory.
///
/// ```
/// use code_mode_skills::validate_name;
/// assert!(validate_name("top_repos").is_ok());
/// for bad in ["", "../escape", "a/b", "Top", "9lives", "skill_x", "external_x", "execute_typescript", "a-b"] {
///     assert!(validate_name(bad).is_err(), "{bad}");
/// }
/// ```
pub fn validate_name(name: &str) -> Result<(), SkillError> {
    let bad = |reason: &str| {
        Err(SkillError::InvalidName {
            name: name.chars().take(80).collect(),
            reason: reason.into(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is too long");
    }
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return bad("it must start with a lower-case letter");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return bad("only lower-case letters, digits and `_` are allowed");
    }
    if name.starts_with("external_") {
        return bad("the `external_` prefix belongs to the application's tools");
    }
    // Both vocabularies' names are reserved: a library may be served under either.
    for v in crate::Vocabulary::ALL {
        if name.starts_with(v.function_prefix()) {
            return bad(&format!(
                "do not include the `{}` prefix; it is added in the sandbox",
                v.function_prefix()
            ));
        }
    }
    if code_mode::RESERVED_TOOL_NAMES.contains(&name)
        || crate::Vocabulary::ALL
            .iter()
            .any(|v| [v.search_tool(), v.get_tool(), v.register_tool()].contains(&name))
    {
        return bad("it is a reserved tool name");
    }
    Ok(())
}

/// The current time as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
