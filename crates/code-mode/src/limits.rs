//! Resource limits of one execution.
//!
//! Every execution runs under a finite wall-clock timeout, a memory cap and a stack cap, plus
//! caps on tool calls, console output and the size of the returned value. There is no way to
//! say "no limit": zero and absurd values are refused by [`LimitsBuilder::build`] with a
//! [`LimitsError`] naming the field, the value and the accepted range.

use std::time::Duration;

use crate::error::LimitsError;

/// Limits applied to every execution in a context.
///
/// Build them with [`Limits::builder`]; [`Limits::default`] gives the documented defaults.
///
/// ```
/// use std::time::Duration;
/// use code_mode::Limits;
///
/// let limits = Limits::builder()
///     .timeout(Duration::from_secs(5))
///     .memory_mib(64)
///     .build()
///     .unwrap();
/// assert_eq!(limits.timeout(), Duration::from_secs(5));
/// assert!(Limits::builder().timeout(Duration::ZERO).build().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    timeout: Duration,
    memory_bytes: u64,
    stack_bytes: u64,
    max_tool_calls: u32,
    max_log_entries: u32,
    max_log_bytes: u64,
    max_result_bytes: u64,
    approval_timeout: Duration,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Accepted ranges. Each is documented on its builder method.
pub(crate) mod range {
    use super::*;
    pub(crate) const TIMEOUT_MIN: Duration = Duration::from_millis(1);
    pub(crate) const TIMEOUT_MAX: Duration = Duration::from_secs(15 * 60);
    pub(crate) const MEMORY_MIN: u64 = MIB;
    pub(crate) const MEMORY_MAX: u64 = 16 * 1024 * MIB;
    pub(crate) const STACK_MIN: u64 = 16 * KIB;
    pub(crate) const STACK_MAX: u64 = 64 * MIB;
    pub(crate) const TOOL_CALLS_MAX: u32 = 1_000_000;
    pub(crate) const LOG_ENTRIES_MAX: u32 = 10_000_000;
    pub(crate) const LOG_BYTES_MAX: u64 = 1024 * MIB;
    pub(crate) const RESULT_BYTES_MAX: u64 = 1024 * MIB;
    pub(crate) const APPROVAL_TIMEOUT_MIN: Duration = Duration::from_millis(1);
    pub(crate) const APPROVAL_TIMEOUT_MAX: Duration = Duration::from_secs(24 * 60 * 60);
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            memory_bytes: 128 * MIB,
            stack_bytes: 512 * KIB,
            max_tool_calls: 1000,
            max_log_entries: 10_000,
            max_log_bytes: MIB,
            max_result_bytes: 4 * MIB,
            approval_timeout: Duration::from_secs(5 * 60),
        }
    }
}

impl Limits {
    /// Starts from the defaults: 30 s, 128 MiB, 512 KiB stack, 1000 tool calls,
    /// 10,000 log entries / 1 MiB of log text, 4 MiB result, 5 min per approval wait.
    pub fn builder() -> LimitsBuilder {
        LimitsBuilder {
            limits: Self::default(),
        }
    }
    /// Wall-clock budget of one execution, including time spent awaiting tool calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Memory the guest heap may use, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }
    /// Native stack the guest may use, in bytes.
    pub fn stack_bytes(&self) -> u64 {
        self.stack_bytes
    }
    /// Tool calls allowed per execution.
    pub fn max_tool_calls(&self) -> u32 {
        self.max_tool_calls
    }
    /// Console entries kept per execution; past it one truncation marker is kept.
    pub fn max_log_entries(&self) -> u32 {
        self.max_log_entries
    }
    /// Bytes of console text kept per execution; past it one truncation marker is kept.
    pub fn max_log_bytes(&self) -> u64 {
        self.max_log_bytes
    }
    /// Largest JSON result accepted, in bytes of its serialised form.
    pub fn max_result_bytes(&self) -> u64 {
        self.max_result_bytes
    }
    /// How long a call that needs approval waits for a decision before it is denied (see
    /// the `approval` module). The wait does not count against [`Limits::timeout`].
    pub fn approval_timeout(&self) -> Duration {
        self.approval_timeout
    }
    /// Returns a builder seeded with these limits.
    pub fn to_builder(self) -> LimitsBuilder {
        LimitsBuilder { limits: self }
    }
}

/// Builder for [`Limits`]; every value is checked by [`LimitsBuilder::build`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LimitsBuilder {
    limits: Limits,
}

