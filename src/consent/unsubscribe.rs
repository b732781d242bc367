//! One-click unsubscribe links (RFC 8058) for the main app's marketing emails.
//!
//! A link names a person (by Consentry's internal id, not the main app's or an address) and a
//! purpose, signed with HMAC-SHA256 under `portal.unsubscribe_key` (or
//! `<data_dir>/unsubscribe.key`). It needs no login and does not expire: an unsubscribe link
//! in an old email must still work. All it can do is withdraw that one purpose.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{config::Config, crypto};

/// The body a mail provider posts for a one-click unsubscribe (RFC 8058 §3.1).
pub const ONE_CLICK_BODY: &str = "List-Unsubscribe=One-Click";

fn key(config: &Config) -> Result<[u8; 32], String> {
    crypto::key(
        config.portal.unsubscribe_key.as_ref(),
        &config.data_dir.join("unsubscribe.key"),
    )
}

fn mac(key: &[u8; 32], payload: &str) -> String {
    crypto::hmac_hex(key, format!("unsubscribe\0{payload}").as_bytes())
}

/// The portal's unsubscribe URL for a person and a purpose.
pub fn url(config: &Config, subject_id: &str, purpose: &str) -> Result<String, String> {
    let payload = URL_SAFE_NO_PAD.encode(format!("{subject_id}\n{purpose}"));
    let signature = mac(&key(config)?, &payload);
    Ok(format!(
        "{}/unsubscribe?token={payload}.{signature}",
        config.portal_url()
    ))
}

/// The person and purpose a token names, if its signature holds (compared in constant time).
pub fn open(config: &Config, token: &str) -> Option<(String, String)> {
    let (payload, signature) = token.split_once('.')?;
    let expected = mac(&key(config).ok()?, payload);
    if !crypto::constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
        return None;
    }
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let (subject, purpose) = decoded.split_once('\n')?;
    Some((subject.to_string(), purpose.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_open_only_as_signed() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let link = url(&config, "subject-1", "marketing_email").unwrap();
        let token = link.split_once("token=").unwrap().1;
        assert_eq!(
            open(&config, token),
            Some(("subject-1".into(), "marketing_email".into()))
        );
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("subject-2\nmarketing_email"),
            token.split_once('.').unwrap().1
        );
        assert_eq!(open(&config, &forged), None);
        assert_eq!(open(&config, "nonsense"), None);
    }
}
