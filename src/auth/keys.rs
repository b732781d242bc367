//! API keys: random, shown once, stored only as a SHA-256 hash, revocable.
//!
//! A key reads `csk_<id>_<secret>`: the id (16 hex digits) finds the row, the secret (32 random
//! bytes, base64url) is hashed and compared in constant time. A 256-bit random secret needs no
//! slow password hash; SHA-256 makes a leaked table useless without the keys.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryOrder, prelude::*};

use super::{Caller, Role};
use crate::{
    audit::{self, Actor},
    clock,
    config::Secret,
    crypto,
    db::{Db, Tx},
    error::ApiError,
};

/// The `api_keys` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    use crate::auth::Role;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub role: Role,
        pub secret_hash: String,
        pub created_at: DateTimeUtc,
        pub last_used_at: Option<DateTimeUtc>,
        pub revoked_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::Model as ApiKeyRecord;

const PREFIX: &str = "csk";

/// How stale `last_used_at` may get before a request refreshes it; keeps authentication from
/// writing on every request.
const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::seconds(60);

/// A key just created; `secret` is the only copy of the full key.
#[derive(Debug)]
pub struct IssuedKey {
    pub record: ApiKeyRecord,
    pub secret: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the key name must be 1 to 100 printable characters")]
    InvalidName,
    #[error("no API key with that id")]
    NotFound,
    #[error("missing, unknown or revoked API key")]
    Unauthenticated,
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl From<KeyError> for ApiError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::InvalidName => {
                ApiError::validation(vec![crate::error::FieldError::new("name", err.to_string())])
            }
            KeyError::NotFound => ApiError::not_found(err.to_string()),
            KeyError::Unauthenticated => ApiError::unauthorized(err.to_string()),
            KeyError::Db(db) => db.into(),
        }
    }
}

impl From<KeyError> for poem::Error {
    fn from(err: KeyError) -> Self {
        ApiError::from(err).into()
    }
}

/// Creates a key and audits it in one transaction.
pub async fn create(
    tx: &mut Tx,
    role: Role,
    name: &str,
    actor: &Actor,
) -> Result<IssuedKey, KeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(KeyError::InvalidName);
    }
    let id = crypto::hex(&crypto::random_bytes::<8>());
    let secret = crypto::random_token();
    let record = ApiKeyRecord {
        id: id.clone(),
        name: name.to_string(),
        role,
        secret_hash: hash_secret(&secret),
        created_at: clock::now(),
        last_used_at: None,
        revoked_at: None,
    };
    entity::Entity::insert(entity::ActiveModel::from(record.clone()))
        .exec(&*tx)
        .await?;
    audit::record(
        &*tx,
        actor,
        "api_key.created",
        audit::Target::new("api_key", &id),
        serde_json::json!({ "name": record.name, "role": role.as_str() }),
    )
    .await?;
    Ok(IssuedKey {
        record,
        secret: Secret::new(format!("{PREFIX}_{id}_{secret}")),
    })
}

/// Every key, newest first, without secrets.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<ApiKeyRecord>, KeyError> {
    Ok(entity::Entity::find()
        .order_by_desc(entity::Column::CreatedAt)
        .all(conn)
        .await?)
}

/// Revokes a key; revoking one that is already revoked changes nothing.
pub async fn revoke(tx: &mut Tx, id: &str, actor: &Actor) -> Result<ApiKeyRecord, KeyError> {
    let record = entity::Entity::find_by_id(id)
        .one(&*tx)
        .await?
        .ok_or(KeyError::NotFound)?;
    if record.revoked_at.is_some() {
        return Ok(record);
    }
    let mut active: entity::ActiveModel = record.into();
    active.revoked_at = Set(Some(clock::now()));
    let record = active.update(&*tx).await?;
    audit::record(
        &*tx,
        actor,
        "api_key.revoked",
        audit::Target::new("api_key", id),
        serde_json::json!({ "name": record.name }),
    )
    .await?;
    Ok(record)
}

/// Key rows read recently, so that the main app's hot path does not read `api_keys` on every
/// request. An entry is trusted for `ttl`: a key revoked on this replica is forgotten at once;
/// on other replicas sharing the database the revocation takes effect within `ttl`.
pub struct KeyCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, (ApiKeyRecord, Instant)>>,
}

impl KeyCache {
    /// A cache trusting rows for `ttl`; zero disables it.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, id: &str) -> Option<ApiKeyRecord> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(record, _)| record.clone())
    }

    fn put(&self, record: ApiKeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        entries.insert(record.id.clone(), (record, Instant::now()));
    }

    /// Drops a key, e.g. after revoking it.
    pub fn forget(&self, id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.remove(id);
    }
}

/// Finds the caller behind a presented key. Unknown, malformed and revoked keys are
/// indistinguishable to the caller.
pub async fn authenticate(db: &Db, cache: &KeyCache, presented: &str) -> Result<Caller, KeyError> {
    let (id, secret) = split_key(presented).ok_or(KeyError::Unauthenticated)?;
    let presented_hash = hash_secret(secret);
    let mut record = match cache.get(id) {
        Some(record) => record,
        None => {
            let record = entity::Entity::find_by_id(id)
                .one(db.conn())
                .await?
                .ok_or(KeyError::Unauthenticated)?;
            cache.put(record.clone());
            record
        }
    };
    let matches =
        crypto::constant_time_eq(presented_hash.as_bytes(), record.secret_hash.as_bytes());
    if !matches || record.revoked_at.is_some() {
        return Err(KeyError::Unauthenticated);
    }
    let now = clock::now();
    if needs_touch(record.last_used_at, now) {
        touch(db.clone(), record.id.clone(), now);
        record.last_used_at = Some(now);
        cache.put(record.clone());
    }
    Ok(Caller {
        key_id: record.id,
        role: record.role,
    })
}

fn needs_touch(last_used: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_used.is_none_or(|t| now - t >= LAST_USED_RESOLUTION)
}

/// Records the last use in the background: the request does not wait for a write.
fn touch(db: Db, id: String, now: DateTime<Utc>) {
    let tasks = db.tasks().clone();
    tasks.spawn(async move {
        let result = entity::Entity::update_many()
            .col_expr(entity::Column::LastUsedAt, Expr::value(now))
            .filter(entity::Column::Id.eq(id.as_str()))
            .exec(db.conn())
            .await;
        if let Err(e) = result {
            tracing::warn!(key_id = %id, error = %e, "could not record the key's last use");
        }
    });
}

fn split_key(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some((id, secret))
}

fn hash_secret(secret: &str) -> String {
    crypto::sha256_hex(secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_id_and_secret() {
        assert_eq!(
            split_key("csk_0123456789abcdef_se_cr-et"),
            Some(("0123456789abcdef", "se_cr-et"))
        );
        assert_eq!(split_key("csk_short_secret"), None);
        assert_eq!(split_key("xyz_0123456789abcdef_secret"), None);
        assert_eq!(split_key("csk_0123456789abcdef_"), None);
    }

    #[test]
    fn last_use_is_written_at_most_once_a_minute() {
        let now = clock::now();
        assert!(needs_touch(None, now));
        assert!(!needs_touch(Some(now - TimeDelta::seconds(59)), now));
        assert!(needs_touch(Some(now - TimeDelta::seconds(60)), now));
    }
}
