//! The outbox table: what must be said, written in the caller's transaction; then claimed,
//! delivered and marked by the dispatcher.
//!
//! Rows are claimed by priority, then by when they fall due: a verification code, a guardian's
//! link or a webhook the main app waits for goes before a notice to thousands queued earlier.
//! A row is claimed by pushing its `next_attempt_at` past a lease and counting the attempt, in a
//! short transaction of its own (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so that replicas take
//! different rows). Delivery happens after that transaction commits. If the claimer dies before
//! marking the row, the lease runs out and another claim sends it again under the same id:
//! at-least-once, never lost, and receivers can drop the repeat by id.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TryInsertResult,
    prelude::*,
    sea_query::{ExprTrait, LockBehavior, LockType},
};
use serde_json::Value;

use super::email::EmailContent;
use crate::{
    audit::{self, Actor},
    clock,
    config::OutboxConfig,
    db::{ROWS_PER_STATEMENT, Tx},
};

/// The `outbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub kind: super::Kind,
        /// The email template or the webhook event type.
        pub topic: String,
        /// Unique: the same key queued twice is one message.
        pub dedupe_key: String,
        /// The email address (personal data: never listed, cleared on delivery).
        pub recipient: Option<String>,
        pub locale: Option<String>,
        /// Email: the template data. Webhook: the exact body to sign and send. Emptied (`{}`)
        /// on delivery: it holds codes, links and personal data that a delivered message (and
        /// every backup after it) has no use for; the topic, language, dedupe key (which names
        /// the request) and times remain.
        pub payload: String,
        pub status: super::Status,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        /// Why the last attempt failed; never personal data.
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub delivered_at: Option<DateTimeUtc>,
        /// Lower goes first; see [`super::Priority`].
        pub priority: i16,
        /// The registered system a webhook goes to; `None` for the main app.
        pub system_key: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::Model as OutboxMessage;

/// What a message is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    poem_openapi::Enum,
    serde::Serialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[sea_orm(string_value = "email")]
    Email,
    #[sea_orm(string_value = "webhook")]
    Webhook,
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[oai(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for its first or next attempt (or claimed and in flight).
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "delivered")]
    Delivered,
    /// Out of attempts, or refused for good; retried only by an admin.
    #[sea_orm(string_value = "dead")]
    Dead,
}

/// How soon a message should go, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Someone is waiting for it now: a code, a guardian's link, a webhook.
    Urgent = 0,
    /// About one person's request.
    Normal = 1,
    /// Sent to many at once: policy changes, retention notices, digests.
    Bulk = 2,
}

impl Priority {
    /// The priority of an email by its content.
    pub fn of(content: &EmailContent) -> Self {
        match content {
            EmailContent::VerificationCode { .. } | EmailContent::GuardianConsent { .. } => {
                Self::Urgent
            }
            EmailContent::PolicyChanged { .. }
            | EmailContent::RetentionNotice { .. }
            | EmailContent::RetentionPurged { .. }
            | EmailContent::AdminDigest { .. } => Self::Bulk,
            _ => Self::Normal,
        }
    }
}

/// Queues an email. Returns false when a message with the same dedupe key already exists.
pub async fn enqueue_email(
    tx: &mut Tx,
    dedupe_key: &str,
    to: &str,
    locale: &str,
    content: &EmailContent,
) -> Result<bool, DbErr> {
    let payload =
        serde_json::to_value(content).map_err(|e| DbErr::Custom(format!("email content: {e}")))?;
    let row = row(
        Kind::Email,
        content.template(),
        dedupe_key,
        Some(to),
        Some(locale),
        payload["data"].to_string(),
        Priority::of(content),
    );
    insert(tx, row).await
}

/// Queues a webhook to the main app with the body `{type, occurred_at, data}`. Returns false
/// when a message with the same dedupe key already exists.
pub async fn enqueue_webhook(
    tx: &mut Tx,
    dedupe_key: &str,
    event_type: &str,
    data: Value,
) -> Result<bool, DbErr> {
    enqueue_webhook_to(tx, None, dedupe_key, event_type, data).await
}

