//! The names a library's tools, sandbox functions and events go by.
//!
//! Why: TanStack AI renamed Code Mode "skills" to "snippets" (`@tanstack/ai-code-mode-snippets`):
//! its current clients and UIs read `code_mode:snippet_call` / `_result` / `_error` (payload
//! field `snippet`) and `snippet:registered`, and its servers offer `search_snippets`,
//! `get_snippet`, `register_snippet` and sandbox functions `snippet_<name>`. Clients built on
//! TanStack AI 0.3.x (`@tanstack/ai-code-mode-skills`) read the old names. A library speaks
//! one vocabulary, chosen by the application ([`SkillLibraryBuilder::vocabulary`](crate::SkillLibraryBuilder::vocabulary)),
//! so one session never mixes them and no event arrives twice under two names. What is
//! stored does not depend on it: a library saved under one vocabulary is served under the
//! other.

/// The wire vocabulary of a [`SkillLibrary`](crate::SkillLibrary).
///
/// ```
/// use code_mode_skills::Vocabulary;
/// assert_eq!(Vocabulary::default(), Vocabulary::Snippets);
/// assert_eq!(Vocabulary::Snippets.function_prefix(), "snippet_");
/// assert_eq!(Vocabulary::Skills.call_event(), "code_mode:skill_call");
/// assert_eq!("skills".parse::<Vocabulary>(), Ok(Vocabulary::Skills));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vocabulary {
    /// Current TanStack AI: `snippet_*` functions, `code_mode:snippet_*` events,
    /// `search_snippets` / `get_snippet` / `register_snippet`.
    #[default]
    Snippets,
    /// TanStack AI 0.3.x: `skill_*` functions, `code_mode:skill_*` events,
    /// `search_skills` / `get_skill` / `register_skill`.
    Skills,
}

impl Vocabulary {
    /// Both vocabularies: their names are reserved whichever one a library speaks.
    pub const ALL: [Self; 2] = [Self::Snippets, Self::Skills];

    /// The noun: `snippet` or `skill` (also the events' payload field naming the program).
    pub fn noun(self) -> &'static str {
        match self {
            Self::Snippets => "snippet",
            Self::Skills => "skill",
        }
    }

    /// Prefix of the sandbox functions: `snippet_` or `skill_`.
    pub fn function_prefix(self) -> &'static str {
        match self {
            Self::Snippets => "snippet_",
            Self::Skills => "skill_",
        }
    }

    /// The search tool's name.
    pub fn search_tool(self) -> &'static str {
        match self {
            Self::Snippets => "search_snippets",
            Self::Skills => "search_skills",
        }
    }

    /// The read tool's name.
    pub fn get_tool(self) -> &'static str {
        match self {
            Self::Snippets => "get_snippet",
            Self::Skills => "get_skill",
        }
    }

    /// The save tool's name.
    pub fn register_tool(self) -> &'static str {
        match self {
            Self::Snippets => "register_snippet",
            Self::Skills => "register_skill",
        }
    }

    /// Event before a saved program runs.
    pub fn call_event(self) -> &'static str {
        match self {
            Self::Snippets => "code_mode:snippet_call",
            Self::Skills => "code_mode:skill_call",
        }
    }

    /// Event after a saved program returned.
    pub fn result_event(self) -> &'static str {
        match self {
            Self::Snippets => "code_mode:snippet_result",
            Self::Skills => "code_mode:skill_result",
        }
    }

    /// Event after a saved program failed.
    pub fn error_event(self) -> &'static str {
        match self {
            Self::Snippets => "code_mode:snippet_error",
            Self::Skills => "code_mode:skill_error",
        }
    }

    /// Event after a program was saved.
    pub fn registered_event(self) -> &'static str {
        match self {
            Self::Snippets => "snippet:registered",
            Self::Skills => "skill:registered",
        }
    }
}

/// A vocabulary name that is neither `snippets` nor `skills`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown vocabulary {0:?}: expected `snippets` (current TanStack AI) or `skills` (TanStack AI 0.3.x)"
)]
pub struct UnknownVocabulary(pub String);

impl std::str::FromStr for Vocabulary {
    type Err = UnknownVocabulary;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "snippets" => Ok(Self::Snippets),
            "skills" => Ok(Self::Skills),
            other => Err(UnknownVocabulary(other.to_owned())),
        }
    }
}
