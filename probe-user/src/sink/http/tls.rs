//! The listener's TLS, from a web config's `tls_server_config`: rustls with ring's
//! primitives, on Linux. Each failure is one sentence naming the field, for
//! `WebConfigError`.
#[cfg(not(target_os = "linux"))]
pub(super) use elsewhere::{Acceptor, acceptor};
#[cfg(target_os = "linux")]
pub(super) use linux::{Acceptor, acceptor};

/// Where TLS is not built in (macOS: ring compiles C against the target's SDK, which the
/// type-check on the Linux build machines does not have), a web config asking for it is
/// refused with the way around it.
#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use std::path::Path;

    use super::super::web_config::TlsServerConfig;

    /// No value: a listener here never has TLS.
    pub enum Acceptor {}

    pub fn acceptor(_config: &TlsServerConfig, _folder: &Path) -> Result<Acceptor, String> {
        Err(
            "tls_server_config: this build of hupwatch has TLS on Linux only; on macOS \
             keep the listener on 127.0.0.1 and reach it through an SSH tunnel"
                .to_string(),
        )
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::{
        path::{Path, PathBuf},
        sync::Arc,
    };

    use rustls::{
        RootCertStore, ServerConfig,
        server::{WebPkiClientVerifier, danger::ClientCertVerifier},
        version::{TLS12, TLS13},
    };
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    use tokio_rustls::TlsAcceptor;

    use super::super::web_config::{ClientAuth, TlsServerConfig, TlsVersion};

    /// rustls's acceptor: what a connection's handshake runs through.
    pub type Acceptor = TlsAcceptor;

    pub fn acceptor(config: &TlsServerConfig, folder: &Path) -> Result<TlsAcceptor, String> {
        let cert_file = required(&config.cert_file, "cert_file", folder)?;
        let key_file = required(&config.key_file, "key_file", folder)?;
        let client_verifier = client_verifier(config, folder)?;
        let provider = provider();
        let chain = certificates(&cert_file, "cert_file")?;
        let key = PrivateKeyDer::from_pem_file(&key_file).map_err(|e| {
            format!(
                "tls_server_config.key_file {}: no private key read ({e}); give the PEM key of cert_file",
                key_file.display()
            )
        })?;
        let versions = versions(config)?;
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("tls_server_config: {e}"))?;
        let builder = match client_verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_single_cert(chain, key).map_err(|e| {
            format!(
                "tls_server_config: the key in {} does not serve the certificate in {} ({e})",
                key_file.display(),
                cert_file.display()
            )
        })?;
        // Scrapers and browsers speak HTTP/1.1 to hupwatch; say so during the handshake.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(server)))
    }

    /// ring's primitives: they build for both musl targets from rustup's toolchain and a C
    /// compiler, where aws-lc needs cmake and its own cross build. rustls 0.23.48 deprecates
    /// this provider for lacking post-quantum key exchange, which a scrape of a LAN's metrics
    /// does not need yet.
    #[allow(deprecated)]
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn required(value: &Option<PathBuf>, field: &str, folder: &Path) -> Result<PathBuf, String> {
        match value {
            Some(path) if !path.as_os_str().is_empty() => Ok(folder.join(path)),
            _ => Err(format!(
                "tls_server_config.{field} is missing; name the PEM file (TLS needs both cert_file and key_file)"
            )),
        }
    }

    fn certificates(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
        let unreadable = |e: &dyn std::fmt::Display| {
            format!(
                "tls_server_config.{field} {}: cannot read certificates ({e})",
                path.display()
            )
        };
        let chain = CertificateDer::pem_file_iter(path)
            .map_err(|e| unreadable(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable(&e))?;
        if chain.is_empty() {
            return Err(format!(
                "tls_server_config.{field} {}: no PEM certificate in it",
                path.display()
            ));
        }
        Ok(chain)
    }

    fn client_verifier(
        config: &TlsServerConfig,
        folder: &Path,
    ) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
        let verify = match config.client_auth_type {
            ClientAuth::NoClientCert => {
                if config.client_ca_file.is_some() {
                    return Err(
                        "tls_server_config.client_ca_file is set but client_auth_type is \
                                NoClientCert; set client_auth_type: RequireAndVerifyClientCert"
                            .to_string(),
                    );
                }
                return Ok(None);
            }
            ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
                return Err(format!(
                    "tls_server_config.client_auth_type {:?} accepts certificates nobody verified, \
                     which hupwatch does not do; use RequireAndVerifyClientCert or \
                     VerifyClientCertIfGiven with client_ca_file",
                    config.client_auth_type
                ));
            }
            ClientAuth::VerifyClientCertIfGiven => false,
            ClientAuth::RequireAndVerifyClientCert => true,
        };
        let ca_file = config.client_ca_file.as_ref().ok_or_else(|| {
            format!(
                "tls_server_config.client_auth_type {:?} needs client_ca_file, the CA that signs \
                 the clients' certificates",
                config.client_auth_type
            )
        })?;
        let ca_file = folder.join(ca_file);
        let mut roots = RootCertStore::empty();
        for certificate in certificates(&ca_file, "client_ca_file")? {
            roots.add(certificate).map_err(|e| {
                format!(
                    "tls_server_config.client_ca_file {}: not a CA certificate rustls can use ({e})",
                    ca_file.display()
                )
            })?;
        }
        let provider = provider();
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let builder = if verify {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        builder.build().map(Some).map_err(|e| {
            format!(
                "tls_server_config.client_ca_file {}: {e}",
                ca_file.display()
            )
        })
    }

    /// TLS 1.2 and 1.3 are all rustls speaks: a `min_version` below 1.2 still gets 1.2.
    fn versions(
        config: &TlsServerConfig,
    ) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
        let min = config.min_version.unwrap_or(TlsVersion::TLS12);
        let max = config.max_version.unwrap_or(TlsVersion::TLS13);
        if max < TlsVersion::TLS12 || max < min {
            return Err(format!(
                "tls_server_config.max_version {max:?} leaves no version hupwatch speaks (TLS12 or \
                 TLS13 at or above min_version {min:?})"
            ));
        }
        let mut versions = Vec::new();
        if min <= TlsVersion::TLS12 {
            versions.push(&TLS12);
        }
        if max >= TlsVersion::TLS13 {
            versions.push(&TLS13);
        }
        Ok(versions)
    }
}