/// [`enqueue_webhook`] for many webhooks of one type to the main app, with one statement per
/// few hundred: `(dedupe_key, data)` each.
pub async fn enqueue_webhooks(
    tx: &mut Tx,
    event_type: &str,
    webhooks: &[(String, Value)],
) -> Result<(), DbErr> {
    if webhooks.is_empty() {
        return Ok(());
    }
    let occurred_at = clock::canonical(clock::now());
    for chunk in webhooks.chunks(ROWS_PER_STATEMENT) {
        let rows = chunk
            .iter()
            .map(|(dedupe_key, data)| webhook_row(event_type, dedupe_key, data, &occurred_at));
        entity::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([entity::Column::DedupeKey])
            .exec_without_returning(&*tx)
            .await?;
    }
    tx.wake_outbox();
    Ok(())
}

/// Queues a webhook like [`enqueue_webhook`], to the registered system `system_key` (its
/// endpoint and secret, read when it is delivered), or to the main app for `None`.
pub async fn enqueue_webhook_to(
    tx: &mut Tx,
    system_key: Option<&str>,
    dedupe_key: &str,
    event_type: &str,
    data: Value,
) -> Result<bool, DbErr> {
    let occurred_at = clock::canonical(clock::now());
    let mut row = webhook_row(event_type, dedupe_key, &data, &occurred_at);
    row.system_key = Set(system_key.map(str::to_string));
    insert(tx, row).await
}

/// A webhook's outbox row: the Standard Webhooks body of `type`, `occurred_at` and `data`.
fn webhook_row(
    event_type: &str,
    dedupe_key: &str,
    data: &Value,
    occurred_at: &str,
) -> entity::ActiveModel {
    let body = serde_json::json!({
        "type": event_type,
        "occurred_at": occurred_at,
        "data": data,
    });
    row(
        Kind::Webhook,
        event_type,
        dedupe_key,
        None,
        None,
        body.to_string(),
        Priority::Urgent,
    )
}

async fn insert(tx: &mut Tx, row: entity::ActiveModel) -> Result<bool, DbErr> {
    let result = entity::Entity::insert(row)
        .on_conflict_do_nothing_on([entity::Column::DedupeKey])
        .exec_without_returning(&*tx)
        .await?;
    tx.wake_outbox();
    Ok(matches!(result, TryInsertResult::Inserted(n) if n > 0))
}

/// An email to queue with [`enqueue_emails`].
#[derive(Debug, Clone)]
pub struct QueuedEmail {
    pub dedupe_key: String,
    pub to: String,
    pub locale: String,
    pub content: EmailContent,
}

/// Queues many emails with few statements, for jobs that write thousands in one transaction.
/// Emails whose dedupe key exists already are skipped.
pub async fn enqueue_emails(tx: &mut Tx, emails: Vec<QueuedEmail>) -> Result<(), DbErr> {
    /// Rows per statement: 13 parameters each stays under SQLite's limit of 32,766.
    const ROWS: usize = 1000;
    let mut rows = Vec::with_capacity(emails.len().min(ROWS));
    let mut emails = emails.into_iter().peekable();
    while let Some(email) = emails.next() {
        let payload = serde_json::to_value(&email.content)
            .map_err(|e| DbErr::Custom(format!("email content: {e}")))?;
        rows.push(row(
            Kind::Email,
            email.content.template(),
            &email.dedupe_key,
            Some(&email.to),
            Some(&email.locale),
            payload["data"].to_string(),
            Priority::of(&email.content),
        ));
        if rows.len() == ROWS || emails.peek().is_none() {
            entity::Entity::insert_many(std::mem::take(&mut rows))
                .on_conflict_do_nothing_on([entity::Column::DedupeKey])
                .exec_without_returning(&*tx)
                .await?;
        }
    }
    tx.wake_outbox();
    Ok(())
}

