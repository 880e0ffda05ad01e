//! rustls configuration, always with the ring provider passed explicitly (no process-wide
//! default to race on).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A TLS set-up problem, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading certificates from {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("reading the private key from {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("generating a self-signed certificate: {0}")]
    SelfSigned(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where a listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files given by the user.
    Files { cert: PathBuf, key: PathBuf },
    /// A fresh self-signed certificate for these names, its PEM written to `write_to`
    /// so clients under test can trust it.
    SelfSigned {
        names: Vec<String>,
        write_to: PathBuf,
    },
}

/// A server configuration (TLS 1.2 and 1.3, ALPN h2 then http/1.1) for `source`.
pub fn server_config(source: &CertSource) -> Result<Arc<ServerConfig>, TlsError> {
    let (chain, key) = match source {
        CertSource::Files { cert, key } => (read_certs(cert)?, read_key(key)?),
        CertSource::SelfSigned { names, write_to } => self_signed(names, write_to)?,
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_err = |reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Generates a certificate for `names` and writes its PEM (certificate only; the key
/// never leaves memory) to `write_to`.
fn self_signed(
    names: &[String],
    write_to: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    std::fs::write(write_to, generated.cert.pem()).map_err(|source| TlsError::Write {
        path: write_to.to_path_buf(),
        source,
    })?;
    let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    Ok((vec![generated.cert.der().clone()], key))
}

/// The ring crypto provider.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting the public web roots plus, optionally, the
/// certificates in `extra_ca` (a private CA, or a test server's own certificate).
pub fn client_config(extra_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let pem_err = |reason: String| TlsError::Pem {
            path: path.to_path_buf(),
            reason,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| pem_err(e.to_string()))? {
            let cert = cert.map_err(|e| pem_err(e.to_string()))?;
            roots.add(cert).map_err(|e| pem_err(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError::NoCertificate {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_config_offers_h2_and_writes_a_trustable_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("cert.pem");
        let config = server_config(&CertSource::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
            write_to: pem.clone(),
        })
        .unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        assert!(client_config(Some(&pem)).is_ok());
    }

    #[test]
    fn key_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        drop(server_config(&CertSource::SelfSigned {
            names: vec!["localhost".into()],
            write_to: cert.clone(),
        }));
        let key = dir.path().join("nokey.pem");
        std::fs::write(&key, "nothing").unwrap();
        let err = server_config(&CertSource::Files { cert, key })
            .unwrap_err()
            .to_string();
        assert!(err.contains("nokey.pem"), "{err}");
    }

    #[test]
    fn public_roots_only() {
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn bad_ca_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("empty.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = client_config(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
