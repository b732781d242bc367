//! The one CSRF check of every form on the pages.
//!
//! Each browser gets a random `consentry_csrf` cookie (HttpOnly, SameSite=Strict); every form
//! carries a token derived from that cookie and, when signed in, the session cookie. A POST is
//! accepted only when its token matches what the cookies it came with derive (compared in
//! constant time). A page on another site can make the browser send the cookies but cannot read
//! them, so it cannot write the token; binding to the session means a token from before a
//! sign-in does not work after it.

use crate::crypto;

/// The form token for a browser's CSRF cookie and, when signed in, its session cookie.
pub fn token(seed: &str, session: Option<&str>) -> String {
    crypto::sha256_hex(format!("consentry-csrf\0{seed}\0{}", session.unwrap_or("")).as_bytes())
}

/// Whether a submitted token is the one these cookies derive.
pub fn verify(seed: &str, session: Option<&str>, submitted: &str) -> bool {
    crypto::constant_time_eq(token(seed, session).as_bytes(), submitted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_the_browser_and_the_session() {
        let t = token("seed", Some("session"));
        assert!(verify("seed", Some("session"), &t));
        assert!(!verify("other", Some("session"), &t));
        assert!(!verify("seed", None, &t));
        assert!(!verify("seed", Some("session"), ""));
    }
}
