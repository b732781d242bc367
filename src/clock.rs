//! Time as the service sees it.
//!
//! Instants are truncated to microseconds, the precision PostgreSQL keeps, so that a value read
//! back from either database equals the value written; hash chains depend on that.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The current instant at microsecond precision.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// Drops sub-microsecond digits.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// The canonical text form used inside hashed documents: RFC 3339, UTC, six fractional digits.
pub fn canonical(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
