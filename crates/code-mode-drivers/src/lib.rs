//! # code-mode-drivers
//!
//! One constructor for whichever sandbox driver the application's cargo features enable, so
//! swapping drivers is a change to `Cargo.toml` only:
//!
//! ```toml
//! code-mode-drivers = "0.1"                                   # QuickJS, in-process (default)
//! code-mode-drivers = { version = "0.1", features = ["v8"] }  # V8 wins when enabled
//! ```
//!
//! [`default_driver`] returns the most capable enabled driver, in this order: `cloudflare`,
//! `v8`, `quickjs-wasm`, `quickjs`. [`driver_by_name`] picks one explicitly (the CLI's
//! `--driver`). Drivers that need settings (a Worker URL, a Node runtime) read them from
//! [`DriverOptions`], which [`DriverOptions::from_env`] fills from `CODE_MODE_*` variables.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use code_mode::{ContextConfig, IsolateDriver};
//!
//! let driver = code_mode_drivers::default_driver().unwrap();
//! let context = driver.create_context(ContextConfig::default()).await.unwrap();
//! let result = context.execute("return [1, 2, 3].map(x => x * 2)").await;
//! assert_eq!(result.value(), Some(&serde_json::json!([2, 4, 6])));
//! # }
//! ```

#![warn(missing_docs)]

use std::sync::Arc;

use code_mode::IsolateDriver;

/// Every driver name, enabled or not, in order of preference.
pub const ALL_DRIVERS: &[&str] = &["cloudflare", "v8", "quickjs-wasm", "quickjs"];

/// Why no driver could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverSelectError {
    /// The crate was built without any driver feature.
    #[error(
        "no sandbox driver is enabled: enable a feature of code-mode-drivers (quickjs, quickjs-wasm, v8 or cloudflare)"
    )]
    NoneEnabled,
    /// The name is not a driver.
    #[error("unknown driver {name:?}: expected one of {}", ALL_DRIVERS.join(", "))]
    Unknown {
        /// The name given.
        name: String,
    },
    /// The driver exists but its cargo feature is off.
    #[error("driver {name:?} is not enabled in this build: enable the `{name}` feature of code-mode-drivers (enabled: {})", enabled_drivers().join(", "))]
    NotEnabled {
        /// The name given.
        name: String,
    },
    /// The driver could not start (missing runtime, bad settings).
    #[error(transparent)]
    Driver(#[from] code_mode::DriverError),
}

/// Settings of drivers that need them. Unused fields are ignored by the other drivers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverOptions {
    /// URL of the code-mode Worker (`cloudflare`); env `CODE_MODE_WORKER_URL`.
    pub worker_url: Option<String>,
    /// `Authorization` header for the Worker; env `CODE_MODE_WORKER_AUTHORIZATION`.
    pub worker_authorization: Option<String>,
}

impl DriverOptions {
    /// Reads the options from `CODE_MODE_*` environment variables.
    pub fn from_env() -> Self {
        Self {
            worker_url: std::env::var("CODE_MODE_WORKER_URL")
                .ok()
                .filter(|s| !s.is_empty()),
            worker_authorization: std::env::var("CODE_MODE_WORKER_AUTHORIZATION")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}

/// Names of the drivers enabled in this build, in order of preference.
pub fn enabled_drivers() -> Vec<&'static str> {
    ALL_DRIVERS
        .iter()
        .copied()
        .filter(|n| is_enabled(n))
        .collect()
}

fn is_enabled(name: &str) -> bool {
    #[allow(clippy::match_like_matches_macro)] // one arm per driver feature, more to come
    match name {
        "quickjs" => cfg!(feature = "quickjs"),
        "v8" => cfg!(feature = "v8"),
        _ => false,
    }
}

/// The preferred enabled driver, configured from the environment.
pub fn default_driver() -> Result<Arc<dyn IsolateDriver>, DriverSelectError> {
    let name = enabled_drivers()
        .first()
        .copied()
        .ok_or(DriverSelectError::NoneEnabled)?;
    driver_by_name(name, &DriverOptions::from_env())
}

/// The driver called `name` (`quickjs`, `quickjs-wasm`, `v8`, `cloudflare`).
///
/// ```
/// let err = code_mode_drivers::driver_by_name("lua", &Default::default()).err().unwrap();
/// assert!(err.to_string().contains("unknown driver"));
/// ```
pub fn driver_by_name(
    name: &str,
    options: &DriverOptions,
) -> Result<Arc<dyn IsolateDriver>, DriverSelectError> {
    let _ = options;
    match name {
        #[cfg(feature = "quickjs")]
        "quickjs" => Ok(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::new())),
        #[cfg(feature = "v8")]
        "v8" => Ok(Arc::new(code_mode_isolate_v8::V8Driver::new()?)),
        n if ALL_DRIVERS.contains(&n) => Err(DriverSelectError::NotEnabled { name: n.to_owned() }),
        n => Err(DriverSelectError::Unknown { name: n.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(feature = "v8"))]
    fn selection() {
        assert_eq!(enabled_drivers(), vec!["quickjs"]);
        assert_eq!(
            default_driver()
                .map(|d| d.name().to_owned())
                .ok()
                .as_deref(),
            Some("quickjs")
        );
        assert!(matches!(
            driver_by_name("v8", &DriverOptions::default()),
            Err(DriverSelectError::NotEnabled { .. })
        ));
        assert!(matches!(
            driver_by_name("nope", &DriverOptions::default()),
            Err(DriverSelectError::Unknown { .. })
        ));
    }

    #[test]
    #[cfg(feature = "v8")]
    fn v8_is_preferred_when_enabled() {
        assert_eq!(enabled_drivers().first().copied(), Some("v8"));
        // Without its runtime the constructor explains what to install; with it, it works.
        match driver_by_name("v8", &DriverOptions::default()) {
            Ok(d) => assert_eq!(d.name(), "v8"),
            Err(e) => assert!(e.to_string().contains("code-mode-v8-setup"), "{e}"),
        }
    }
}
