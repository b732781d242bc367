//! Subject tokens: compact JWTs signed with HS256 by the main app.
//!
//! Only HS256 is accepted (never `none`, never an algorithm named by the token itself beyond
//! that check); the signature is checked in constant time before the claims are read; `exp` is
//! required and a 60-second leeway absorbs clock skew between the two services.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::{config::Secret, error::ApiError};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: i64 = 60;

/// The external id of the person a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectId(pub String);

/// Verifies subject tokens with the configured secret.
#[derive(Clone)]
pub struct SubjectTokens {
    key: Secret,
}

/// Why a token was refused. The client sees only that it is invalid or expired.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the subject token is malformed")]
    Malformed,
    #[error("the subject token must be signed with HS256")]
    WrongAlgorithm,
    #[error("the subject token's signature is invalid")]
    BadSignature,
    #[error("the subject token has expired")]
    Expired,
    #[error("the subject token is not valid yet")]
    NotYetValid,
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        ApiError::unauthorized(err.to_string())
    }
}

impl From<TokenError> for poem::Error {
    fn from(err: TokenError) -> Self {
        ApiError::from(err).into()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    nbf: Option<i64>,
}

impl SubjectTokens {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    /// Checks signature, algorithm and validity window at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<SubjectId, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(header)?;
        if header.alg != "HS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..header_and_payload_len(token)]);
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;

        let claims: Claims = decode_json(payload)?;
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(TokenError::Malformed);
        }
        if now > claims.exp.saturating_add(LEEWAY_SECONDS) {
            return Err(TokenError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECONDS))
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(SubjectId(claims.sub))
    }

    /// Mints a token, as the main app would; used by the CLI and the tests.
    pub fn mint(&self, sub: &str, exp: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({ "sub": sub, "exp": exp });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC accepts keys of any length")
    }
}

/// Length of `header.payload`, the signed part of a token that has exactly two dots.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn tokens(secret: &str) -> SubjectTokens {
        SubjectTokens::new(Secret::new(secret))
    }

    #[test]
    fn a_minted_token_verifies() {
        let t = tokens("k".repeat(32).as_str());
        let token = t.mint("user-1", NOW + 600);
        assert_eq!(t.verify(&token, NOW), Ok(SubjectId("user-1".into())));
    }

    #[test]
    fn expiry_has_sixty_seconds_of_leeway() {
        let t = tokens("k".repeat(32).as_str());
        let token = t.mint("user-1", NOW);
        assert!(t.verify(&token, NOW + 60).is_ok());
        assert_eq!(t.verify(&token, NOW + 61), Err(TokenError::Expired));
    }

    #[test]
    fn another_secret_is_refused() {
        let token = tokens("a".repeat(32).as_str()).mint("user-1", NOW + 600);
        assert_eq!(
            tokens("b".repeat(32).as_str()).verify(&token, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","exp":9999999999}"#);
        let token = format!("{header}.{payload}.");
        assert_eq!(
            tokens("k".repeat(32).as_str()).verify(&token, NOW),
            Err(TokenError::WrongAlgorithm)
        );
    }

    #[test]
    fn tokens_without_exp_are_refused() {
        let t = tokens("k".repeat(32).as_str());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        let input = format!("{header}.{payload}");
        let mut mac = t.mac();
        mac.update(input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(
            t.verify(&format!("{input}.{sig}"), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let t = tokens("k".repeat(32).as_str());
        assert_eq!(t.verify("abc", NOW), Err(TokenError::Malformed));
        assert_eq!(t.verify("a.b.c.d", NOW), Err(TokenError::Malformed));
    }
}
