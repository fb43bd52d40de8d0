//! `[console]`: the auditor's console at `/ui`.

use serde::Deserialize;

/// The auditor's console (docs/console.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console at `/ui`.
    pub enabled: bool,
    /// How long a console session lasts after sign-in.
    pub session_seconds: u64,
    /// Mark the session cookie `Secure`: set it when browsers reach the
    /// service over HTTPS (a TLS-terminating proxy in front of it).
    pub secure_cookie: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_seconds: 28_800,
            secure_cookie: false,
        }
    }
}
