//! What the listener enforces, built from one reading of the `--web-config` file
//! (web_config.rs): TLS (tls.rs) and basic-auth users (auth.rs); and the holder a SIGHUP
//! reloads, replaced whole so each connection keeps the security it was accepted under.
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use super::{
    auth::Users,
    tls,
    web_config::{ClientAuth, File, WebConfigError},
};

/// What the listener enforces, built from one reading of the file.
#[derive(Default)]
pub struct Security {
    pub(super) tls: Option<tls::Acceptor>,
    /// Every client must show a certificate a configured CA signed.
    clients_verified: bool,
    pub(super) users: Option<Arc<Users>>,
    /// What the file asks for that hupwatch does otherwise, one sentence each.
    warnings: Vec<String>,
}

impl Security {
    /// Reads and checks `file`: the YAML, every certificate and key it names, every hash.
    pub fn load(file: &Path) -> Result<Self, WebConfigError> {
        let fail = |reason: String| WebConfigError::new(file, reason);
        let parsed = File::read(file)?;
        let warnings = parsed.warnings(file);
        let folder = file.parent().unwrap_or(Path::new("."));
        let tls = match &parsed.tls_server_config {
            Some(config) => Some(tls::acceptor(config, folder).map_err(fail)?),
            None => None,
        };
        let users = if parsed.basic_auth_users.is_empty() {
            None
        } else {
            Some(Arc::new(Users::new(parsed.basic_auth_users).map_err(fail)?))
        };
        let clients_verified = parsed
            .tls_server_config
            .as_ref()
            .is_some_and(|c| c.client_auth_type == ClientAuth::RequireAndVerifyClientCert);
        Ok(Self {
            tls,
            clients_verified,
            users,
            warnings,
        })
    }

    /// What the file asks for that hupwatch does otherwise; said once per load.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn has_users(&self) -> bool {
        self.users.is_some()
    }

    pub fn verifies_clients(&self) -> bool {
        self.clients_verified
    }
}

/// The listener's security as it stands, replaced whole by a reload. A connection keeps
/// the TLS it was accepted under, and each request on it is checked against the users in
/// force when it comes (respond.rs), so a reload that removes a user reaches kept-alive
/// connections too.
#[derive(Clone, Default)]
pub struct WebConfig {
    file: Option<PathBuf>,
    current: Arc<RwLock<Arc<Security>>>,
}

impl WebConfig {
    /// No file: plain HTTP, no authentication.
    pub fn open() -> Self {
        Self::default()
    }

    pub fn load(file: &Path) -> Result<Self, WebConfigError> {
        Ok(Self {
            file: Some(file.to_path_buf()),
            current: Arc::new(RwLock::new(Arc::new(Security::load(file)?))),
        })
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn current(&self) -> Arc<Security> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads the file again; a file that no longer loads leaves the one in force as it is.
    pub fn reload(&self) -> Result<(), WebConfigError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let fresh = Arc::new(Security::load(file)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `yaml` to a file of its own and loads it.
    fn load(yaml: &str) -> Result<Security, String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hupwatch-web-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{n}.yml"));
        std::fs::write(&file, yaml).unwrap();
        Security::load(&file).map_err(|e| e.to_string())
    }

    #[test]
    fn the_fleet_example_has_only_fields_hupwatch_reads() {
        let shipped: File = serde_yaml_ng::from_str(include_str!(
            "../../../../deploy/fleet/hupwatch-web-config.yml"
        ))
        .unwrap();
        let tls = shipped.tls_server_config.unwrap();
        assert!(tls.cert_file.is_some() && tls.key_file.is_some());
        // The placeholder has a hash's shape, so the file fails only at the password.
        Users::new(shipped.basic_auth_users).unwrap();
    }

    #[test]
    fn an_empty_file_asks_for_nothing() {
        let security = load("").unwrap();
        assert!(!security.is_tls() && !security.has_users());
    }

    #[test]
    fn an_unknown_field_is_named_on_one_line() {
        let err = load("basic_auth_users: {}\ntls_server_confg:\n  cert_file: a\n")
            .err()
            .unwrap();
        assert!(err.contains("tls_server_confg"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_password_in_clear_is_refused_as_no_bcrypt_hash() {
        let err = load("basic_auth_users:\n  prometheus: hunter2\n")
            .err()
            .unwrap();
        assert!(err.contains("basic_auth_users.prometheus"), "{err}");
        assert!(err.contains("bcrypt"), "{err}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_missing_certificate_names_its_field_and_path() {
        let err = load(
            "tls_server_config:\n  cert_file: /nonexistent/x.crt\n  key_file: /nonexistent/x.key\n",
        )
        .err()
        .unwrap();
        assert!(err.contains("tls_server_config.cert_file"), "{err}");
        assert!(err.contains("/nonexistent/x.crt"), "{err}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_client_ca_without_a_policy_is_refused() {
        let err = load("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n")
            .err()
            .unwrap();
        assert!(err.contains("client_auth_type"), "{err}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_client_certificate_taken_unverified_is_refused_by_name() {
        let err = load(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
        )
        .err()
        .unwrap();
        assert!(err.contains("RequireAnyClientCert"), "{err}");
        assert!(err.contains("RequireAndVerifyClientCert"), "{err}");
    }

    #[test]
    fn a_reload_that_fails_keeps_what_was_in_force() {
        let dir = std::env::temp_dir().join(format!("hupwatch-web-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("web.yml");
        let hash = bcrypt::hash("secret", 4).unwrap();
        std::fs::write(
            &file,
            format!("basic_auth_users:\n  prometheus: '{hash}'\n"),
        )
        .unwrap();
        let config = WebConfig::load(&file).unwrap();
        assert!(config.current().has_users());
        std::fs::write(&file, "basic_auth_users: [").unwrap();
        assert!(config.reload().is_err());
        assert!(config.current().has_users());
        std::fs::write(&file, "").unwrap();
        config.reload().unwrap();
        assert!(!config.current().has_users());
    }
}
