//! The operator's housekeeping, from the API and the console alike: API keys issued and revoked,
//! dead letters sent again.

use std::sync::Arc;

use sea_orm::DbErr;

use crate::{
    audit::Actor,
    auth::{
        Role,
        keys::{self, ApiKeyRecord, IssuedKey, KeyCache, KeyError},
    },
    db::Db,
    notify::outbox::{self, OutboxMessage},
};

/// Issues an API key; its secret is in the answer and nowhere else.
pub async fn create_key(
    db: &Db,
    role: Role,
    name: &str,
    actor: &Actor,
) -> Result<IssuedKey, KeyError> {
    let mut tx = db.begin().await?;
    let issued = keys::create(&mut tx, role, name, actor).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Revokes an API key; this process forgets it once the revocation has committed (other
/// replicas within `key_cache_seconds`).
pub async fn revoke_key(
    db: &Db,
    cache: &Arc<KeyCache>,
    id: &str,
    actor: &Actor,
) -> Result<ApiKeyRecord, KeyError> {
    let mut tx = db.begin().await?;
    let record = keys::revoke(&mut tx, id, actor).await?;
    let (cache, key_id) = (cache.clone(), record.id.clone());
    tx.after_commit(move || cache.forget(&key_id));
    tx.commit().await?;
    Ok(record)
}

/// Puts a dead or waiting message back in the queue with fresh attempts; `None` for an unknown
/// id.
pub async fn retry_message(
    db: &Db,
    id: &str,
    actor: &Actor,
) -> Result<Option<OutboxMessage>, DbErr> {
    let mut tx = db.begin().await?;
    let message = outbox::retry(&mut tx, id, actor).await?;
    tx.commit().await?;
    Ok(message)
}
