//! The names closest to one that matched nothing, for errors a person fixes by hand (an
//! approval rule naming a tool that does not exist must say which tools do).

/// Up to `n` of `candidates` closest to `name`, closest first. Spellings are compared
/// without case and with `-`, `.` and spaces read as `_`, so `write_file` finds
/// `write-file`; candidates too far away to be a typo are left out.
///
/// ```
/// let tools = ["write-file", "read_file", "list_directory"];
/// assert_eq!(code_mode_mcp::closest_names("write_file", tools, 3), ["write-file", "read_file"]);
/// assert!(code_mode_mcp::closest_names("zzz", tools, 3).is_empty());
/// ```
pub fn closest_names<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<String> {
    let fold = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '-' | '.' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    };
    let wanted = fold(name);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(&wanted, &fold(c)), c))
        .filter(|(d, c)| *d <= (wanted.chars().count().max(c.chars().count()) / 2).max(2))
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(n)
        .map(|(_, c)| c.to_owned())
        .collect()
}

/// `; the closest: `a`, `b`` to end an error message, or nothing when no name is close.
///
/// ```
/// assert_eq!(code_mode_mcp::closest_hint(&["write-file".into()]), "; the closest: `write-file`");
/// assert_eq!(code_mode_mcp::closest_hint(&[]), "");
/// ```
pub fn closest_hint(closest: &[String]) -> String {
    if closest.is_empty() {
        return String::new();
    }
    let names: Vec<String> = closest.iter().map(|c| format!("`{c}`")).collect();
    format!("; the closest: {}", names.join(", "))
}