fn row(
    kind: Kind,
    topic: &str,
    dedupe_key: &str,
    recipient: Option<&str>,
    locale: Option<&str>,
    payload: String,
    priority: Priority,
) -> entity::ActiveModel {
    let now = clock::now();
    entity::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        kind: Set(kind),
        topic: Set(topic.to_string()),
        dedupe_key: Set(dedupe_key.to_string()),
        recipient: Set(recipient.map(str::to_string)),
        locale: Set(locale.map(str::to_string)),
        payload: Set(payload),
        status: Set(Status::Pending),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
        priority: Set(priority as i16),
        system_key: Set(None),
    }
}

/// Claims up to `limit` due messages for delivery, most urgent first; with `above`, only
/// messages more urgent than that priority. The caller commits the claim before it delivers
/// anything.
pub async fn claim(
    tx: &mut Tx,
    now: DateTime<Utc>,
    limit: u64,
    lease: TimeDelta,
    above: Option<i16>,
) -> Result<Vec<OutboxMessage>, DbErr> {
    use entity::Column;
    let mut query = entity::Entity::find()
        .filter(Column::Status.eq(Status::Pending))
        .filter(Column::NextAttemptAt.lte(now));
    if let Some(priority) = above {
        query = query.filter(Column::Priority.lt(priority));
    }
    let mut rows = query
        .order_by_asc(Column::Priority)
        .order_by_asc(Column::NextAttemptAt)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&*tx)
        .await?;
    if rows.is_empty() {
        return Ok(rows);
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let lease_until = now + lease;
    entity::Entity::update_many()
        .col_expr(Column::NextAttemptAt, Expr::value(lease_until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(Column::Id.is_in(ids))
        .exec(&*tx)
        .await?;
    for row in &mut rows {
        row.attempts += 1;
        row.next_attempt_at = lease_until;
    }
    Ok(rows)
}

/// Gives back claimed messages that were never attempted (the dispatcher is stopping), so that
/// they fall due at once rather than when their lease runs out.
pub async fn release(tx: &mut Tx, ids: Vec<String>, now: DateTime<Utc>) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    use entity::Column;
    entity::Entity::update_many()
        .col_expr(Column::NextAttemptAt, Expr::value(now))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).sub(1))
        .filter(Column::Id.is_in(ids))
        .filter(Column::Status.eq(Status::Pending))
        .exec(&*tx)
        .await?;
    Ok(())
}

/// What a delivered message keeps of its body.
pub const DELIVERED_PAYLOAD: &str = "{}";

/// Marks messages delivered, forgetting their addresses and bodies.
pub async fn mark_delivered(
    tx: &mut Tx,
    ids: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    use entity::Column;
    entity::Entity::update_many()
        .col_expr(Column::Status, Expr::value(Status::Delivered))
        .col_expr(Column::DeliveredAt, Expr::value(now))
        .col_expr(Column::LastError, Expr::value(Option::<String>::None))
        // The address and the body were needed to deliver, and are not kept a moment longer.
        .col_expr(Column::Recipient, Expr::value(Option::<String>::None))
        .col_expr(Column::Payload, Expr::value(DELIVERED_PAYLOAD))
        .filter(Column::Id.is_in(ids))
        .exec(&*tx)
        .await?;
    Ok(())
}

/// Records a failed attempt: the message waits for its next attempt (exponential backoff with
/// jitter), or is dead when it is out of attempts or the failure is permanent.
pub async fn mark_failed(
    tx: &mut Tx,
    message: &OutboxMessage,
    error: &str,
    permanent: bool,
    now: DateTime<Utc>,
    config: &OutboxConfig,
) -> Result<Status, DbErr> {
    let dead = permanent || message.attempts >= config.max_attempts;
    let status = if dead { Status::Dead } else { Status::Pending };
    let next = now + backoff(message.attempts, config.backoff_base_seconds);
    let mut error = error.to_string();
    error.truncate(500);
    entity::ActiveModel {
        id: Set(message.id.clone()),
        status: Set(status),
        next_attempt_at: Set(next),
        last_error: Set(Some(error)),
        ..Default::default()
    }
    .update(&*tx)
    .await?;
    Ok(status)
}

