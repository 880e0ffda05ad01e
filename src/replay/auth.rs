//! Callback authentication during replay.
//!
//! Recorded Graph tokens are expired and signed with keys only Microsoft holds. Replay
//! can mint fresh ones with its own key (publishing the OpenID configuration and JWKS a
//! bot's validator can be pointed at), send a fixed token, or send none.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{json, Value};

use crate::exchange::{header, Exchange, StoredBody};
use crate::redact::{jwt_claims, parse_redacted, JwtClaims};

/// Problems with the signing key, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("--callback-auth {0:?}: use sign, none or token:VALUE")]
    Mode(String),
    #[error("reading the signing key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("writing the signing key {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating a signing key failed")]
    Generate,
}

/// How replayed notifications are authenticated (`--callback-auth`).
pub enum CallbackAuth {
    /// Fresh tokens signed by graphtape.
    Sign(Box<Signer>),
    /// This exact token every time.
    Token(String),
    /// No Authorization header.
    None,
}

/// What `--callback-auth` said, before any key is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    Sign,
    Token(String),
    None,
}

impl AuthMode {
    /// Parses `sign`, `none` or `token:VALUE`.
    pub fn parse(value: &str) -> Result<AuthMode, AuthError> {
        match value {
            "sign" => Ok(AuthMode::Sign),
            "none" => Ok(AuthMode::None),
            _ => match value.strip_prefix("token:") {
                Some(token) if !token.is_empty() => Ok(AuthMode::Token(token.to_string())),
                _ => Err(AuthError::Mode(value.to_string())),
            },
        }
    }
}

enum Key {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A signing key with its key id.
pub struct Signer {
    key: Key,
    kid: String,
    rng: SystemRandom,
}

impl Signer {
    /// Loads `path` (PKCS#8 PEM, P-256 or RSA) or, if it does not exist yet, generates a
    /// P-256 key there, so the bot's cached JWKS stays valid from one replay to the next.
    /// Returns the signer and whether the key was generated.
    pub fn load_or_create(path: &Path) -> Result<(Signer, bool), AuthError> {
        let key_err = |reason: String| AuthError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let rng = SystemRandom::new();
        let load = || -> Result<Vec<u8>, AuthError> {
            let key = PrivateKeyDer::from_pem_file(path).map_err(|e| key_err(e.to_string()))?;
            let PrivateKeyDer::Pkcs8(der) = key else {
                return Err(key_err(
                    "expected a PKCS#8 key (-----BEGIN PRIVATE KEY-----)".into(),
                ));
            };
            Ok(der.secret_pkcs8_der().to_vec())
        };
        let (der, generated) = if path.exists() {
            (load()?, false)
        } else {
            let doc =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| AuthError::Generate)?;
            let der = doc.as_ref().to_vec();
            match write_pem(path, &der)? {
                true => (der, true),
                // Another replay created it meanwhile: use theirs.
                false => (load()?, false),
            }
        };
        let key =
            match EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            {
                Ok(k) => Key::Ec(k),
                Err(_) => Key::Rsa(
                    RsaKeyPair::from_pkcs8(&der)
                        .map_err(|e| key_err(format!("not a P-256 or RSA key: {e}")))?,
                ),
            };
        let public = match &key {
            Key::Ec(k) => k.public_key().as_ref().to_vec(),
            Key::Rsa(k) => k.public().as_ref().to_vec(),
        };
        let kid = crate::exchange::sha256_hex(&public)[..16].to_string();
        Ok((Signer { key, kid, rng }, generated))
    }

