//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps), through the
//! `totp-rs` crate. A code from the step before or after is accepted for clock drift; the step a
//! code matched is returned so that the account can refuse it, and every earlier one, next time
//! (RFC 6238 §5.2).

use totp_rs::{Algorithm, Secret, TOTP};

fn generator(seed: &[u8]) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, 6, 1, 30, seed.to_vec()).ok()
}

/// Seconds per step.
const STEP: u64 = 30;

/// The time step (Unix time / 30) whose code `code` is, among the steps around `now`; `None`
/// when it is none of them. Every candidate is compared, in constant time.
pub fn matching_step(seed: &[u8], code: &str, now: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let totp = generator(seed)?;
    let current = now / STEP;
    let mut matched = None;
    for step in [current.saturating_sub(1), current, current + 1] {
        let expected = totp.generate(step * STEP);
        if crate::crypto::constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            matched = Some(step);
        }
    }
    matched
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
        assert_eq!(matching_step(seed, "287 082", 59), Some(1));
        assert_eq!(
            matching_step(seed, "287082", 89),
            Some(1),
            "one step of drift is accepted"
        );
        assert_eq!(matching_step(seed, "287082", 150), None);
        assert_eq!(matching_step(seed, "", 59), None);
    }
}
