//! A daily budget per email address, across all its requests: how many requests may be filed
//! without a login, and how many wrong codes may be entered, in one UTC day.
//!
//! The per-request limits (5 wrong codes, 3 codes sent) and the per-minute limits still apply,
//! but alone they let one address receive thousands of code emails a day and let a patient
//! guesser file request after request for fresh attempts. The counts live in the database, so
//! they hold across replicas and restarts, keyed by the digest of the address.

use chrono::{NaiveDate, TimeDelta};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use super::{RequestError, model::budgets};
use crate::{clock, config::RateLimitConfig, crypto, db::Tx};

/// What is counted.
#[derive(Debug, Clone, Copy)]
pub enum Spend {
    Filing,
    FailedCode,
}

impl Spend {
    fn column(self) -> budgets::Column {
        match self {
            Self::Filing => budgets::Column::Filings,
            Self::FailedCode => budgets::Column::FailedCodes,
        }
    }

    fn allowed(self, limits: &RateLimitConfig) -> u32 {
        match self {
            Self::Filing => limits.filings_per_email_per_day,
            Self::FailedCode => limits.failed_codes_per_email_per_day,
        }
    }
}

/// The key an address is counted under (also the per-minute limiter's key).
pub fn address_key(address: &str) -> String {
    crypto::sha256_hex(address.trim().to_lowercase().as_bytes())
}

/// Refuses when `address` has already spent today's allowance of `what`.
pub async fn check(
    conn: &impl ConnectionTrait,
    limits: &RateLimitConfig,
    address: &str,
    what: Spend,
) -> Result<(), RequestError> {
    let spent = budgets::Entity::find()
        .filter(budgets::Column::AddressHash.eq(address_key(address)))
        .filter(budgets::Column::Day.eq(today()))
        .filter(what.column().gte(what.allowed(limits) as i32))
        .count(conn)
        .await?;
    if spent > 0 {
        return Err(RequestError::BudgetSpent {
            retry_after: seconds_to_tomorrow(),
        });
    }
    Ok(())
}

/// Counts one `what` for `address` today, then refuses if that went over the allowance (the
/// caller's transaction then rolls the count back with everything else).
pub async fn spend(
    tx: &mut Tx,
    limits: &RateLimitConfig,
    address: &str,
    what: Spend,
) -> Result<(), RequestError> {
    let column = what.column();
    let mut row = budgets::ActiveModel {
        address_hash: Set(address_key(address)),
        day: Set(today()),
        filings: Set(0),
        failed_codes: Set(0),
    };
    match what {
        Spend::Filing => row.filings = Set(1),
        Spend::FailedCode => row.failed_codes = Set(1),
    }
    budgets::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([budgets::Column::AddressHash, budgets::Column::Day])
                .value(column, Expr::col((budgets::Entity, column)).add(1))
                .to_owned(),
        )
        .exec_without_returning(&*tx)
        .await?;
    let over = budgets::Entity::find()
        .filter(budgets::Column::AddressHash.eq(address_key(address)))
        .filter(budgets::Column::Day.eq(today()))
        .filter(column.gt(what.allowed(limits) as i32))
        .count(&*tx)
        .await?;
    if over > 0 {
        return Err(RequestError::BudgetSpent {
            retry_after: seconds_to_tomorrow(),
        });
    }
    Ok(())
}

/// Deletes (or, dry, counts) the days before `before`: part of the purge of Consentry's own data.
pub async fn purge(tx: &mut Tx, before: NaiveDate, dry_run: bool) -> Result<u64, DbErr> {
    let past = budgets::Column::Day.lt(before);
    if dry_run {
        return budgets::Entity::find().filter(past).count(&*tx).await;
    }
    Ok(budgets::Entity::delete_many()
        .filter(past)
        .exec(&*tx)
        .await?
        .rows_affected)
}

fn today() -> NaiveDate {
    clock::now().date_naive()
}

fn seconds_to_tomorrow() -> u64 {
    let now = clock::now();
    let midnight = (now.date_naive() + TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    std::cmp::max((midnight - now).num_seconds(), 1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_counted_whatever_its_case_and_spaces() {
        assert_eq!(
            address_key(" Ana@Example.com"),
            address_key("ana@example.com")
        );
        let wait = seconds_to_tomorrow();
        assert!((1..=86_400).contains(&wait), "{wait}");
    }
}
