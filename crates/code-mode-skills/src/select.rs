//! Choosing the skills a conversation gets.
//!
//! With a selector model: one cheap call (no tools, no system prompt) listing the catalog
//! and the last messages, asking for a JSON array of names. Its answer is parsed leniently
//! (code fences, prose around the array), unknown names are dropped, the cap is applied.
//! Without a model, or when the call fails or answers nonsense, a local lexical ranking of
//! the recent user messages picks instead, and the selection says why.

use std::time::Duration;

use code_mode_chat::{LlmAdapter, LlmEvent, LlmRequest, Message};
use futures::StreamExt;
use serde_json::Value;

use crate::search::rank;
use crate::skill::Skill;

/// How long the selector model may take.
pub const SELECTION_TIMEOUT: Duration = Duration::from_secs(20);

/// How the skills were chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionMethod {
    /// Nothing to choose from (empty library or conversation).
    None,
    /// The selector model chose.
    Model,
    /// The local lexical ranking chose.
    Lexical,
}

/// The chosen skills.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Chosen skills, most relevant first.
    pub skills: Vec<Skill>,
    /// How.
    pub method: SelectionMethod,
    /// Why the model's choice was not used, when it was not.
    pub note: Option<String>,
}

impl Selection {
    pub(crate) fn empty(note: Option<String>) -> Self {
        Self {
            skills: Vec::new(),
            method: SelectionMethod::None,
            note,
        }
    }
}

fn text_of(m: &Message) -> (&'static str, &str) {
    match m {
        Message::User { content } => ("user", content),
        Message::Assistant { content, .. } => ("assistant", content),
        Message::Tool { content, .. } => ("tool", content),
    }
}

/// The selector prompt: the last five messages, the catalog, the instruction.
pub fn selection_prompt(candidates: &[Skill], conversation: &[Message], max: usize) -> String {
    let recent: Vec<String> = conversation
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|m| {
            let (role, text) = text_of(m);
            let text: String = text.chars().take(2000).collect();
            format!("{role}: {text}")
        })
        .collect();
    let catalog: Vec<String> = candidates
        .iter()
        .map(|s| match s.usage_hints.first() {
            Some(hint) => format!("- {}: {} ({hint})", s.name, s.description),
            None => format!("- {}: {}", s.name, s.description),
        })
        .collect();
    format!(
        "Given this conversation context:\n---\n{}\n---\n\nWhich of these skills (saved programs) would help write the next response? Answer with a JSON array of at most {max} skill names, or [] if none would help.\n\nAvailable skills:\n{}\n\nRespond with only the JSON array, for example [\"skill_name_1\", \"skill_name_2\"].",
        recent.join("\n"),
        catalog.join("\n")
    )
}

/// Reads the model's answer: the first JSON array in it, fenced or not; its string items.
pub fn parse_selection(answer: &str) -> Result<Vec<String>, String> {
    let trimmed = answer.trim();
    let start = trimmed
        .find('[')
        .ok_or("the answer contains no JSON array")?;
    let end = trimmed
        .rfind(']')
        .ok_or("the answer contains no JSON array")?;
    if end < start {
        return Err("the answer contains no JSON array".into());
    }
    let value: Value = serde_json::from_str(&trimmed[start..=end])
        .map_err(|e| format!("the answer is not a JSON array: {e}"))?;
    let items = value.as_array().ok_or("the answer is not a JSON array")?;
    Ok(items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect())
}

async fn ask(llm: &dyn LlmAdapter, prompt: String) -> Result<String, String> {
    let request = LlmRequest {
        messages: vec![Message::User { content: prompt }],
        ..LlmRequest::default()
    };
    let call = async {
        let mut stream = llm.stream(request).await.map_err(|e| e.to_string())?;
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            if let LlmEvent::TextDelta(delta) = event.map_err(|e| e.to_string())? {
                text.push_str(&delta);
                if text.len() > 64 * 1024 {
                    return Err("the answer is too long".to_owned());
                }
            }
        }
        Ok(text)
    };
    tokio::time::timeout(SELECTION_TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer within {} s", SELECTION_TIMEOUT.as_secs()))?
}

/// Selects at most `max` of `candidates` for `conversation`.
pub async fn select(
    llm: Option<&dyn LlmAdapter>,
    candidates: &[Skill],
    conversation: &[Message],
    max: usize,
) -> Selection {
    if candidates.is_empty() || conversation.is_empty() || max == 0 {
        return Selection::empty(None);
    }
    let note = match llm {
        Some(llm) => {
            let prompt = selection_prompt(candidates, conversation, max);
            match ask(llm, prompt).await.and_then(|a| parse_selection(&a)) {
                Ok(names) => {
                    let mut skills: Vec<Skill> = Vec::new();
                    for name in names {
                        if skills.len() >= max {
                            break;
                        }
                        if let Some(s) = candidates.iter().find(|s| s.name == name)
                            && !skills.iter().any(|k| k.name == name)
                        {
                            skills.push(s.clone());
                        }
                    }
                    return Selection {
                        skills,
                        method: SelectionMethod::Model,
                        note: None,
                    };
                }
                Err(why) => {
                    tracing::warn!(%why, "skill selection by the model failed; ranking locally");
                    Some(format!("the selector model failed ({why}); ranked locally"))
                }
            }
        }
        None => None,
    };
    let query: Vec<&str> = conversation
        .iter()
        .rev()
        .filter_map(|m| match m {
            Message::User { content } => Some(content.as_str()),
            _ => None,
        })
        .take(3)
        .collect();
    let skills = rank(candidates, &query.join(" "), max)
        .into_iter()
        .cloned()
        .collect();
    Selection {
        skills,
        method: SelectionMethod::Lexical,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_selection;

    #[test]
    fn parses_lenient_answers() {
        assert_eq!(
            parse_selection("[\"a\", \"b\"]").ok(),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse_selection("```json\n[\"a\"]\n```").ok(),
            Some(vec!["a".into()])
        );
        assert_eq!(
            parse_selection("Sure! The useful ones are [\"a\", 3, null].").ok(),
            Some(vec!["a".into()])
        );
        assert_eq!(parse_selection("[]").ok(), Some(vec![]));
        assert!(parse_selection("none of them").is_err());
        assert!(parse_selection("] oops [").is_err());
        assert!(parse_selection("{\"a\": 1}").is_err());
        assert!(parse_selection("[unquoted]").is_err());
    }
}
