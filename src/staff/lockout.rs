//! Failed sign-ins, counted in the database per account and client network.
//!
//! A row per (account, network) counts wrong passwords and wrong codes alike; after
//! [`FREE_ATTEMPTS`] that network is locked out of that account for 15 minutes, doubling with
//! each further failure up to a day. A stranger who locks an account from their network leaves
//! the owner's office untouched. Wrong codes also count on one row for the whole account
//! ([`ACCOUNT_WIDE`], with a higher allowance): only someone who knows the password reaches the
//! code, and spreading guesses over many networks must not multiply them without end.
//!
//! Accounts are keyed by an HMAC of the typed email under the console key, so an unknown or
//! disabled email is counted and locked exactly as a real one is (the answers cannot tell them
//! apart) and the addresses strangers type are not kept. Each failure is one `INSERT ... ON
//! CONFLICT DO UPDATE SET failures = failures + 1 RETURNING`, so parallel failures each count on
//! both databases. Only a complete sign-in clears the count.

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use crate::{crypto, db::Tx};

/// The `sign_in_failures` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sign_in_failures")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_key: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub network: String,
        pub failures: i32,
        pub locked_until: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Failures from one network allowed before it is locked out of an account.
pub const FREE_ATTEMPTS: i32 = 5;
/// Wrong codes, from all networks together, allowed before the code step locks for everyone.
pub const FREE_CODE_ATTEMPTS: i32 = 10;
/// The network name of the account-wide row for wrong codes.
pub const ACCOUNT_WIDE: &str = "*";
/// The first lock; each further failure doubles it.
const FIRST_LOCK: TimeDelta = TimeDelta::minutes(15);
const LONGEST_LOCK: TimeDelta = TimeDelta::days(1);

/// Whom a sign-in attempt is counted against: the account typed and the client's network.
#[derive(Debug, Clone)]
pub struct Attempt {
    account: String,
    network: String,
}

impl Attempt {
    /// `key` is the console key (a key of its own is derived from it, so the key that seals TOTP
    /// seeds is not also the HMAC key), so that account keys cannot be computed from a list of
    /// emails.
    pub fn new(key: &[u8; 32], email: &str, client: Option<IpAddr>) -> Self {
        let accounts = crypto::derive_key(key, "consentry-sign-in-accounts");
        Self {
            account: crypto::hmac_hex(&accounts, email.trim().to_lowercase().as_bytes()),
            network: network_of(client),
        }
    }
}

/// The network a client is counted in: IPv4 per /24, IPv6 per /56 (what one subscriber or one
/// office usually holds, so walking through its addresses does not reset the count).
pub fn network_of(client: Option<IpAddr>) -> String {
    match client {
        Some(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Some(IpAddr::V6(v6)) => {
            let mut octets = v6.octets();
            octets[7..].fill(0);
            format!("{}/56", std::net::Ipv6Addr::from(octets))
        }
        None => "unknown".into(),
    }
}

/// When the attempt's network is locked out until, if it is now; with `code`, the account-wide
/// lock on codes counts too.
pub async fn locked_until(
    conn: &impl ConnectionTrait,
    attempt: &Attempt,
    code: bool,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let mut networks = vec![attempt.network.as_str()];
    if code {
        networks.push(ACCOUNT_WIDE);
    }
    Ok(entity::Entity::find()
        .filter(entity::Column::AccountKey.eq(&attempt.account))
        .filter(entity::Column::Network.is_in(networks))
        .filter(entity::Column::LockedUntil.gt(now))
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|row| row.locked_until)
        .max())
}

/// Counts a failure (a wrong code also on the account-wide row); returns when the attempt is
/// now locked out until, if this failure locked it.
pub async fn fail(
    tx: &Tx,
    attempt: &Attempt,
    code: bool,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let mut until = count(tx, &attempt.account, &attempt.network, FREE_ATTEMPTS, now).await?;
    if code {
        let wide = count(tx, &attempt.account, ACCOUNT_WIDE, FREE_CODE_ATTEMPTS, now).await?;
        until = Ord::max(until, wide);
    }
    Ok(until)
}

