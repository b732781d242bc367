//! `GET /v1/admin/audit` and `GET /v1/admin/audit/verify`, for viewers and above.

use chrono::{DateTime, Utc};
use poem_openapi::{Object, OpenApi, param::Query, payload::Json};

use super::{Filter, model::audit_log};
use crate::{
    AppState,
    api_tags::ApiTags,
    auth::{ApiKey, Role},
    error::ApiError,
};

pub struct AuditApi {
    state: AppState,
}

impl AuditApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// One audited action.
#[derive(Object)]
struct AuditEntry {
    /// Position in the whole log: entries are listed newest first by it.
    seq: i64,
    /// The chain the entry is linked into: `<target_type>:<target_id>`, or `audit` for entries
    /// written when the log was a single chain.
    chain: String,
    /// Position in its chain, from 1.
    chain_seq: i64,
    occurred_at: DateTime<Utc>,
    /// `api_key:<id>`, `cli`, ...
    actor: String,
    /// What was done, e.g. `api_key.created`.
    action: String,
    target_type: String,
    target_id: String,
    /// Details of the change (never secrets or personal data).
    details: serde_json::Value,
    prev_hash: String,
    hash: String,
}

impl From<audit_log::Model> for AuditEntry {
    fn from(m: audit_log::Model) -> Self {
        Self {
            seq: m.seq,
            chain: m.chain,
            chain_seq: m.chain_seq,
            occurred_at: m.occurred_at,
            actor: m.actor,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            details: serde_json::from_str(&m.details).unwrap_or(serde_json::Value::Null),
            prev_hash: m.prev_hash,
            hash: m.hash,
        }
    }
}

/// A page of entries, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AuditPage {
    items: Vec<AuditEntry>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<i64>,
}

/// The result of recomputing every chain.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AuditVerification {
    /// True when every entry's hash and link hold and every chain ends at its head.
    ok: bool,
    /// Entries whose hash and link hold.
    checked: u64,
    /// Sequence number of the earliest entry that does not hold.
    #[oai(skip_serializing_if_is_none)]
    first_broken_seq: Option<i64>,
    /// Why that entry does not hold.
    #[oai(skip_serializing_if_is_none)]
    problem: Option<String>,
}

fn default_limit() -> u64 {
    50
}

#[OpenApi(prefix_path = "/v1/admin/audit", tag = "ApiTags::Admin")]
impl AuditApi {
    /// List audit entries
    ///
    /// Newest first, with cursor pagination (`cursor` = the previous page's `next_cursor`).
    #[oai(path = "/", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: ApiKey,
        /// Only entries by this actor, e.g. `api_key:0123456789abcdef`.
        actor: Query<Option<String>>,
        /// Only entries with this action, e.g. `api_key.revoked`.
        action: Query<Option<String>>,
        target_type: Query<Option<String>>,
        target_id: Query<Option<String>>,
        /// Entries at or after this instant.
        since: Query<Option<DateTime<Utc>>>,
        /// Entries before this instant.
        until: Query<Option<DateTime<Utc>>>,
        /// Entries older than this sequence number.
        cursor: Query<Option<i64>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u64>,
    ) -> Result<Json<AuditPage>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let filter = Filter {
            actor: actor.0,
            action: action.0,
            target_type: target_type.0,
            target_id: target_id.0,
            since: since.0,
            until: until.0,
            before_seq: cursor.0,
        };
        let (rows, next_cursor) = super::list(self.state.db.conn(), &filter, limit.0).await?;
        Ok(Json(AuditPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        }))
    }

    /// Verify the audit chains
    ///
    /// Recomputes every entry's hash and link in each target's chain, and checks that each
    /// chain ends at its head; reports the earliest entry that does not hold.
    #[oai(path = "/verify", method = "get")]
    async fn verify(&self, auth: ApiKey) -> Result<Json<AuditVerification>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let v = super::verify(self.state.db.conn()).await?;
        Ok(Json(AuditVerification {
            ok: v.broken.is_none(),
            checked: v.checked,
            first_broken_seq: v.broken.map(|(seq, _)| seq),
            problem: v.broken.map(|(_, why)| why.to_string()),
        }))
    }
}
