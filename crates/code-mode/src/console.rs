//! Console capture shared by every driver.
//!
//! Drivers format the guest's `console.*` arguments into a line and hand it to a
//! [`LogBuffer`], which applies the per-execution caps (entries and bytes, then a single
//! truncation marker) and forwards each kept line to the live [`ConsoleSink`] at once.
//! Keeping this here means every driver truncates the same way.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::limits::Limits;

/// The marker line kept once when console output goes over its caps.
pub const TRUNCATION_MARKER: &str = "[log output truncated]";

/// Console method a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `console.log`
    Log,
    /// `console.info`
    Info,
    /// `console.warn`
    Warn,
    /// `console.error`
    Error,
    /// `console.debug`
    Debug,
}

impl LogLevel {
    /// Lower-case name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Debug => "debug",
        }
    }
    /// Parses a console method name.
    pub fn from_method(name: &str) -> Option<Self> {
        Some(match name {
            "log" => Self::Log,
            "info" => Self::Info,
            "warn" => Self::Warn,
            "error" => Self::Error,
            "debug" => Self::Debug,
            _ => return None,
        })
    }
    /// Prefix used in the flat `logs: string[]` form (`"ERROR: "`, ...), as in TanStack.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Log => "",
            Self::Info => "INFO: ",
            Self::Warn => "WARN: ",
            Self::Error => "ERROR: ",
            Self::Debug => "DEBUG: ",
        }
    }
}

/// One captured console line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Console method.
    pub level: LogLevel,
    /// The formatted arguments, joined by single spaces.
    pub message: String,
}

impl LogEntry {
    /// The flat form used in `logs: string[]`: the level prefix plus the message.
    ///
    /// ```
    /// use code_mode::{LogEntry, LogLevel};
    /// let e = LogEntry { level: LogLevel::Warn, message: "low stock".into() };
    /// assert_eq!(e.to_line(), "WARN: low stock");
    /// ```
    pub fn to_line(&self) -> String {
        format!("{}{}", self.level.prefix(), self.message)
    }
}

/// Receives each kept console line as soon as the guest writes it.
pub type ConsoleSink = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// The lines of a [`LogBuffer`] and its counters, carried across a durable pause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// The lines kept so far (with the truncation marker if it was added).
    pub entries: Vec<LogEntry>,
    /// Bytes of message text counted against the byte cap.
    pub bytes: u64,
    /// Whether the caps were hit.
    pub truncated: bool,
}

/// Per-execution console buffer with caps.
pub struct LogBuffer {
    entries: Vec<LogEntry>,
    bytes: u64,
    max_entries: u32,
    max_bytes: u64,
    truncated: bool,
    sink: Option<ConsoleSink>,
}