    fn alg(&self) -> &'static str {
        match self.key {
            Key::Ec(_) => "ES256",
            Key::Rsa(_) => "RS256",
        }
    }

    /// A token with the recorded issuer, audience and tenant, valid for an hour from now.
    pub fn token(&self, claims: &JwtClaims, now_unix: i64) -> String {
        let header = json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid});
        let mut payload = serde_json::Map::new();
        for (name, value) in [
            ("iss", &claims.iss),
            ("aud", &claims.aud),
            ("tid", &claims.tid),
        ] {
            if let Some(v) = value {
                payload.insert(name.into(), Value::String(v.clone()));
            }
        }
        payload.insert("iat".into(), now_unix.into());
        payload.insert("nbf".into(), (now_unix - 300).into());
        payload.insert("exp".into(), (now_unix + 3600).into());
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(Value::Object(payload).to_string())
        );
        let signature = match &self.key {
            Key::Ec(k) => k
                .sign(&self.rng, signing_input.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default(),
            Key::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                match k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    signing_input.as_bytes(),
                    &mut sig,
                ) {
                    Ok(()) => sig,
                    Err(_) => Vec::new(),
                }
            }
        };
        format!("{signing_input}.{}", B64URL.encode(signature))
    }

    /// The JSON Web Key Set with this key's public half.
    pub fn jwks(&self) -> Value {
        let jwk = match &self.key {
            Key::Ec(k) => {
                // Uncompressed point: 0x04 || X || Y.
                let point = k.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .unwrap_or_default()
                    .split_at(32.min(point.len().saturating_sub(1)));
                json!({"kty": "EC", "crv": "P-256", "x": B64URL.encode(x), "y": B64URL.encode(y)})
            }
            Key::Rsa(k) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty": "RSA", "n": B64URL.encode(&public.n), "e": B64URL.encode(&public.e)})
            }
        };
        let mut jwk = jwk;
        jwk["kid"] = self.kid.clone().into();
        jwk["use"] = "sig".into();
        jwk["alg"] = self.alg().into();
        json!({ "keys": [jwk] })
    }

    /// An OpenID configuration pointing at the JWKS.
    pub fn openid_configuration(&self, issuer: &str, jwks_uri: &str) -> Value {
        json!({
            "issuer": issuer,
            "jwks_uri": jwks_uri,
            "id_token_signing_alg_values_supported": [self.alg()],
            "token_endpoint_auth_signing_alg_values_supported": [self.alg()],
        })
    }
}

/// Writes the key in full beside `path`, then links it into place, so a replay starting
/// at the same moment never reads half a key. False if `path` already existed.
fn write_pem(path: &Path, der: &[u8]) -> Result<bool, AuthError> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    use std::io::Write;
    let write_err = |source| AuthError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    crate::private_file::create_new_private(&tmp)
        .and_then(|mut f| f.write_all(pem.as_bytes()))
        .map_err(write_err)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(write_err(e)),
    }
}

/// Verifies an ES256 token against a JWK set (used by tests and by `replay` itself to
/// check its own output).
pub fn verify_es256(token: &str, jwks: &Value) -> bool {
    let mut parts = token.rsplitn(2, '.');
    let (Some(sig), Some(signing_input)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(sig) = B64URL.decode(sig) else {
        return false;
    };
    let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
    keys.iter().any(|k| {
        let (Some(x), Some(y)) = (k["x"].as_str(), k["y"].as_str()) else {
            return false;
        };
        let (Ok(x), Ok(y)) = (B64URL.decode(x), B64URL.decode(y)) else {
            return false;
        };
        let mut point = vec![4u8];
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(signing_input.as_bytes(), &sig)
            .is_ok()
    })
}

/// The claims of a recorded notification's token: from graphtape's placeholder, or from
/// the token itself when it was recorded in clear.
pub fn claims_of(ex: &Exchange<StoredBody>) -> Option<JwtClaims> {
    let value = header(&ex.request.headers, "authorization")?;
    if let Some(redacted) = parse_redacted(value) {
        return Some(redacted.claims);
    }
    let token = value.split_once(' ').map_or(value, |(_, t)| t);
    jwt_claims(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(AuthMode::parse("sign").unwrap(), AuthMode::Sign);
        assert_eq!(AuthMode::parse("none").unwrap(), AuthMode::None);
        assert_eq!(
            AuthMode::parse("token:abc").unwrap(),
            AuthMode::Token("abc".into())
        );
        assert!(AuthMode::parse("token:").is_err());
        assert!(AuthMode::parse("jwt").is_err());
    }

    #[test]
    fn generated_key_signs_tokens_its_jwks_verifies_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let (signer, generated) = Signer::load_or_create(&path).unwrap();
        assert!(generated);
        let claims = JwtClaims {
            iss: Some("https://api.botframework.com".into()),
            aud: Some("app-id".into()),
            tid: Some("tenant".into()),
            exp: Some(1),
        };
        let token = signer.token(&claims, 1_800_000_000);
        assert!(verify_es256(&token, &signer.jwks()));
        let payload: Value =
            serde_json::from_slice(&B64URL.decode(token.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!(payload["iss"], "https://api.botframework.com");
        assert_eq!(payload["aud"], "app-id");
        assert_eq!(payload["exp"], 1_800_003_600);
        let (again, generated) = Signer::load_or_create(&path).unwrap();
        assert!(!generated);
        assert_eq!(again.jwks(), signer.jwks());
        // A different key's JWKS does not verify it.
        let (other, _) = Signer::load_or_create(&dir.path().join("other.pem")).unwrap();
        assert!(!verify_es256(&token, &other.jwks()));
        let mut tampered = token.clone();
        tampered.insert(tampered.find('.').unwrap() + 2, 'x');
        assert!(!verify_es256(&tampered, &signer.jwks()));
    }

    #[test]
    fn a_bad_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "nope").unwrap();
        let err = Signer::load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("bad.pem"), "{err}");
    }
}
