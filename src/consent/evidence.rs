//! What is kept of the requester as evidence of a consent event: the user agent, and the IP
//! address truncated or keyed-hashed, per `consent.ip_evidence`.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{ConsentConfig, IpEvidence};

/// Longest user agent kept; the rest is cut.
const MAX_USER_AGENT: usize = 512;

/// The user agent, trimmed to a sane length on a character boundary.
pub fn user_agent(value: Option<&str>) -> Option<String> {
    let value = value?.trim();
    if value.is_empty() {
        return None;
    }
    let mut end = value.len().min(MAX_USER_AGENT);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Some(value[..end].to_string())
}

/// The IP address as the configuration says to keep it.
pub fn ip(config: &ConsentConfig, ip: Option<IpAddr>) -> Option<String> {
    let ip = ip?;
    match config.ip_evidence {
        IpEvidence::None => None,
        IpEvidence::Truncate => Some(truncate(ip)),
        IpEvidence::Hash => {
            let key = config.ip_hash_key.as_ref()?;
            let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).ok()?;
            mac.update(ip.to_string().as_bytes());
            Some(format!(
                "hmac-sha256:{}",
                crate::crypto::hex(&mac.finalize().into_bytes())
            ))
        }
    }
}

/// IPv4 to its /24, IPv6 to its /48, written as a network.
fn truncate(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn addresses_are_truncated_by_default() {
        let config = ConsentConfig::default();
        assert_eq!(
            ip(&config, Some("203.0.113.77".parse().unwrap())).unwrap(),
            "203.0.113.0/24"
        );
        assert_eq!(
            ip(&config, Some("2001:db8:abcd:12::1".parse().unwrap())).unwrap(),
            "2001:db8:abcd::/48"
        );
    }

    #[test]
    fn hashed_addresses_are_stable_and_keyed() {
        let config = |key: &str| ConsentConfig {
            ip_evidence: IpEvidence::Hash,
            ip_hash_key: Some(Secret::new(key)),
            ..ConsentConfig::default()
        };
        let addr = Some("203.0.113.77".parse().unwrap());
        let a = ip(&config("k1"), addr).unwrap();
        assert_eq!(a, ip(&config("k1"), addr).unwrap());
        assert_ne!(a, ip(&config("k2"), addr).unwrap());
        assert!(!a.contains("203.0.113"));
    }

    #[test]
    fn long_user_agents_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let cut = user_agent(Some(&long)).unwrap();
        assert!(cut.len() <= MAX_USER_AGENT);
        assert!(user_agent(Some("  ")).is_none());
    }
}