async fn count(
    tx: &Tx,
    account: &str,
    network: &str,
    free: i32,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    use entity::Column;
    let row = entity::ActiveModel {
        account_key: Set(account.to_string()),
        network: Set(network.to_string()),
        failures: Set(1),
        locked_until: Set(None),
        updated_at: Set(now),
    };
    let counted = entity::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::AccountKey, Column::Network])
                .value(
                    Column::Failures,
                    Expr::col((entity::Entity, Column::Failures)).add(1),
                )
                .value(Column::UpdatedAt, Expr::value(now))
                .to_owned(),
        )
        .exec_with_returning(tx)
        .await?;
    if counted.failures < free {
        return Ok(None);
    }
    let until = now + lock_for(counted.failures - free);
    // Parallel failures each set the lock their count earns; the longest stays.
    entity::Entity::update_many()
        .col_expr(Column::LockedUntil, Expr::value(until))
        .filter(Column::AccountKey.eq(account))
        .filter(Column::Network.eq(network))
        .filter(
            Column::LockedUntil
                .is_null()
                .or(Column::LockedUntil.lt(until)),
        )
        .exec(tx)
        .await?;
    Ok(Some(until))
}

/// How long the lock lasts after `beyond` failures past the allowance.
fn lock_for(beyond: i32) -> TimeDelta {
    let doublings = beyond.clamp(0, 10) as u32;
    (FIRST_LOCK * 2i32.pow(doublings)).min(LONGEST_LOCK)
}

/// A complete sign-in clears its network's count and the account-wide count of wrong codes;
/// other networks stay locked.
pub async fn clear(tx: &Tx, attempt: &Attempt) -> Result<(), DbErr> {
    entity::Entity::delete_many()
        .filter(entity::Column::AccountKey.eq(&attempt.account))
        .filter(entity::Column::Network.is_in([attempt.network.as_str(), ACCOUNT_WIDE]))
        .exec(tx)
        .await?;
    Ok(())
}

/// Clears every count of an account (a reset by an admin).
pub async fn clear_account(tx: &Tx, key: &[u8; 32], email: &str) -> Result<(), DbErr> {
    let attempt = Attempt::new(key, email, None);
    entity::Entity::delete_many()
        .filter(entity::Column::AccountKey.eq(attempt.account))
        .exec(tx)
        .await?;
    Ok(())
}

/// Deletes (or, dry, counts) counts untouched since `before` and no longer locking: part of the
/// purge of Consentry's own data.
pub async fn purge(tx: &Tx, before: DateTime<Utc>, dry_run: bool) -> Result<u64, DbErr> {
    let stale = sea_orm::Condition::all()
        .add(entity::Column::UpdatedAt.lt(before))
        .add(
            sea_orm::Condition::any()
                .add(entity::Column::LockedUntil.is_null())
                .add(entity::Column::LockedUntil.lt(before)),
        );
    crate::db::delete_or_count::<entity::Entity>(tx, stale, dry_run).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_with_failures_up_to_a_day() {
        assert_eq!(lock_for(0), TimeDelta::minutes(15));
        assert_eq!(lock_for(1), TimeDelta::minutes(30));
        assert_eq!(lock_for(3), TimeDelta::hours(2));
        assert_eq!(lock_for(40), TimeDelta::days(1));
    }

    #[test]
    fn clients_are_counted_per_network() {
        assert_eq!(
            network_of(Some("203.0.113.77".parse().unwrap())),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of(Some("2001:db8:1:2ff:1::9".parse().unwrap())),
            "2001:db8:1:200::/56"
        );
        let key = [7u8; 32];
        let a = Attempt::new(&key, " Officer@Example.com", None);
        let b = Attempt::new(&key, "officer@example.com", None);
        assert_eq!(a.account, b.account);
        assert_ne!(
            a.account,
            Attempt::new(&[8u8; 32], "officer@example.com", None).account
        );
    }
}
