//! The few cryptographic primitives the service uses, in one place: SHA-256 digests and keyed
//! HMAC-SHA256 in hex, random bytes from the operating system, constant-time comparison for
//! secrets, the 32-byte keys that encrypt export packages and key pseudonyms, and the
//! [`Secret`] type that keeps configured secrets out of logs. It sits below every other room.

use std::{io::Write, path::Path};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A setting that must never be printed: `Debug` shows a placeholder.
#[derive(Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// HMAC-SHA256 of `data` under `key`, in lower-case hexadecimal.
pub fn hmac_hex(key: &[u8; 32], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

/// A key for one purpose, derived from `key` (HMAC-SHA256 under the purpose's label), so that
/// one configured secret serves several uses without one use revealing another's key.
pub fn derive_key(key: &[u8; 32], label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Parses a configured key: 32 bytes in base64.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| "expected 32 bytes in base64 (e.g. `openssl rand -base64 32`)".into())
}

/// The configured key, or the one generated into `path` on first use (readable by the owner
/// only). Replicas sharing a data folder share the file; others need the key configured.
pub fn key(configured: Option<&Secret>, path: &Path) -> Result<[u8; 32], String> {
    if let Some(key) = configured {
        return parse_key(key.expose());
    }
    let named = |e: String| format!("{}: {e}", path.display());
    match std::fs::read_to_string(path) {
        Ok(text) => parse_key(&text).map_err(named),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_bytes::<32>();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    file.write_all(STANDARD.encode(key).as_bytes())
                        .map_err(|e| named(e.to_string()))?;
                    Ok(key)
                }
                // Another caller created it first.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(path).map_err(|e| named(e.to_string()))?;
                    parse_key(&text).map_err(named)
                }
                Err(e) => Err(named(e.to_string())),
            }
        }
        Err(e) => Err(named(e.to_string())),
    }
}

/// SHA-256 of `data` in lower-case hexadecimal.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Encrypts a small secret for storage (ChaCha20-Poly1305, random nonce): base64 of nonce and
/// ciphertext. For secrets the service must read back, such as a TOTP seed.
pub fn seal(key: &[u8; 32], plaintext: &[u8]) -> String {
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, aead::Aead};
    let nonce = random_bytes::<12>();
    let sealed = ChaCha20Poly1305::new(key.into())
        .encrypt((&nonce).into(), plaintext)
        .expect("encrypting a short secret cannot fail");
    STANDARD.encode([nonce.as_slice(), &sealed].concat())
}

/// Decrypts what [`seal`] wrote with the same key; `None` if it was changed or the key differs.
pub fn open(key: &[u8; 32], sealed: &str) -> Option<Vec<u8>> {
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, aead::Aead};
    let bytes = STANDARD.decode(sealed).ok()?;
    if bytes.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    ChaCha20Poly1305::new(key.into())
        .decrypt(nonce.into(), ciphertext)
        .ok()
}

/// 256 random bits as 43 base64url characters: session cookies, CSRF seeds, link tokens.
pub fn random_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    buf
}

/// Compares two secrets (or their digests) without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// JSON with object keys sorted at every level and no insignificant white space, so that the
/// same document always hashes to the same digest whatever map type produced it.
pub fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, value)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(value, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"seed");
        assert_eq!(open(&key, &sealed).as_deref(), Some(&b"seed"[..]));
        assert_eq!(open(&[8u8; 32], &sealed), None);
        assert_ne!(seal(&key, b"seed"), sealed, "a fresh nonce each time");
    }

    #[test]
    fn digests_are_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "é"}], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"d":[1,{"y":"é","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
