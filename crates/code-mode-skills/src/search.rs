//! Local lexical ranking: the search tool, and skill selection when no model is configured
//! or the model's answer is unusable.
//!
//! TanStack's scoring (a point per query term found in name + description + hints, two more
//! when the name has it), with terms split on anything not alphanumeric so `top_repos`
//! matches "top repos", stop words ignored, and ties broken by success rate and runs.

use crate::skill::Skill;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "how", "i", "in",
    "is", "it", "me", "my", "of", "on", "or", "please", "the", "this", "to", "what", "with", "you",
];

fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .filter(|t| !STOP_WORDS.contains(&t.as_str()))
        .collect()
}

/// Ranks `skills` for `query`, best first, at most `limit`. An empty query lists everything
/// (most used first).
///
/// ```
/// # use code_mode_skills::{rank, Skill};
/// # fn skill(name: &str, description: &str) -> Skill {
/// #     serde_json::from_value(serde_json::json!({"id": "1", "name": name, "description": description,
/// #         "code": "return 1", "inputSchema": {}, "outputSchema": {}, "trust": "untrusted",
/// #         "version": 1, "createdAt": "", "updatedAt": ""})).unwrap()
/// # }
/// let skills = vec![skill("weather_report", "Weather for cities"), skill("top_repos", "Top GitHub repositories")];
/// let found = rank(&skills, "github repos", 5);
/// assert_eq!(found[0].name, "top_repos");
/// assert_eq!(found.len(), 1);
/// ```
pub fn rank<'a>(skills: &'a [Skill], query: &str, limit: usize) -> Vec<&'a Skill> {
    let query = terms(query);
    let mut scored: Vec<(u32, &Skill)> = skills
        .iter()
        .filter_map(|s| {
            if query.is_empty() {
                return Some((0, s));
            }
            let name = terms(&s.name);
            let mut text = terms(&s.description);
            text.extend(s.usage_hints.iter().flat_map(|h| terms(h)));
            text.extend(name.iter().cloned());
            let score: u32 = query
                .iter()
                .map(|q| {
                    let found = |t: &String| t == q || (q.len() >= 4 && t.starts_with(q.as_str()));
                    let mut points = 0;
                    if text.iter().any(found) {
                        points += 1;
                    }
                    if name.iter().any(found) {
                        points += 2;
                    }
                    points
                })
                .sum();
            (score > 0).then_some((score, s))
        })
        .collect();
    scored.sort_by(|(a, x), (b, y)| {
        b.cmp(a)
            .then(y.stats.success_rate().total_cmp(&x.stats.success_rate()))
            .then(y.stats.runs.cmp(&x.stats.runs))
            .then(x.name.cmp(&y.name))
    });
    scored.into_iter().take(limit).map(|(_, s)| s).collect()
}
