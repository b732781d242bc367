//! The daily digest for reviewers: overdue requests, requests due soon, systems with jobs past
//! their allowance, and dead letters in the outbox. Each recipient gets one per day: the outbox's dedupe key (the date and the address)
//! makes a second run on the same day, or a run on another replica, queue nothing. The same
//! digest, with a summary of the run, follows every retention purge.

use chrono::NaiveDate;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{RUNNING, model};
use crate::{
    clock,
    config::Config,
    db::Tx,
    notify::{
        email::{EmailContent, RequestLine, SystemLine},
        outbox,
    },
};

/// Requests listed per section of the digest.
const MAX_LINES: u64 = 200;

async fn lines(
    conn: &impl ConnectionTrait,
    config: &Config,
    from: Option<NaiveDate>,
    before: NaiveDate,
) -> Result<Vec<RequestLine>, DbErr> {
    let mut query = model::Entity::find()
        .filter(model::Column::Status.is_in(RUNNING))
        .filter(model::Column::DueDate.lt(before));
    if let Some(from) = from {
        query = query.filter(model::Column::DueDate.gte(from));
    }
    let requests = query
        .order_by_asc(model::Column::DueDate)
        .limit(MAX_LINES)
        .all(conn)
        .await?;
    let requesters = super::requesters(conn, config, &requests).await?;
    Ok(requests
        .into_iter()
        .zip(requesters)
        .filter_map(|(r, who)| {
            Some(RequestLine {
                due_date: r.due_date?,
                request_id: r.id,
                request_type: r.kind.to_value(),
                who: who.external_id.or(who.email).unwrap_or_else(|| "?".into()),
            })
        })
        .collect())
}

/// The digest's contents as of `today`.
async fn digest(
    conn: &impl ConnectionTrait,
    config: &Config,
    today: NaiveDate,
    purge_summary: Option<String>,
) -> Result<EmailContent, DbErr> {
    let soon = today + chrono::Days::new(u64::from(config.requests.digest_due_within_days) + 1);
    let dead_letters: i64 = outbox::counts(conn)
        .await?
        .into_iter()
        .filter(|(status, _, _)| *status == outbox::Status::Dead)
        .map(|(_, _, n)| n)
        .sum();
    let systems = crate::system::list(conn).await?;
    let overdue_systems = super::jobs::overdue(conn, clock::now())
        .await?
        .into_iter()
        .map(|(key, n)| SystemLine {
            name: systems
                .iter()
                .find(|s| s.key == key)
                .map_or(key, |s| s.name.clone()),
            jobs: n.max(0) as u64,
        })
        .collect();
    Ok(EmailContent::AdminDigest {
        generated_at: clock::now(),
        overdue_systems,
        overdue: lines(conn, config, None, today).await?,
        due_soon: lines(conn, config, Some(today), soon).await?,
        dead_letters: dead_letters.max(0) as u64,
        purge_summary,
    })
}

/// Queues `content` to each configured address under `key:<address>`; returns how many were
/// new.
async fn send(
    tx: &mut Tx,
    config: &Config,
    key: &str,
    content: &EmailContent,
) -> Result<u64, DbErr> {
    let mut queued = 0;
    for to in &config.requests.digest_to {
        if outbox::enqueue_email(tx, &format!("{key}:{to}"), to, "en", content).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Queues today's digest to each configured address, unless there is nothing to report.
/// Returns how many digests were queued.
pub async fn queue(tx: &mut Tx, config: &Config, today: NaiveDate) -> Result<u64, DbErr> {
    if config.requests.digest_to.is_empty() {
        return Ok(0);
    }
    let content = digest(&*tx, config, today, None).await?;
    if let EmailContent::AdminDigest {
        overdue,
        due_soon,
        dead_letters: 0,
        overdue_systems,
        ..
    } = &content
        && overdue.is_empty()
        && due_soon.is_empty()
        && overdue_systems.is_empty()
    {
        return Ok(0);
    }
    send(tx, config, &format!("digest:{today}"), &content).await
}

/// Queues the digest after a retention purge run, with the run's summary, in the run's
/// transaction.
pub async fn queue_after_purge(
    tx: &mut Tx,
    config: &Config,
    run_id: &str,
    summary: &str,
) -> Result<u64, DbErr> {
    if config.requests.digest_to.is_empty() {
        return Ok(0);
    }
    let today = clock::now().date_naive();
    let content = digest(&*tx, config, today, Some(summary.to_string())).await?;
    send(tx, config, &format!("digest:purge:{run_id}"), &content).await
}
