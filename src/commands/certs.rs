//! Certificates for graphtape's own listeners, from the `--tls-*` flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::cli::TlsArgs;
use crate::tls::CertSource;

/// The certificate the flags ask for, if any. A self-signed one covers localhost,
/// 127.0.0.1, the given listen addresses and `extra_host`, and is written beside `db`.
pub fn cert_source(
    tls: &TlsArgs,
    db: &Path,
    listens: &[SocketAddr],
    extra_host: Option<&str>,
) -> Option<CertSource> {
    match (&tls.tls_cert, &tls.tls_key, tls.tls_self_signed) {
        (Some(cert), Some(key), _) => Some(CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None, true) => Some(CertSource::SelfSigned {
            names: self_signed_names(listens, extra_host),
            write_to: beside(db, "cert.pem"),
        }),
        _ => None,
    }
}

fn self_signed_names(listens: &[SocketAddr], extra_host: Option<&str>) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(
        listens
            .iter()
            .filter(|a| !a.ip().is_unspecified())
            .map(|a| a.ip().to_string()),
    );
    names.extend(extra_host.map(str::to_string));
    names.sort();
    names.dedup();
    names
}

/// A file next to the database: `graphtape.db` + `cert.pem` → `graphtape-cert.pem`.
pub fn beside(db: &Path, suffix: &str) -> PathBuf {
    let stem = db
        .file_stem()
        .map_or_else(|| "graphtape".into(), |s| s.to_string_lossy().to_string());
    db.with_file_name(format!("{stem}-{suffix}"))
}
