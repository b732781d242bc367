//! Subject tokens: compact JWTs signed with HS256 by the main app, checked with the
//! `jsonwebtoken` crate.
//!
//! Only HS256 is accepted (the algorithm is pinned, never taken from the token); `sub` and `exp`
//! are required, with 60 seconds of leeway for clock skew between the two services; `nbf` is
//! honoured when present. With `subject_token_audience` and `subject_token_issuer` set, `aud` and
//! `iss` are required and must match, so that no other token the main app signs with the same
//! secret (its own session tokens, say) opens the portal.
//!
//! The portal's sign-in handoff asks more of a token ([`SubjectTokens::verify_handoff`]): an
//! `iat` within the last [`HANDOFF_WINDOW_SECONDS`], because the link sits in browser history
//! and proxy logs; the portal also accepts each token there once.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::{config::Secret, error::ApiError};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 60;
/// How old a token handed to the portal's sign-in may be.
pub const HANDOFF_WINDOW_SECONDS: i64 = 300;

/// The external id of the person a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectId(pub String);

/// Verifies subject tokens with the configured secret and claims.
#[derive(Clone)]
pub struct SubjectTokens {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    audience: Option<String>,
    issuer: Option<String>,
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
    #[error("the subject token is not meant for this service (audience or issuer)")]
    WrongAudience,
    #[error("the sign-in link must carry an `iat` from the last five minutes")]
    Stale,
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

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// A unique id, so that two links minted in the same second differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
}

impl SubjectTokens {
    /// Tokens signed with `key`, carrying `aud` and `iss` when they are given.
    pub fn new(key: Secret, audience: Option<String>, issuer: Option<String>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Self {
            decoding: DecodingKey::from_secret(key.expose().as_bytes()),
            encoding: EncodingKey::from_secret(key.expose().as_bytes()),
            validation,
            audience,
            issuer,
        }
    }

    /// Checks signature, algorithm, claims and validity window against the current time.
    pub fn verify(&self, token: &str) -> Result<SubjectId, TokenError> {
        Ok(self.claims(token)?.0)
    }

    /// Like [`Self::verify`], and the token was issued in the last five minutes (`iat`); returns
    /// when it expires too, until when the portal remembers it was used.
    pub fn verify_handoff(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(SubjectId, chrono::DateTime<chrono::Utc>), TokenError> {
        let (subject, claims) = self.claims(token)?;
        let leeway = LEEWAY_SECONDS as i64;
        match claims.iat {
            Some(iat) if iat <= now + leeway && now - iat <= HANDOFF_WINDOW_SECONDS => {}
            _ => return Err(TokenError::Stale),
        }
        let expires = chrono::DateTime::from_timestamp(claims.exp + leeway, 0)
            .ok_or(TokenError::Malformed)?;
        Ok((subject, expires))
    }

    fn claims(&self, token: &str) -> Result<(SubjectId, Claims), TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => TokenError::WrongAudience,
                _ => TokenError::Malformed,
            })?;
        let sub = data.claims.sub.clone();
        if sub.is_empty() || sub.len() > 255 {
            return Err(TokenError::Malformed);
        }
        Ok((SubjectId(sub), data.claims))
    }

    /// Mints a token issued now, as the main app would, with this service's audience and
    /// issuer; used by the tests.
    pub fn mint(&self, sub: &str, exp: i64) -> String {
        let claims = Claims {
            sub: sub.to_string(),
            exp,
            iat: Some(chrono::Utc::now().timestamp()),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signs any claims")
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    fn tokens(secret: &str) -> SubjectTokens {
        SubjectTokens::new(Secret::new(secret), None, None)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_minted_token_verifies() {
        let t = tokens("k".repeat(32).as_str());
        let token = t.mint("user-1", now() + 600);
        assert_eq!(t.verify(&token), Ok(SubjectId("user-1".into())));
    }

    #[test]
    fn expiry_has_sixty_seconds_of_leeway() {
        let t = tokens("k".repeat(32).as_str());
        assert!(t.verify(&t.mint("user-1", now() - 30)).is_ok());
        assert_eq!(
            t.verify(&t.mint("user-1", now() - 120)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn another_secret_is_refused() {
        let token = tokens("a".repeat(32).as_str()).mint("user-1", now() + 600);
        assert_eq!(
            tokens("b".repeat(32).as_str()).verify(&token),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unsigned_and_other_algorithms_are_refused() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","exp":9999999999}"#);
        let t = tokens("k".repeat(32).as_str());
        for header in [br#"{"alg":"none"}"#.as_slice(), br#"{"alg":"HS512"}"#] {
            let token = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
            assert!(t.verify(&token).is_err());
        }
    }

    #[test]
    fn tokens_without_exp_are_refused() {
        let t = tokens("k".repeat(32).as_str());
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x"}),
            &EncodingKey::from_secret("k".repeat(32).as_bytes()),
        )
        .unwrap();
        assert_eq!(t.verify(&token), Err(TokenError::Malformed));
    }

    #[test]
    fn audience_and_issuer_are_required_when_configured() {
        let secret = "k".repeat(32);
        let portal = SubjectTokens::new(
            Secret::new(&secret),
            Some("consentry-portal".into()),
            Some("https://app.example.com".into()),
        );
        assert!(portal.verify(&portal.mint("user-1", now() + 600)).is_ok());
        // The main app's own session token, signed with the same secret, opens nothing here.
        let session = tokens(&secret).mint("user-1", now() + 600);
        assert_eq!(portal.verify(&session), Err(TokenError::Malformed));
        let elsewhere = SubjectTokens::new(
            Secret::new(&secret),
            Some("billing".into()),
            Some("https://app.example.com".into()),
        );
        assert_eq!(
            portal.verify(&elsewhere.mint("user-1", now() + 600)),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn a_handoff_needs_a_recent_iat() {
        let secret = "k".repeat(32);
        let t = tokens(&secret);
        assert!(
            t.verify_handoff(&t.mint("user-1", now() + 600), now())
                .is_ok()
        );
        assert_eq!(
            t.verify_handoff(&t.mint("user-1", now() + 600), now() + 301)
                .map(|r| r.0),
            Err(TokenError::Stale)
        );
        let without_iat = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "exp": now() + 600}),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert!(
            t.verify(&without_iat).is_ok(),
            "the API does not ask for iat"
        );
        assert_eq!(
            t.verify_handoff(&without_iat, now()).map(|r| r.0),
            Err(TokenError::Stale)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let t = tokens("k".repeat(32).as_str());
        assert_eq!(t.verify("abc"), Err(TokenError::Malformed));
        assert_eq!(t.verify("a.b.c.d"), Err(TokenError::Malformed));
    }
}
