//! rustls configuration, always with the ring provider passed explicitly (no process-wide
//! default to race on).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A TLS set-up problem, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading certificates from {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
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
