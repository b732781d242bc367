//! A fixed-window limit on requests per client (an IP address, or the digest of an email
//! address) for the endpoints that need no credentials, so that they cannot be used to probe or
//! flood the service. IPv6 clients are counted per /64, the block one subscriber usually holds,
//! so that walking through its addresses does not escape the limit (nor grow the map). Counts
//! live in the process: behind several replicas each enforces its own share.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::error::ApiError;

const WINDOW: Duration = Duration::from_secs(60);

/// What a client is counted as.
pub trait Bucket {
    fn bucket(self) -> Self;
}

impl Bucket for IpAddr {
    /// IPv4 as it is; IPv6 to its /64.
    fn bucket(self) -> Self {
        match self {
            IpAddr::V4(_) => self,
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        }
    }
}

impl Bucket for String {
    fn bucket(self) -> Self {
        self
    }
}

/// Requests counted per client in the current minute.
pub struct RateLimiter<K = IpAddr> {
    per_window: u32,
    state: Mutex<(Instant, HashMap<K, u32>)>,
}

impl<K: Hash + Eq + Bucket> RateLimiter<K> {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_window: per_minute,
            state: Mutex::new((Instant::now(), HashMap::new())),
        }
    }

    /// Counts a request from `client`; 429 once it is over the limit for this minute.
    pub fn check(&self, client: Option<K>) -> Result<(), ApiError> {
        let Some(client) = client else {
            return Ok(());
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0.elapsed() >= WINDOW {
            *state = (Instant::now(), HashMap::new());
        }
        let count = state.1.entry(client.bucket()).or_insert(0);
        *count += 1;
        if *count > self.per_window {
            let wait = WINDOW.saturating_sub(state.0.elapsed()).as_secs() + 1;
            return Err(ApiError::too_many_requests(wait));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let limiter = RateLimiter::<IpAddr>::new(2);
        let first = Some("2001:db8:1:2::1".parse().unwrap());
        let same_block = Some("2001:db8:1:2:ffff::9".parse().unwrap());
        let other_block = Some("2001:db8:1:3::1".parse().unwrap());
        assert!(limiter.check(first).is_ok() && limiter.check(same_block).is_ok());
        assert!(
            limiter.check(same_block).is_err(),
            "one /64 shares a bucket"
        );
        assert!(limiter.check(other_block).is_ok());
    }

    #[test]
    fn a_client_over_the_limit_is_refused_and_others_are_not() {
        let limiter = RateLimiter::<IpAddr>::new(2);
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        assert!(limiter.check(a).is_ok() && limiter.check(a).is_ok());
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(b).is_ok());
    }
}
