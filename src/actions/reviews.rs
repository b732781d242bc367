//! A reviewer's decisions on a request, from the API and the console alike: each is one
//! transaction, and what the request room refuses changes nothing.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::DbErr;

use crate::{
    audit::Actor,
    config::Config,
    db::Db,
    error::FieldError,
    request::{self, Outcome, Request, RequestError, review},
};

/// Takes a verified request for review.
pub async fn take(db: &Db, id: &str, actor: &Actor) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    let request = review::take(&mut tx, id, actor).await?;
    tx.commit().await?;
    Ok(request)
}

/// Approves a request. When the change the approval makes is refused (an objection naming a
/// purpose necessary for the service, say), the approval rolls back and a second transaction
/// records why in the request's history, where the reviewer decides what next.
pub async fn approve(
    db: &Db,
    config: &Config,
    id: &str,
    actor: &Actor,
    note: Option<&str>,
) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    match review::approve(&mut tx, config, id, actor, note).await {
        Ok(request) => {
            tx.commit().await?;
            Ok(request)
        }
        Err(RequestError::Consent(refusal)) => {
            drop(tx);
            let mut tx = db.begin().await?;
            review::note_refused_approval(&mut tx, id, actor, &refusal.to_string()).await?;
            tx.commit().await?;
            Err(RequestError::Consent(refusal))
        }
        Err(e) => Err(e),
    }
}

/// Rejects a request with a reason; the person is emailed it with their law's remedies.
pub async fn reject(
    db: &Db,
    id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    let request = review::reject(&mut tx, id, reason, actor).await?;
    tx.commit().await?;
    Ok(request)
}

/// Extends a GDPR deadline once, by one or two months, telling the person why.
pub async fn extend(
    db: &Db,
    config: &Config,
    id: &str,
    months: u32,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    let request = review::extend(&mut tx, config, id, months, reason, actor).await?;
    tx.commit().await?;
    Ok(request)
}

/// Completes a request being fulfilled by hand; a restricted outcome needs its reason.
pub async fn complete(
    db: &Db,
    config: &Config,
    id: &str,
    outcome: Outcome,
    note: Option<String>,
    actor: &Actor,
) -> Result<Request, RequestError> {
    if outcome == Outcome::Restricted && note.is_none() {
        return Err(RequestError::Invalid(vec![FieldError::new(
            "note",
            "say why the request ends restricted",
        )]));
    }
    let mut tx = db.begin().await?;
    let request = review::complete(&mut tx, config, id, outcome, note, actor).await?;
    tx.commit().await?;
    Ok(request)
}

/// Schedules the end of a person's restriction, after telling them (GDPR Art 18(3)).
pub async fn lift_restriction(
    db: &Db,
    config: &Config,
    external_id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<DateTime<Utc>, RequestError> {
    let mut tx = db.begin().await?;
    let lifts_at = review::lift_restriction(&mut tx, config, external_id, reason, actor).await?;
    tx.commit().await?;
    Ok(lifts_at)
}

/// Queues the reviewers' digest of the day's overdue and soon-due requests; how many emails.
pub async fn queue_digest(db: &Db, config: &Config, today: NaiveDate) -> Result<u64, DbErr> {
    let mut tx = db.begin().await?;
    let queued = request::digest::queue(&mut tx, config, today).await?;
    tx.commit().await?;
    Ok(queued)
}
