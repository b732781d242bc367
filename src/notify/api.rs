//! `/v1/admin/outbox`: what is queued, delivered or dead, and a way to retry dead letters. The
//! listing shows no recipients and no message bodies: they may hold personal data.

use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::outbox::{self, Filter, Kind, OutboxMessage, Status};
use crate::{
    AppState,
    api_tags::ApiTags,
    auth::{ApiKey, Role},
    error::ApiError,
};

pub struct OutboxApi {
    state: AppState,
}

impl OutboxApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// A queued message, without recipient or content.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct OutboxEntry {
    id: String,
    kind: Kind,
    /// The email template or webhook event type.
    topic: String,
    status: Status,
    attempts: i32,
    /// When the next attempt is due (for pending messages).
    next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    #[oai(skip_serializing_if_is_none)]
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    delivered_at: Option<DateTime<Utc>>,
}

impl From<OutboxMessage> for OutboxEntry {
    fn from(m: OutboxMessage) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            topic: m.topic,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            created_at: m.created_at,
            delivered_at: m.delivered_at,
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct OutboxPage {
    items: Vec<OutboxEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

/// Message counts for monitoring.
#[derive(Object, Default)]
struct OutboxStats {
    pending: i64,
    delivered: i64,
    dead: i64,
    /// Counts per kind and status.
    by_kind: Vec<OutboxCount>,
}

#[derive(Object)]
struct OutboxCount {
    kind: Kind,
    status: Status,
    count: i64,
}

#[derive(ApiResponse)]
enum RetryResponse {
    /// The message is queued for an immediate attempt with a fresh set of attempts (a
    /// delivered message is left as it is).
    #[oai(status = 200)]
    Queued(Json<OutboxEntry>),
}

fn default_limit() -> u64 {
    50
}

#[OpenApi(prefix_path = "/v1/admin/outbox", tag = "ApiTags::Admin")]
impl OutboxApi {
    /// List outbox messages
    ///
    /// Newest first; `status=dead` lists the dead letters.
    #[oai(path = "/", method = "get")]
    async fn list(
        &self,
        auth: ApiKey,
        status: Query<Option<Status>>,
        kind: Query<Option<Kind>>,
        /// Messages older than this id (the previous page's `next_cursor`).
        cursor: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u64>,
    ) -> Result<Json<OutboxPage>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let filter = Filter {
            status: status.0,
            kind: kind.0,
            before_id: cursor.0,
        };
        let (rows, next_cursor) = outbox::list(self.state.db.conn(), &filter, limit.0).await?;
        Ok(Json(OutboxPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        }))
    }

    /// Outbox counts
    #[oai(path = "/stats", method = "get")]
    async fn stats(&self, auth: ApiKey) -> Result<Json<OutboxStats>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let mut stats = OutboxStats::default();
        for (status, kind, count) in outbox::counts(self.state.db.conn()).await? {
            match status {
                Status::Pending => stats.pending += count,
                Status::Delivered => stats.delivered += count,
                Status::Dead => stats.dead += count,
            }
            stats.by_kind.push(OutboxCount {
                kind,
                status,
                count,
            });
        }
        Ok(Json(stats))
    }

    /// Retry a message
    ///
    /// For dead letters after the cause was fixed (admin).
    #[oai(path = "/:id/retry", method = "post")]
    async fn retry(&self, auth: ApiKey, id: Path<String>) -> Result<RetryResponse, ApiError> {
        auth.0.require(Role::Admin)?;
        let message =
            crate::actions::operations::retry_message(&self.state.db, &id.0, &auth.0.actor())
                .await?
                .ok_or_else(|| ApiError::not_found("no outbox message with that id"))?;
        Ok(RetryResponse::Queued(Json(message.into())))
    }
}
