//! Passwords: argon2id with the crate's defaults (19 MiB, 2 passes), and a strength check that
//! refuses what a guesser tries first.
//!
//! Each hash costs tens of milliseconds of CPU and 19 MiB, so it never runs on the async
//! executor (where it would stall the consent checks served beside it): it runs on the blocking
//! pool, at most one per core at a time, and a burst of sign-ins waits its turn instead of
//! taking every thread and all that memory at once.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use super::StaffError;

/// Fewest characters accepted (NIST SP 800-63B asks for at least 8; a privacy console holds
/// everyone's requests, so 12).
pub const MIN_LENGTH: usize = 12;
const MAX_LENGTH: usize = 256;

/// A hash of a random password: checked against when the email is unknown, so that the answer
/// takes as long as for a known one.
pub const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Ln8mKJgJ6S4T2mN7zL4Xo0fQ0JmOZ5wYkG0h6c2H9s";

/// Passwords of twelve characters or more that lists of leaked passwords put first.
const COMMON: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "123456789012",
    "1234567890123",
    "12345678901234",
    "qwertyuiop12",
    "qwertyuiop123",
    "qwerty123456",
    "iloveyou1234",
    "administrator",
    "admin1234567",
    "letmein12345",
    "welcome12345",
    "changeme1234",
    "passw0rd1234",
    "p@ssw0rd1234",
    "abc123456789",
    "abcdefghijkl",
    "qwertyuiopas",
    "asdfghjkl123",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "zaq12wsxcde3",
    "trustno1trustno1",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "dragon123456",
    "monkey123456",
    "master123456",
    "superman1234",
    "starwars1234",
    "whatever1234",
    "consentry123",
    "consentry1234",
    "privacy12345",
    "privacypolicy",
];

/// Why a password was refused: a code for the catalogue of words (`password.weak.<code>`), and
/// English for the command line and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Weakness {
    #[error("use at least 12 characters")]
    TooShort,
    #[error("use at most 256 characters")]
    TooLong,
    #[error("this password is among the most common ones")]
    Common,
    #[error("use more different characters")]
    FewCharacters,
    #[error("do not build the password from your email")]
    FromEmail,
}

impl Weakness {
    pub const ALL: [Weakness; 5] = [
        Self::TooShort,
        Self::TooLong,
        Self::Common,
        Self::FewCharacters,
        Self::FromEmail,
    ];

    /// The key of its words in the catalogue.
    pub fn message_key(self) -> &'static str {
        match self {
            Self::TooShort => "password.weak.too_short",
            Self::TooLong => "password.weak.too_long",
            Self::Common => "password.weak.common",
            Self::FewCharacters => "password.weak.few_characters",
            Self::FromEmail => "password.weak.from_email",
        }
    }
}

/// Refuses passwords that are short, long beyond reason, common, made of few characters, or
/// built from the account's email.
pub fn check_strength(password: &str, email: &str) -> Result<(), StaffError> {
    let weak = |why| Err(StaffError::WeakPassword(why));
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return weak(Weakness::TooShort);
    }
    if chars > MAX_LENGTH {
        return weak(Weakness::TooLong);
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return weak(Weakness::Common);
    }
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return weak(Weakness::FewCharacters);
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if local.len() >= 4 && lower.contains(&local) {
        return weak(Weakness::FromEmail);
    }
    Ok(())
}

/// The argon2id PHC string of a password, with a random salt.
pub async fn hash(password: &str) -> String {
    let password = password.to_string();
    off_executor(move || hash_now(&password)).await
}

/// Whether `password` matches a PHC string (constant time inside argon2).
pub async fn verify(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_string(), phc.to_string());
    off_executor(move || verify_now(&password, &phc)).await
}

fn hash_now(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .expect("argon2 hashes any password with default parameters")
        .to_string()
}

fn verify_now(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Runs `work` on the blocking pool once one of the per-core slots is free.
async fn off_executor<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    let _slot = slots
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for weak in [
            "short",
            "password1234",
            "aaaaaaaaaaaaaaaa",
            "ababababababab",
            "xx-officer-2026",
        ] {
            assert!(
                check_strength(weak, "officer@example.com").is_err(),
                "{weak}"
            );
        }
        assert!(check_strength("correct horse battery staple", "officer@example.com").is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let phc = hash("correct horse battery staple").await;
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &phc).await);
        assert!(!verify("correct horse battery stapler", &phc).await);
        assert!(!verify("anything", DECOY).await);
        assert!(
            PasswordHash::new(DECOY).is_ok(),
            "the decoy costs as much as a real check"
        );
    }
}