impl LimitsBuilder {
    /// Wall-clock timeout, 1 ms to 15 min.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }
    /// Timeout in milliseconds, 1 to 900,000.
    pub fn timeout_ms(self, ms: u64) -> Self {
        self.timeout(Duration::from_millis(ms))
    }
    /// Memory limit in bytes, 1 MiB to 16 GiB.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.limits.memory_bytes = bytes;
        self
    }
    /// Memory limit in MiB, 1 to 16,384.
    pub fn memory_mib(self, mib: u64) -> Self {
        self.memory_bytes(mib.saturating_mul(MIB))
    }
    /// Stack limit in bytes, 16 KiB to 64 MiB.
    pub fn stack_bytes(mut self, bytes: u64) -> Self {
        self.limits.stack_bytes = bytes;
        self
    }
    /// Stack limit in KiB, 16 to 65,536.
    pub fn stack_kib(self, kib: u64) -> Self {
        self.stack_bytes(kib.saturating_mul(KIB))
    }
    /// Tool calls per execution, 1 to 1,000,000.
    pub fn max_tool_calls(mut self, n: u32) -> Self {
        self.limits.max_tool_calls = n;
        self
    }
    /// Console entries per execution, 0 to 10,000,000.
    pub fn max_log_entries(mut self, n: u32) -> Self {
        self.limits.max_log_entries = n;
        self
    }
    /// Console bytes per execution, 0 to 1 GiB.
    pub fn max_log_bytes(mut self, n: u64) -> Self {
        self.limits.max_log_bytes = n;
        self
    }
    /// Result size in bytes, 2 (the JSON `""`) to 1 GiB.
    pub fn max_result_bytes(mut self, n: u64) -> Self {
        self.limits.max_result_bytes = n;
        self
    }

    /// Approval wait per call, 1 ms to 24 h.
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.limits.approval_timeout = timeout;
        self
    }

    /// Checks every value and returns the limits, or the first value out of range.
    pub fn build(self) -> Result<Limits, LimitsError> {
        use range::*;
        let l = self.limits;
        let check = |field: &'static str, value: u128, min: u128, max: u128, unit: &'static str| {
            if value < min || value > max {
                Err(LimitsError::OutOfRange {
                    field,
                    value,
                    min,
                    max,
                    unit,
                })
            } else {
                Ok(())
            }
        };
        check(
            "timeout",
            l.timeout.as_millis(),
            TIMEOUT_MIN.as_millis(),
            TIMEOUT_MAX.as_millis(),
            "ms",
        )?;
        check(
            "memory",
            l.memory_bytes.into(),
            MEMORY_MIN.into(),
            MEMORY_MAX.into(),
            "bytes",
        )?;
        check(
            "stack",
            l.stack_bytes.into(),
            STACK_MIN.into(),
            STACK_MAX.into(),
            "bytes",
        )?;
        check(
            "max_tool_calls",
            l.max_tool_calls.into(),
            1,
            TOOL_CALLS_MAX.into(),
            "calls",
        )?;
        check(
            "max_log_entries",
            l.max_log_entries.into(),
            0,
            LOG_ENTRIES_MAX.into(),
            "entries",
        )?;
        check(
            "max_log_bytes",
            l.max_log_bytes.into(),
            0,
            LOG_BYTES_MAX.into(),
            "bytes",
        )?;
        check(
            "max_result_bytes",
            l.max_result_bytes.into(),
            2,
            RESULT_BYTES_MAX.into(),
            "bytes",
        )?;
        check(
            "approval_timeout",
            l.approval_timeout.as_millis(),
            APPROVAL_TIMEOUT_MIN.as_millis(),
            APPROVAL_TIMEOUT_MAX.as_millis(),
            "ms",
        )?;
        Ok(l)
    }
}

/// A duration as a person reads it: `250 ms`, `3 s`, `5 min`.
pub(crate) fn describe_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 || !ms.is_multiple_of(1000) {
        format!("{ms} ms")
    } else if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::builder().build(), Ok(Limits::default()));
    }

    #[test]
    fn zero_and_absurd_values_are_refused() {
        let err = Limits::builder()
            .timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("timeout"), "{err}");
        assert!(
            Limits::builder()
                .timeout(Duration::from_secs(86_400))
                .build()
                .is_err()
        );
        assert!(Limits::builder().memory_bytes(0).build().is_err());
        assert!(Limits::builder().memory_mib(u64::MAX).build().is_err());
        assert!(Limits::builder().stack_bytes(1).build().is_err());
        assert!(Limits::builder().max_tool_calls(0).build().is_err());
        assert!(Limits::builder().max_result_bytes(0).build().is_err());
        let err = Limits::builder()
            .approval_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("approval_timeout"), "{err}");
        assert!(
            Limits::builder()
                .approval_timeout(Duration::from_secs(2 * 86_400))
                .build()
                .is_err()
        );
        assert_eq!(describe_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(describe_duration(Duration::from_millis(1500)), "1500 ms");
        let err = Limits::builder().stack_kib(1 << 30).build().unwrap_err();
        assert!(err.to_string().contains("stack"), "{err}");
    }
}