/// Deletes (or, dry, counts) messages delivered at or before `cutoff`, and with them the
/// addresses they were sent to. Part of the purge of Consentry's own data.
pub async fn purge_delivered(
    tx: &mut Tx,
    cutoff: DateTime<Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    let delivered = sea_orm::Condition::all()
        .add(entity::Column::Status.eq(Status::Delivered))
        .add(entity::Column::DeliveredAt.lte(cutoff));
    if dry_run {
        return entity::Entity::find().filter(delivered).count(&*tx).await;
    }
    Ok(entity::Entity::delete_many()
        .filter(delivered)
        .exec(&*tx)
        .await?
        .rows_affected)
}

/// What happens to messages still on their way to an address being forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    /// They go out (they answer the person's own requests), and forget the address once
    /// delivered, as every message does.
    Deliver,
    /// They are deleted (a guardian's link for an erased child leads nowhere).
    Drop,
}

/// Forgets an address when its person is erased: dead letters to it are deleted, delivered
/// messages keep no recipient, and pending ones are delivered or dropped as `undelivered` says.
/// Returns how many are still on their way.
pub async fn forget_recipient(
    tx: &mut Tx,
    address: &str,
    undelivered: Undelivered,
) -> Result<u64, DbErr> {
    let dropped = match undelivered {
        Undelivered::Deliver => Status::Dead,
        Undelivered::Drop => Status::Pending,
    };
    entity::Entity::delete_many()
        .filter(entity::Column::Recipient.eq(address))
        .filter(entity::Column::Status.is_in([Status::Dead, dropped]))
        .exec(&*tx)
        .await?;
    entity::Entity::update_many()
        .col_expr(
            entity::Column::Recipient,
            Expr::value(Option::<String>::None),
        )
        .filter(entity::Column::Recipient.eq(address))
        .filter(entity::Column::Status.eq(Status::Delivered))
        .exec(&*tx)
        .await?;
    entity::Entity::find()
        .filter(entity::Column::Recipient.eq(address))
        .filter(entity::Column::Status.eq(Status::Pending))
        .count(&*tx)
        .await
}

/// Wait before attempt `attempts + 1`: `base · 2^(attempts-1)`, ±20 % jitter so that messages
/// that failed together do not retry together.
pub fn backoff(attempts: i32, base_seconds: u64) -> TimeDelta {
    let exponent = attempts.clamp(1, 20) as u32 - 1;
    let seconds = base_seconds.saturating_mul(1u64 << exponent) as f64;
    let [r] = crate::crypto::random_bytes::<1>();
    let jitter = 0.8 + 0.4 * (r as f64 / 255.0);
    TimeDelta::milliseconds((seconds * jitter * 1000.0) as i64)
}

/// Filters for [`list`].
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<Status>,
    pub kind: Option<Kind>,
    /// Rows older than this id (the previous page's cursor).
    pub before_id: Option<String>,
}

/// A page of messages, newest first, and the cursor of the next page.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &Filter,
    limit: u64,
) -> Result<(Vec<OutboxMessage>, Option<String>), DbErr> {
    use entity::Column;
    let mut query = entity::Entity::find().order_by_desc(Column::Id);
    if let Some(status) = filter.status {
        query = query.filter(Column::Status.eq(status));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(Column::Kind.eq(kind));
    }
    if let Some(before) = &filter.before_id {
        query = query.filter(Column::Id.lt(before.as_str()));
    }
    let mut rows = query.limit(limit + 1).all(conn).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok((rows, next))
}

/// The message queued under `dedupe_key`, if there is one.
pub async fn find_by_key(
    conn: &impl ConnectionTrait,
    dedupe_key: &str,
) -> Result<Option<OutboxMessage>, DbErr> {
    entity::Entity::find()
        .filter(entity::Column::DedupeKey.eq(dedupe_key))
        .one(conn)
        .await
}

