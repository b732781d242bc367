//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), through the
//! `totp-rs` crate. A code from the step before or after is accepted for clock drift.

use totp_rs::{Algorithm, Secret, TOTP};

fn generator(seed: &[u8]) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, 6, 1, 30, seed.to_vec()).ok()
}

/// Whether `code` is right for `seed` at Unix time `now`.
pub fn check(seed: &[u8], code: &str, now: u64) -> bool {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    generator(seed).is_some_and(|totp| totp.check(&code, now))
}

/// The code for `seed` at `now` (for tests and the browser suite's authenticator).
pub fn code(seed: &[u8], now: u64) -> String {
    generator(seed).map(|t| t.generate(now)).unwrap_or_default()
}

/// The seed in base32, as authenticator apps take it by hand.
pub fn base32(seed: &[u8]) -> String {
    Secret::Raw(seed.to_vec()).to_encoded().to_string()
}

/// The `otpauth://` URI authenticator apps read.
pub fn uri(seed: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        base32(seed),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1, truncated to 6 digits.
    #[test]
    fn codes_match_the_rfc_test_vectors() {
        let seed = b"12345678901234567890";
        assert_eq!(code(seed, 59), "287082");
        assert_eq!(code(seed, 1111111109), "081804");
        assert!(check(seed, "287 082", 59));
        assert!(check(seed, "287082", 89), "one step of drift is accepted");
        assert!(!check(seed, "287082", 150));
    }
}
