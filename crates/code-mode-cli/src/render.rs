//! Colored, readable rendering of events for the demo (plain when not a terminal or when
//! NO_COLOR is set).

use std::io::IsTerminal;

use code_mode::{Event, EventKind};
use owo_colors::OwoColorize;
use serde_json::Value;

/// Whether to use colors on standard output.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

fn short(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// One line per event.
pub fn event_line(event: &Event, color: bool) -> String {
    let paint = |s: String, f: fn(&String) -> String| if color { f(&s) } else { s };
    match &event.kind {
        EventKind::ExecutionStarted { code_length, .. } => paint(
            format!("▶ execution started ({code_length} chars)"),
            |s| s.bold().to_string(),
        ),
        EventKind::ExternalCall { function, args, .. } => {
            paint(format!("  → {function}({})", short(args, 80)), |s| {
                s.cyan().to_string()
            })
        }
        EventKind::ExternalResult {
            function,
            result,
            duration_ms,
        } => paint(
            format!(
                "  ← {function} {:.1} ms: {}",
                duration_ms,
                short(result, 80)
            ),
            |s| s.green().to_string(),
        ),
        EventKind::ExternalError {
            function,
            error,
            duration_ms,
        } => paint(
            format!("  ✗ {function} {:.1} ms: {error}", duration_ms),
            |s| s.red().to_string(),
        ),
        EventKind::Console { level, message, .. } => {
            paint(format!("  [console.{}] {message}", level.as_str()), |s| {
                s.yellow().to_string()
            })
        }
        EventKind::ExecutionFinished {
            duration_ms,
            success,
            phase,
            ..
        } => paint(
            format!(
                "■ execution finished: {} in {:.1} ms (phase {})",
                if *success { "success" } else { "failure" },
                duration_ms,
                phase.as_str()
            ),
            |s| s.bold().to_string(),
        ),
        EventKind::ApprovalRequested {
            function, input, ..
        } => paint(
            format!("  ? {function}({}) waits for approval", short(input, 80)),
            |s| s.magenta().to_string(),
        ),
        EventKind::ApprovalResolved {
            function,
            outcome,
            reason,
            ..
        } => paint(
            match reason {
                Some(reason) => format!("  ? {function}: {outcome} ({reason})"),
                None => format!("  ? {function}: {outcome}"),
            },
            |s| s.magenta().to_string(),
        ),
        EventKind::ExecutionPaused {
            waiting,
            sealed_bytes,
            ..
        } => paint(
            format!(
                "‖ execution paused ({sealed_bytes} bytes sealed), waiting on {}",
                short(waiting, 80)
            ),
            |s| s.bold().to_string(),
        ),
        EventKind::ExecutionResumed { answered, .. } => paint(
            format!("▶ execution resumed with answers to calls {answered:?}"),
            |s| s.bold().to_string(),
        ),
        EventKind::Custom { name, value } => format!("  • {name} {}", short(value, 80)),
        // A kind added after this renderer: its wire name and JSON, plainly.
        _ => format!("  • {} {}", event.name(), short(&event.value(), 80)),
    }
}
