//! Trust: a level each skill earns by its runs, and a policy saying what each level may do.
//!
//! TanStack records trust but never acts on it. Here the [`TrustPolicy`] gates exposure: by
//! default an untrusted skill is found by `search_skills` and callable from code as
//! `skill_<name>` (the model chose it knowingly), but is offered as a direct tool only once it
//! has proved itself.

use serde::{Deserialize, Serialize};

use crate::skill::SkillStats;

/// How far a skill is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// New or unproven.
    Untrusted,
    /// Worked often enough to be offered.
    Provisional,
    /// Proven.
    Trusted,
}

impl TrustLevel {
    /// The lower-case name (`untrusted`, `provisional`, `trusted`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::Provisional => "provisional",
            Self::Trusted => "trusted",
        }
    }

    /// Parses [`TrustLevel::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "untrusted" => Some(Self::Untrusted),
            "provisional" => Some(Self::Provisional),
            "trusted" => Some(Self::Trusted),
            _ => None,
        }
    }

    /// The badge shown in the system prompt.
    pub fn badge(self) -> &'static str {
        match self {
            Self::Untrusted => "○ untrusted",
            Self::Provisional => "◐ provisional",
            Self::Trusted => "✓ trusted",
        }
    }
}

/// A promotion threshold: at least `runs` runs with at least `success_rate` successes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Minimum number of runs.
    pub runs: u64,
    /// Minimum success rate in 0..=1.
    pub success_rate: f64,
}

/// How skills earn trust. Promotion is one step per run and there is no demotion (as in
/// TanStack); a new version of a skill starts again at the initial level.
///
/// ```
/// use code_mode_skills::{SkillStats, TrustLevel, TrustStrategy};
/// let s = TrustStrategy::default();
/// let stats = SkillStats { runs: 10, successes: 9, ..SkillStats::default() };
/// assert_eq!(s.evaluate(TrustLevel::Untrusted, &stats), TrustLevel::Provisional);
/// assert_eq!(s.evaluate(TrustLevel::Provisional, &stats), TrustLevel::Provisional);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrustStrategy {
    /// Level of a newly registered skill.
    pub initial: TrustLevel,
    /// Untrusted → provisional.
    pub provisional: Threshold,
    /// Provisional → trusted.
    pub trusted: Threshold,
}

impl Default for TrustStrategy {
    /// Untrusted → provisional at ≥ 10 runs and ≥ 90 %; → trusted at ≥ 100 runs and ≥ 95 %.
    fn default() -> Self {
        Self::custom(
            TrustLevel::Untrusted,
            Threshold {
                runs: 10,
                success_rate: 0.9,
            },
            Threshold {
                runs: 100,
                success_rate: 0.95,
            },
        )
    }
}

impl TrustStrategy {
    /// ≥ 3 runs and ≥ 80 %, then ≥ 10 runs and ≥ 90 %.
    pub fn relaxed() -> Self {
        Self::custom(
            TrustLevel::Untrusted,
            Threshold {
                runs: 3,
                success_rate: 0.8,
            },
            Threshold {
                runs: 10,
                success_rate: 0.9,
            },
        )
    }

    /// Every skill is trusted from the start.
    pub fn always_trusted() -> Self {
        Self {
            initial: TrustLevel::Trusted,
            ..Self::default()
        }
    }

    /// Custom thresholds.
    pub fn custom(initial: TrustLevel, provisional: Threshold, trusted: Threshold) -> Self {
        Self {
            initial,
            provisional,
            trusted,
        }
    }

    /// The level after a run with these (updated) stats.
    pub fn evaluate(&self, current: TrustLevel, stats: &SkillStats) -> TrustLevel {
        let meets = |t: &Threshold| stats.runs >= t.runs && stats.success_rate() >= t.success_rate;
        match current {
            TrustLevel::Untrusted if meets(&self.provisional) => TrustLevel::Provisional,
            TrustLevel::Provisional if meets(&self.trusted) => TrustLevel::Trusted,
            other => other,
        }
    }
}

/// What each trust level may do.
///
/// ```
/// use code_mode_skills::{TrustLevel, TrustPolicy};
/// let p = TrustPolicy::default();
/// assert!(!p.may_be_tool(TrustLevel::Untrusted));
/// assert!(p.may_run_in_code(TrustLevel::Untrusted));
/// assert!(p.may_be_tool(TrustLevel::Provisional));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustPolicy {
    /// Lowest level offered to the model as a direct tool when selected.
    pub direct_tool: TrustLevel,
    /// Lowest level callable as `skill_<name>` inside `execute_typescript` (and from other
    /// skills). Below it, a skill is only found by search and read with `get_skill`.
    pub in_code: TrustLevel,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        Self {
            direct_tool: TrustLevel::Provisional,
            in_code: TrustLevel::Untrusted,
        }
    }
}

impl TrustPolicy {
    /// Everything allowed at every level (TanStack's behaviour).
    pub fn permissive() -> Self {
        Self {
            direct_tool: TrustLevel::Untrusted,
            in_code: TrustLevel::Untrusted,
        }
    }

    /// Whether a skill at `level` may be a direct tool.
    pub fn may_be_tool(&self, level: TrustLevel) -> bool {
        level >= self.direct_tool
    }

    /// Whether a skill at `level` may run from code.
    pub fn may_run_in_code(&self, level: TrustLevel) -> bool {
        level >= self.in_code
    }
}
