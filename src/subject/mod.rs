//! Subjects: the people the main app knows, by its own user id (`external_id`).
//!
//! A subject row is created the first time anything is recorded about a person (a consent, an
//! event from the main app), so that the main app may send events in any order.

pub mod model;

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, prelude::*,
};

use crate::clock;
pub use model::{AgeStatus, Model as Subject};

/// The genesis hash of every subject's consent chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The subject with this external id, if known.
pub async fn find(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Option<Subject>, DbErr> {
    model::Entity::find()
        .filter(model::Column::ExternalId.eq(external_id))
        .one(conn)
        .await
}

/// The subject with this external id, created (age unknown, no contact details) when new.
pub async fn find_or_create(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Subject, DbErr> {
    if let Some(subject) = find(conn, external_id).await? {
        return Ok(subject);
    }
    create(conn, external_id).await?;
    find(conn, external_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("subject vanished after insert".into()))
}

/// Like [`find_or_create`], with the row locked until the transaction ends (PostgreSQL; SQLite
/// has a single writer), so that appends to the subject's consent chain queue up instead of
/// forking it.
pub async fn find_or_create_locked(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Subject, DbErr> {
    let locked = || {
        model::Entity::find()
            .filter(model::Column::ExternalId.eq(external_id))
            .lock_exclusive()
            .one(conn)
    };
    if let Some(subject) = locked().await? {
        return Ok(subject);
    }
    create(conn, external_id).await?;
    locked()
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("subject vanished after insert".into()))
}

/// Inserts a subject unless one with this external id exists.
async fn create(conn: &impl ConnectionTrait, external_id: &str) -> Result<(), DbErr> {
    let now = clock::now();
    model::Entity::insert(model::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        external_id: Set(external_id.to_string()),
        email: Set(None),
        locale: Set(None),
        jurisdiction: Set(None),
        birth_date: Set(None),
        age_status: Set(AgeStatus::Unknown),
        restricted: Set(false),
        consent_seq: Set(0),
        consent_hash: Set(GENESIS_HASH.to_string()),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
    })
    .on_conflict_do_nothing_on([model::Column::ExternalId])
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