/// Where the messages queued under `dedupe_keys` stand, by key, in one query; keys without a
/// message are left out.
pub async fn statuses_of(
    conn: &impl ConnectionTrait,
    dedupe_keys: &[String],
) -> Result<std::collections::HashMap<String, Status>, DbErr> {
    if dedupe_keys.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, Status)> = entity::Entity::find()
        .select_only()
        .column(entity::Column::DedupeKey)
        .column(entity::Column::Status)
        .filter(entity::Column::DedupeKey.is_in(dedupe_keys.iter().map(String::as_str)))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Where the message queued under `dedupe_key` stands, if there is one.
pub async fn status_of(
    conn: &impl ConnectionTrait,
    dedupe_key: &str,
) -> Result<Option<Status>, DbErr> {
    entity::Entity::find()
        .select_only()
        .column(entity::Column::Status)
        .filter(entity::Column::DedupeKey.eq(dedupe_key))
        .into_tuple()
        .one(conn)
        .await
}

/// Number of messages per status and kind, for monitoring: [`counts_by_priority`] summed over
/// the priorities.
pub async fn counts(conn: &impl ConnectionTrait) -> Result<Vec<(Status, Kind, i64)>, DbErr> {
    let mut counts: Vec<(Status, Kind, i64)> = Vec::new();
    for (status, kind, _, n) in counts_by_priority(conn).await? {
        match counts
            .iter_mut()
            .find(|(s, k, _)| *s == status && *k == kind)
        {
            Some((_, _, total)) => *total += n,
            None => counts.push((status, kind, n)),
        }
    }
    Ok(counts)
}

/// Messages by status, kind and priority (see [`Priority`]), for monitoring.
pub async fn counts_by_priority(
    conn: &impl ConnectionTrait,
) -> Result<Vec<(Status, Kind, i16, i64)>, DbErr> {
    use entity::Column;
    entity::Entity::find()
        .select_only()
        .column(Column::Status)
        .column(Column::Kind)
        .column(Column::Priority)
        .column_as(Column::Id.count(), "n")
        .group_by(Column::Status)
        .group_by(Column::Kind)
        .group_by(Column::Priority)
        .into_tuple()
        .all(conn)
        .await
}

/// When the oldest message still waiting to go out was queued.
pub async fn oldest_pending(conn: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    use entity::Column;
    Ok(entity::Entity::find()
        .select_only()
        .column_as(Column::CreatedAt.min(), "oldest")
        .filter(Column::Status.eq(Status::Pending))
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(conn)
        .await?
        .flatten())
}

/// Puts a message back in the queue for an immediate attempt, with a fresh set of attempts.
/// Returns `None` for an unknown id.
pub async fn retry(tx: &mut Tx, id: &str, actor: &Actor) -> Result<Option<OutboxMessage>, DbErr> {
    let Some(message) = entity::Entity::find_by_id(id).one(&*tx).await? else {
        return Ok(None);
    };
    if message.status == Status::Delivered {
        return Ok(Some(message));
    }
    let mut active: entity::ActiveModel = message.into();
    active.status = Set(Status::Pending);
    active.attempts = Set(0);
    active.next_attempt_at = Set(clock::now());
    let message = active.update(&*tx).await?;
    tx.wake_outbox();
    audit::record(
        &*tx,
        actor,
        "outbox.retried",
        audit::Target::new("outbox", id),
        serde_json::json!({ "kind": message.kind, "topic": message.topic }),
    )
    .await?;
    Ok(Some(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        for attempts in 1..=9 {
            let wait = backoff(attempts, 180).num_milliseconds() as f64;
            let nominal = 180_000.0 * 2f64.powi(attempts - 1);
            assert!(
                wait >= nominal * 0.8 - 1.0 && wait <= nominal * 1.2 + 1.0,
                "{attempts}: {wait}"
            );
        }
    }

    #[test]
    fn ten_attempts_spread_over_about_a_day() {
        let nominal: u64 = (1..10).map(|a| 180u64 << (a - 1)).sum();
        let hours = nominal as f64 / 3600.0;
        assert!((20.0..30.0).contains(&hours), "{hours} h");
    }
}
