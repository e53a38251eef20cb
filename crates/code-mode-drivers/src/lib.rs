//! # code-mode-drivers
//!
//! One constructor for whichever sandbox driver the application's cargo features enable, so
//! swapping drivers is a change to `Cargo.toml` only:
//!
//! ```toml
//! code-mode-drivers = "0.1"                                   # QuickJS, in-process (default)
//! code-mode-drivers = { version = "0.1", features = ["quickjs-wasm"] }  # QuickJS in wasmtime
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
pub const ALL_DRIVERS: &[&str] = &NAMES;

/// The drivers: the one table that [`ALL_DRIVERS`], [`enabled_drivers`] and
/// [`driver_by_name`] read, in order of preference. A fifth driver is a row here, a cargo
/// feature and its constructor below.
const DRIVERS: [Row; 4] = [
    Row {
        name: "cloudflare",
        enabled: cfg!(feature = "cloudflare"),
        make: cloudflare,
    },
    Row {
        name: "v8",
        enabled: cfg!(feature = "v8"),
        make: v8,
    },
    Row {
        name: "quickjs-wasm",
        enabled: cfg!(feature = "quickjs-wasm"),
        make: quickjs_wasm,
    },
    Row {
        name: "quickjs",
        enabled: cfg!(feature = "quickjs"),
        make: quickjs,
    },
];

const NAMES: [&str; DRIVERS.len()] = {
    let mut names = [""; DRIVERS.len()];
    let mut i = 0;
    while i < DRIVERS.len() {
        names[i] = DRIVERS[i].name;
        i += 1;
    }
    names
};

type Made = Result<Arc<dyn IsolateDriver>, DriverSelectError>;

/// One driver: its name, whether this build has it, and how it is made.
struct Row {
    name: &'static str,
    enabled: bool,
    make: fn(&DriverOptions) -> Made,
}

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
    DRIVERS.iter().filter(|d| d.enabled).map(|d| d.name).collect()
}

/// The preferred enabled driver, configured from the environment. A driver that cannot be
/// set up here (no Worker URL, no V8 runtime) gives way to the next enabled one, never
/// silently: each driver passed over is logged as a `tracing` warning with the reason (an
/// application that enabled `v8` for process isolation should hear that it got in-process
/// QuickJS). When none can be set up, the most preferred one's error says what is missing.
/// To refuse any fallback, use [`driver_by_name`].
pub fn default_driver() -> Result<Arc<dyn IsolateDriver>, DriverSelectError> {
    let options = DriverOptions::from_env();
    let mut first_error = None;
    let mut passed_over = Vec::new();
    for name in enabled_drivers() {
        match driver_by_name(name, &options) {
            Ok(d) => {
                for (skipped, why) in passed_over {
                    tracing::warn!(
                        driver = skipped,
                        instead = name,
                        "the {skipped} driver is enabled but cannot be set up here, so code-mode uses {name}: {why}"
                    );
                }
                return Ok(d);
            }
            Err(e) => {
                passed_over.push((name, e.to_string()));
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(DriverSelectError::NoneEnabled))
}

/// The driver called `name` (`quickjs`, `quickjs-wasm`, `v8`, `cloudflare`).
///
/// ```
/// let err = code_mode_drivers::driver_by_name("lua", &Default::default()).err().unwrap();
/// assert!(err.to_string().contains("unknown driver"));
/// ```
pub fn driver_by_name(name: &str, options: &DriverOptions) -> Made {
    match DRIVERS.iter().find(|d| d.name == name) {
        Some(d) if d.enabled => (d.make)(options),
        Some(d) => Err(DriverSelectError::NotEnabled {
            name: d.name.to_owned(),
        }),
        None => Err(DriverSelectError::Unknown {
            name: name.to_owned(),
        }),
    }
}

/// A driver this build does not have (its row says so; never called).
#[allow(dead_code)]
fn not_enabled(name: &str) -> Made {
    Err(DriverSelectError::NotEnabled {
        name: name.to_owned(),
    })
}

#[cfg(feature = "quickjs")]
fn quickjs(_: &DriverOptions) -> Made {
    Ok(Arc::new(code_mode_isolate_quickjs::QuickJsDriver::from_env()))
}
#[cfg(not(feature = "quickjs"))]
fn quickjs(_: &DriverOptions) -> Made {
    not_enabled("quickjs")
}

#[cfg(feature = "quickjs-wasm")]
fn quickjs_wasm(_: &DriverOptions) -> Made {
    Ok(Arc::new(
        code_mode_isolate_quickjs_wasm::QuickJsWasmDriver::from_env()?,
    ))
}
#[cfg(not(feature = "quickjs-wasm"))]
fn quickjs_wasm(_: &DriverOptions) -> Made {
    not_enabled("quickjs-wasm")
}

#[cfg(feature = "v8")]
fn v8(_: &DriverOptions) -> Made {
    Ok(Arc::new(code_mode_isolate_v8::V8Driver::from_env()?))
}
#[cfg(not(feature = "v8"))]
fn v8(_: &DriverOptions) -> Made {
    not_enabled("v8")
}

#[cfg(feature = "cloudflare")]
fn cloudflare(options: &DriverOptions) -> Made {
    use code_mode_isolate_cloudflare::{CloudflareDriver, CloudflareOptions};
    // Settings given here (a CLI's `--worker-url`) win over the environment.
    let opts = match &options.worker_url {
        Some(url) => CloudflareOptions::new(url.clone())
            .authorization(options.worker_authorization.clone()),
        None => CloudflareOptions::from_env().map_err(|e| {
            code_mode::DriverError::new(e.driver, format!("{} (or --worker-url)", e.message))
        })?,
    };
    Ok(Arc::new(CloudflareDriver::new(opts)?))
}
#[cfg(not(feature = "cloudflare"))]
fn cloudflare(_: &DriverOptions) -> Made {
    not_enabled("cloudflare")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(any(feature = "v8", feature = "cloudflare", feature = "quickjs-wasm")))]
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
    #[cfg(all(
        feature = "quickjs-wasm",
        not(any(feature = "v8", feature = "cloudflare"))
    ))]
    fn quickjs_wasm_is_preferred_over_native_quickjs() {
        assert_eq!(enabled_drivers().first().copied(), Some("quickjs-wasm"));
        let driver = default_driver().ok();
        assert_eq!(driver.as_ref().map(|d| d.name()), Some("quickjs-wasm"));
    }

    #[test]
    #[cfg(feature = "cloudflare")]
    fn cloudflare_needs_a_url() {
        let err = driver_by_name("cloudflare", &DriverOptions::default()).err();
        assert!(err.is_some_and(|e| e.to_string().contains("CODE_MODE_WORKER_URL")));
    }

    #[test]
    #[cfg(all(feature = "v8", not(feature = "cloudflare")))]
    fn v8_is_preferred_when_enabled() {
        assert_eq!(enabled_drivers().first().copied(), Some("v8"));
        // Without its runtime the constructor explains what to install; with it, it works.
        match driver_by_name("v8", &DriverOptions::default()) {
            Ok(d) => assert_eq!(d.name(), "v8"),
            Err(e) => assert!(e.to_string().contains("code-mode-v8-setup"), "{e}"),
        }
    }
}
