//! Portal sessions: what the session cookie names once the main app has handed a person over
//! with a subject token.
//!
//! The cookie carries 256 random bits; the table keeps only their SHA-256, so a copy of the
//! database opens no session. A session ends at its absolute expiry, after the idle timeout, on
//! sign-out, and when the person is erased. Looking one up refreshes `last_seen_at` at most once
//! a minute, so reading pages does not write on every request.
//!
//! The handoff's tokens are accepted once: [`claim_handoff`] remembers each one's digest until
//! it expires, so a link found in browser history or a proxy log opens nothing.
//!
//! Transactions: this room owns `portal_sessions` and `used_handoffs`; starting and ending take
//! the edge's [`crate::db::Tx`].

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    TryInsertResult,
};

use crate::{clock, crypto, db::Tx};

/// The `portal_sessions` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "portal_sessions")]
    pub struct Model {
        /// SHA-256 of the cookie's value.
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub subject_id: String,
        pub created_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `used_handoffs` table: digests of subject tokens already used to sign in.
pub mod used {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "used_handoffs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Claims a handoff token in the transaction that starts its session: `false` when it was used
/// before (a parallel copy waits for this transaction, then finds it taken).
pub async fn claim_handoff(tx: &Tx, token: &str, expires_at: DateTime<Utc>) -> Result<bool, DbErr> {
    let inserted = used::Entity::insert(used::ActiveModel {
        token_hash: Set(crypto::sha256_hex(token.as_bytes())),
        expires_at: Set(expires_at),
    })
    .on_conflict_do_nothing_on([used::Column::TokenHash])
    .exec_without_returning(tx)
    .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(n) if n > 0))
}

/// How long sessions last.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub absolute: TimeDelta,
    pub idle: TimeDelta,
}

/// How stale `last_seen_at` may get before a lookup refreshes it.
const SEEN_RESOLUTION: TimeDelta = TimeDelta::seconds(60);

/// Whether a session (the portal's or the console's) is still live at `now`: before its
/// absolute expiry and used within `idle`.
pub fn is_live(
    expires_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    idle: TimeDelta,
    now: DateTime<Utc>,
) -> bool {
    expires_at > now && last_seen_at + idle > now
}

/// Whether a lookup should refresh `last_seen_at`: at most once a minute, so that reading pages
/// does not write on every request.
pub fn needs_touch(last_seen_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - last_seen_at > SEEN_RESOLUTION
}

/// A session just started; `token` is the only copy of the cookie's value.
pub struct Started {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Starts a session for a person.
pub async fn start(tx: &Tx, subject_id: &str, lifetimes: Lifetimes) -> Result<Started, DbErr> {
    let token = crypto::random_token();
    let now = clock::now();
    let expires_at = now + lifetimes.absolute;
    entity::Entity::insert(entity::ActiveModel {
        token_hash: Set(crypto::sha256_hex(token.as_bytes())),
        subject_id: Set(subject_id.to_string()),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(expires_at),
    })
    .exec_without_returning(tx)
    .await?;
    Ok(Started { token, expires_at })
}

/// The person a live session belongs to, or `None` for an unknown, expired or idle one.
/// The token is looked up by its SHA-256: 256 random bits leave nothing to learn from timing.
pub async fn subject_of(
    conn: &impl ConnectionTrait,
    token: &str,
    lifetimes: Lifetimes,
) -> Result<Option<String>, DbErr> {
    let hash = crypto::sha256_hex(token.as_bytes());
    let now = clock::now();
    let Some(session) = entity::Entity::find_by_id(hash.clone()).one(conn).await? else {
        return Ok(None);
    };
    if !is_live(
        session.expires_at,
        session.last_seen_at,
        lifetimes.idle,
        now,
    ) {
        return Ok(None);
    }
    if needs_touch(session.last_seen_at, now) {
        entity::Entity::update_many()
            .col_expr(
                entity::Column::LastSeenAt,
                sea_orm::prelude::Expr::value(now),
            )
            .filter(entity::Column::TokenHash.eq(hash))
            .exec(conn)
            .await?;
    }
    Ok(Some(session.subject_id))
}

/// Ends one session (sign-out).
pub async fn end(tx: &Tx, token: &str) -> Result<(), DbErr> {
    entity::Entity::delete_by_id(crypto::sha256_hex(token.as_bytes()))
        .exec(tx)
        .await?;
    Ok(())
}

/// Ends every session of a person: their erasure leaves nothing signed in.
pub async fn end_all(tx: &Tx, subject_id: &str) -> Result<u64, DbErr> {
    Ok(entity::Entity::delete_many()
        .filter(entity::Column::SubjectId.eq(subject_id))
        .exec(tx)
        .await?
        .rows_affected)
}

/// Deletes (or, dry, counts) sessions past their absolute expiry at `as_of`, and used handoff
/// tokens that could no longer be used anyway. Part of the purge of Consentry's own data.
pub async fn purge_expired(tx: &Tx, as_of: DateTime<Utc>, dry_run: bool) -> Result<u64, DbErr> {
    let expired = sea_orm::Condition::all().add(entity::Column::ExpiresAt.lte(as_of));
    let used_up = sea_orm::Condition::all().add(used::Column::ExpiresAt.lte(as_of));
    Ok(
        crate::db::delete_or_count::<entity::Entity>(tx, expired, dry_run).await?
            + crate::db::delete_or_count::<used::Entity>(tx, used_up, dry_run).await?,
    )
}