impl std::fmt::Debug for LogBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBuffer")
            .field("entries", &self.entries.len())
            .field("bytes", &self.bytes)
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl LogBuffer {
    /// An empty buffer with the caps of `limits`, forwarding to `sink`.
    pub fn new(limits: &Limits, sink: Option<ConsoleSink>) -> Self {
        Self {
            entries: Vec::new(),
            bytes: 0,
            max_entries: limits.max_log_entries(),
            max_bytes: limits.max_log_bytes(),
            truncated: false,
            sink,
        }
    }

    /// True once the caps were hit; later lines are dropped without being formatted.
    pub fn is_full(&self) -> bool {
        self.truncated
    }

    /// Records a line, or the truncation marker if it does not fit.
    ///
    /// ```
    /// use code_mode::{Limits, LogLevel, TRUNCATION_MARKER};
    /// use code_mode::driver::{LogBuffer};
    /// let limits = Limits::builder().max_log_entries(2).build().unwrap();
    /// let mut buf = LogBuffer::new(&limits, None);
    /// for i in 0..5 { buf.push(LogLevel::Log, format!("line {i}")); }
    /// let logs = buf.take();
    /// assert_eq!(logs.len(), 3);
    /// assert_eq!(logs[2].message, TRUNCATION_MARKER);
    /// ```
    pub fn push(&mut self, level: LogLevel, mut message: String) {
        if self.truncated {
            return;
        }
        let remaining = self.max_bytes.saturating_sub(self.bytes);
        if self.entries.len() as u64 >= u64::from(self.max_entries) {
            self.truncate();
            return;
        }
        if message.len() as u64 > remaining {
            let mut cut = remaining as usize;
            while cut > 0 && !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            if !message.is_empty() {
                self.keep(level, message);
            }
            self.truncate();
            return;
        }
        self.keep(level, message);
    }

    fn keep(&mut self, level: LogLevel, message: String) {
        self.bytes += message.len() as u64;
        if let Some(sink) = &self.sink {
            sink(level, &message);
        }
        self.entries.push(LogEntry { level, message });
    }

    fn truncate(&mut self) {
        self.truncated = true;
        if let Some(sink) = &self.sink {
            sink(LogLevel::Warn, TRUNCATION_MARKER);
        }
        self.entries.push(LogEntry {
            level: LogLevel::Warn,
            message: TRUNCATION_MARKER.into(),
        });
    }

    /// What the buffer holds, for a paused execution to continue it later.
    pub fn state(&self) -> LogState {
        LogState {
            entries: self.entries.clone(),
            bytes: self.bytes,
            truncated: self.truncated,
        }
    }

    /// A buffer that continues `state` (a paused execution's lines): the caps count them,
    /// and they are not sent to `sink` again.
    ///
    /// ```
    /// use code_mode::{Limits, LogLevel, TRUNCATION_MARKER};
    /// use code_mode::driver::LogBuffer;
    /// let limits = Limits::builder().max_log_entries(2).build().unwrap();
    /// let mut before = LogBuffer::new(&limits, None);
    /// before.push(LogLevel::Log, "one".into());
    /// let mut after = LogBuffer::restore(&limits, None, before.state());
    /// for line in ["two", "three"] { after.push(LogLevel::Log, line.into()); }
    /// let messages: Vec<_> = after.take().into_iter().map(|e| e.message).collect();
    /// assert_eq!(messages, ["one", "two", TRUNCATION_MARKER]);
    /// ```
    pub fn restore(limits: &Limits, sink: Option<ConsoleSink>, state: LogState) -> Self {
        Self {
            entries: state.entries,
            bytes: state.bytes,
            truncated: state.truncated,
            ..Self::new(limits, sink)
        }
    }

    /// Takes the captured entries, leaving the buffer empty and reset.
    pub fn take(&mut self) -> Vec<LogEntry> {
        self.bytes = 0;
        self.truncated = false;
        std::mem::take(&mut self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn byte_cap_cuts_on_char_boundary_and_forwards_live() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let sink: ConsoleSink = Arc::new(move |_, m| seen2.lock().unwrap().push(m.to_owned()));
        let limits = Limits::builder().max_log_bytes(5).build().unwrap();
        let mut buf = LogBuffer::new(&limits, Some(sink));
        buf.push(LogLevel::Log, "ab".into());
        buf.push(LogLevel::Log, "ééé".into()); // 6 bytes, 3 remain: cut to "é"
        buf.push(LogLevel::Log, "dropped".into());
        let logs = buf.take();
        assert_eq!(
            logs.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["ab", "é", TRUNCATION_MARKER]
        );
        assert_eq!(seen.lock().unwrap().len(), 3);
    }

    #[test]
    fn zero_caps_keep_only_the_marker() {
        let limits = Limits::builder().max_log_entries(0).build().unwrap();
        let mut buf = LogBuffer::new(&limits, None);
        buf.push(LogLevel::Error, "x".into());
        buf.push(LogLevel::Error, "y".into());
        assert_eq!(buf.take().len(), 1);
    }
}
