//! The one CSRF check of every form on the pages.
//!
//! Each browser gets a `consentry_csrf` cookie (HttpOnly, SameSite=Strict) holding a random seed
//! and the service's HMAC of it: a seed the service did not issue (planted by a sibling
//! subdomain, say, which can set cookies for ours) is replaced, not trusted. Every form
//! carries a token derived from that cookie and, when signed in, the session cookie. A POST is
//! accepted only when its token matches what the cookies it came with derive (compared in
//! constant time). A page on another site can make the browser send the cookies but cannot read
//! them, so it cannot write the token; binding to the session means a token from before a
//! sign-in does not work after it.

use crate::crypto;

/// A new seed: 256 random bits and their HMAC under the service's key.
pub fn issue_seed(key: &[u8; 32]) -> String {
    let random = crypto::random_token();
    let mac = seed_mac(key, &random);
    format!("{random}.{mac}")
}

/// Whether a seed from a cookie is one this service issued.
pub fn is_issued(key: &[u8; 32], seed: &str) -> bool {
    seed.split_once('.').is_some_and(|(random, mac)| {
        random.len() == 43
            && crypto::constant_time_eq(seed_mac(key, random).as_bytes(), mac.as_bytes())
    })
}

fn seed_mac(key: &[u8; 32], random: &str) -> String {
    crypto::hmac_hex(key, format!("consentry-csrf-seed\0{random}").as_bytes())
}

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
    fn only_seeds_the_service_issued_are_taken() {
        let key = [3u8; 32];
        let seed = issue_seed(&key);
        assert!(is_issued(&key, &seed));
        assert!(!is_issued(&[4u8; 32], &seed));
        assert!(
            !is_issued(&key, &crypto::random_token()),
            "a bare random seed"
        );
        let (random, _) = seed.split_once('.').unwrap();
        assert!(!is_issued(&key, &format!("{random}.{}", "0".repeat(64))));
    }

    #[test]
    fn tokens_are_bound_to_the_browser_and_the_session() {
        let t = token("seed", Some("session"));
        assert!(verify("seed", Some("session"), &t));
        assert!(!verify("other", Some("session"), &t));
        assert!(!verify("seed", None, &t));
        assert!(!verify("seed", Some("session"), ""));
    }
}
