//! `--web-config FILE`: who may read the listener and over what, in the format of the
//! Prometheus exporter toolkit's web configuration file, so a fleet configures hupwatch as
//! it configures node_exporter and Prometheus's `scrape_config` (`scheme: https`,
//! `tls_config`, `basic_auth`) speaks to it unchanged.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: hupwatch.crt       # relative paths are the file's own folder's
//!   key_file: hupwatch.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: fleet-ca.crt
//!   min_version: TLS12
//! basic_auth_users:
//!   prometheus: $2y$10$...        # bcrypt
//! ```
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::Deserialize;

/// A web config that cannot be used; displays as one line naming the file, the field and
/// the fix.
#[derive(Debug, thiserror::Error)]
#[error("--web-config {}: {reason}", file.display())]
pub struct WebConfigError {
    pub file: PathBuf,
    pub reason: String,
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
// Read where TLS is built in (tls.rs); elsewhere only its presence counts.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) struct TlsServerConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub client_auth_type: ClientAuth,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// The exporter toolkit's names for Go's `tls.ClientAuthType`. The two that take a client
/// certificate without verifying it are refused by name rather than unknown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum ClientAuth {
    #[default]
    NoClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
    RequestClientCert,
    RequireAnyClientCert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub(super) enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

impl File {
    /// Reads and parses `file`; what it names (certificates, keys, hashes) is checked by
    /// whoever builds on it (security.rs).
    pub(super) fn read(file: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| WebConfigError::new(file, format!("cannot read: {e}")))?;
        // An empty file is YAML's null, which the toolkit takes as "no TLS, no users".
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(&text)
            .map_err(|e| WebConfigError::new(file, one_line(&e.to_string())))
    }
}

impl File {
    /// What the file asks for that hupwatch does otherwise, one sentence each, said at
    /// start and on each reload.
    pub(super) fn warnings(&self, file: &Path) -> Vec<String> {
        self.tls_server_config
            .as_ref()
            .and_then(|c| c.min_version)
            .filter(|min| *min < TlsVersion::TLS12)
            .map(|min| {
                format!(
                    "--web-config {}: tls_server_config.min_version {min:?} is below what hupwatch speaks; connections use TLS 1.2 or newer (say TLS12 to quiet this)",
                    file.display()
                )
            })
            .into_iter()
            .collect()
    }
}

impl WebConfigError {
    pub(super) fn new(file: &Path, reason: String) -> Self {
        Self {
            file: file.to_path_buf(),
            reason,
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_minimum_below_what_hupwatch_speaks_is_said() {
        let file = Path::new("web.yml");
        let with = |min: &str| -> File {
            serde_yaml_ng::from_str(&format!(
                "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: {min}\n"
            ))
            .unwrap()
        };
        let said = with("TLS10").warnings(file);
        assert_eq!(said.len(), 1);
        assert!(
            said[0].contains("min_version TLS10 is below what hupwatch speaks"),
            "{said:?}"
        );
        assert!(with("TLS12").warnings(file).is_empty());
        assert!(File::default().warnings(file).is_empty());
    }
}
