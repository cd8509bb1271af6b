//! Device tokens: JWTs checked locally, with no call to another service.
//!
//! A token carries `tenant`, `sources` (the cameras it may write; `*` for
//! any), `scope` (space-separated; ingest needs `ingest`), `exp` and
//! optionally `nbf`. It is signed with HS256 and a shared secret, or with
//! ES256 or EdDSA, checked with the public key.

use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

/// What a device token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub tenant: String,
    pub sources: Vec<String>,
    pub scope: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Whether the token may write frames of camera `source_id`.
    pub fn may_write(&self, source_id: &str) -> bool {
        self.scope.split_whitespace().any(|s| s == "ingest") && self.sources.iter().any(|s| s == "*" || s == source_id)
    }
}

/// Why a token was refused: 401, with what to tell the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// How tokens are checked.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// From an HS256 secret.
    pub fn from_secret(secret: &[u8]) -> Result<Verifier, String> {
        if secret.len() < 32 {
            return Err(format!("the JWT secret has {} bytes; use at least 32", secret.len()));
        }
        Ok(Verifier::new(DecodingKey::from_secret(secret), Algorithm::HS256))
    }

    /// From a PEM public key: EC P-256 (ES256) or Ed25519 (EdDSA).
    pub fn from_public_key(pem: &[u8]) -> Result<Verifier, String> {
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Verifier::new(key, Algorithm::ES256));
        }
        DecodingKey::from_ed_pem(pem)
            .map(|key| Verifier::new(key, Algorithm::EdDSA))
            .map_err(|_| "the public key is neither an EC P-256 nor an Ed25519 key in PEM".to_owned())
    }

    /// From the source's options: `jwt_secret_file` or `jwt_public_key_file`.
    pub fn from_files(secret: Option<&str>, public_key: Option<&str>) -> Result<Verifier, String> {
        let read = |path: &str| std::fs::read(Path::new(path)).map_err(|e| format!("cannot read `{path}`: {e}"));
        match (secret, public_key) {
            (Some(path), None) => Verifier::from_secret(trim(&read(path)?)),
            (None, Some(path)) => Verifier::from_public_key(&read(path)?),
            (Some(_), Some(_)) => Err("give jwt_secret_file or jwt_public_key_file, not both".to_owned()),
            (None, None) => Err("HTTP ingest needs device tokens: give jwt_secret_file (HS256) or \
                                 jwt_public_key_file (ES256 or EdDSA)"
                .to_owned()),
        }
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Verifier {
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        Verifier { key, validation }
    }

    /// The claims of `token`, or why it is refused.
    pub fn check(&self, token: &str) -> Result<Claims, Refused> {
        decode::<Claims>(token, &self.key, &self.validation).map(|data| data.claims).map_err(|e| {
            Refused(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidSignature => "the token's signature does not match",
                    ErrorKind::InvalidAlgorithm => "the token is signed with another algorithm",
                    ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                        "the token lacks a claim frameflow needs"
                    }
                    _ => "the token is not a valid JWT",
                }
                .to_owned(),
            )
        })
    }
}

/// A secret file's bytes without a trailing newline.
fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    &bytes[..end]
}

/// Signs `claims` with an HS256 secret read from `secret_file`.
pub fn mint(claims: &Claims, secret_file: &Path) -> Result<String, String> {
    let secret = std::fs::read(secret_file).map_err(|e| format!("cannot read `{}`: {e}", secret_file.display()))?;
    let secret = trim(&secret);
    if secret.len() < 32 {
        return Err(format!("the JWT secret has {} bytes; use at least 32", secret.len()));
    }
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret of at least thirty-two bytes";

    fn claims(exp: u64) -> Claims {
        Claims { tenant: "acme".into(), sources: vec!["cam1".into()], scope: "ingest".into(), exp, nbf: None }
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    fn sign(claims: &Claims, secret: &[u8]) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn good_tokens_pass_and_forged_or_expired_ones_say_why() {
        let verifier = Verifier::from_secret(SECRET).unwrap();
        let good = claims(now() + 60);
        assert_eq!(verifier.check(&sign(&good, SECRET)), Ok(good.clone()));
        assert!(good.may_write("cam1") && !good.may_write("cam2"));
        let forged = sign(&good, b"another secret, also thirty-two bytes long");
        assert_eq!(verifier.check(&forged).unwrap_err().0, "the token's signature does not match");
        let expired = sign(&claims(now() - 600), SECRET);
        assert_eq!(verifier.check(&expired).unwrap_err().0, "the token has expired");
        assert_eq!(verifier.check("not a token").unwrap_err().0, "the token is not a valid JWT");
        assert!(Verifier::from_secret(b"short").is_err());
    }
}
