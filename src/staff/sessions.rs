//! Console sessions: a cookie names a row by the SHA-256 of its 256 random bits. A session
//! started by a password alone is only good for the second-factor step (`second_factor` false);
//! passing it replaces the session with a new one, so a token seen before the second factor is
//! worth nothing after it.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    prelude::Expr,
};

use crate::{
    auth::session::{is_live, needs_touch},
    clock, crypto,
    db::Tx,
};

/// The `staff_sessions` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "staff_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        /// Shown to staff, who end a session by it.
        pub id: String,
        pub user_id: String,
        pub second_factor: bool,
        /// The browser, as staff recognise it in their list of sessions.
        pub user_agent: Option<String>,
        pub created_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::Model as StaffSession;

/// How long a password-only session may wait for its second factor.
pub const PENDING_LIFETIME: TimeDelta = TimeDelta::minutes(5);

/// Starts a session; returns the cookie's value, the only copy of it.
pub async fn start(
    tx: &Tx,
    user_id: &str,
    second_factor: bool,
    lifetime: TimeDelta,
    user_agent: Option<&str>,
) -> Result<(String, DateTime<Utc>), DbErr> {
    let token = crypto::random_token();
    let now = clock::now();
    let expires_at = now + lifetime;
    entity::Entity::insert(entity::ActiveModel {
        token_hash: Set(crypto::sha256_hex(token.as_bytes())),
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user_id.to_string()),
        second_factor: Set(second_factor),
        user_agent: Set(user_agent.map(|ua| ua.chars().take(255).collect())),
        created_at: Set(now),
        last_seen_at: Set(now),
        expires_at: Set(expires_at),
    })
    .exec_without_returning(tx)
    .await?;
    Ok((token, expires_at))
}

/// A live session (see [`is_live`]), refreshing `last_seen_at` as [`needs_touch`] says.
pub async fn find(
    conn: &impl ConnectionTrait,
    token: &str,
    idle: TimeDelta,
) -> Result<Option<StaffSession>, DbErr> {
    let hash = crypto::sha256_hex(token.as_bytes());
    let now = clock::now();
    let Some(session) = entity::Entity::find_by_id(hash.clone()).one(conn).await? else {
        return Ok(None);
    };
    if !is_live(session.expires_at, session.last_seen_at, idle, now) {
        return Ok(None);
    }
    if needs_touch(session.last_seen_at, now) {
        entity::Entity::update_many()
            .col_expr(entity::Column::LastSeenAt, Expr::value(now))
            .filter(entity::Column::TokenHash.eq(hash))
            .exec(conn)
            .await?;
    }
    Ok(Some(session))
}

/// A person's live sessions, newest first.
pub async fn of_user(
    conn: &impl ConnectionTrait,
    user_id: &str,
) -> Result<Vec<StaffSession>, DbErr> {
    entity::Entity::find()
        .filter(entity::Column::UserId.eq(user_id))
        .filter(entity::Column::ExpiresAt.gt(clock::now()))
        .order_by_desc(entity::Column::CreatedAt)
        .all(conn)
        .await
}

/// Ends the session with this cookie value.
pub async fn end(tx: &Tx, token: &str) -> Result<(), DbErr> {
    entity::Entity::delete_by_id(crypto::sha256_hex(token.as_bytes()))
        .exec(tx)
        .await?;
    Ok(())
}

/// Ends one of a person's sessions by its shown id; `false` when they have none with that id.
pub async fn end_by_id(tx: &Tx, user_id: &str, id: &str) -> Result<bool, DbErr> {
    Ok(entity::Entity::delete_many()
        .filter(entity::Column::UserId.eq(user_id))
        .filter(entity::Column::Id.eq(id))
        .exec(tx)
        .await?
        .rows_affected
        > 0)
}

/// Ends every session of a person.
pub async fn end_all(tx: &Tx, user_id: &str) -> Result<u64, DbErr> {
    Ok(entity::Entity::delete_many()
        .filter(entity::Column::UserId.eq(user_id))
        .exec(tx)
        .await?
        .rows_affected)
}

/// Deletes (or, dry, counts) sessions past their absolute expiry at `as_of`. Part of the purge
/// of Consentry's own data.
pub async fn purge_expired(tx: &Tx, as_of: DateTime<Utc>, dry_run: bool) -> Result<u64, DbErr> {
    let expired = sea_orm::Condition::all().add(entity::Column::ExpiresAt.lte(as_of));
    crate::db::delete_or_count::<entity::Entity>(tx, expired, dry_run).await
}
