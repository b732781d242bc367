//! The jobs an approved request becomes: one per registered system that must act (see
//! [`crate::system`]), or, with no system registered, the single job to the main app.
//!
//! Each job is a signed `fulfilment.requested` webhook queued in the approval's transaction,
//! keyed by the job's id (the idempotency key of that system and request), with its own
//! status (pending, acknowledged, done, failed, not applicable), due date, evidence and times.
//! A system answers for its own job; a repeated answer changes nothing. The request completes
//! when every required job is done or found not applicable, with the parts of an access or
//! export package assembled from what each system sent. A failed job is retried alone; the
//! others go on.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    prelude::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    Outcome, Request, RequestError, RequestStatus, RequestType, export,
    fulfil::{self, FULFILMENT_REQUESTED},
    intake::Details,
    model::{FulfilmentStatus, fulfilments},
};
use crate::{
    audit::{self, Actor},
    clock,
    config::Config,
    db::Tx,
    notify::{email::SystemOutcome, outbox},
    subject::Subject,
    system::{self, System},
};

/// What a system says it did: records per category, and its own reference for the work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A system's report that its job is done.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// For access and export requests: what the system holds about the person.
    pub data: Option<Value>,
    /// `restricted` when an erasure had to stop short of deletion (a legal hold).
    pub outcome: Option<Outcome>,
    pub note: Option<String>,
    pub evidence: Evidence,
}

/// What a system answers for its job.
#[derive(Debug, Clone)]
pub enum Answer {
    /// It has the job and is working on it.
    Acknowledged {
        reference: Option<String>,
    },
    Done(Report),
    /// It could not carry the job out; a reviewer retries it.
    Failed {
        note: String,
    },
}

/// A job as reviewers see it.
#[derive(Debug, Clone)]
pub struct Job {
    pub row: fulfilments::Model,
    /// The system's name; `None` for the main app's single job.
    pub system_name: Option<String>,
    /// Whether the request waits for this job.
    pub required: bool,
    /// Where the job's latest webhook stands in the outbox.
    pub delivery: Option<outbox::Status>,
}

impl Job {
    /// The job's status, counting a webhook the outbox gave up on as a failure.
    pub fn status(&self) -> FulfilmentStatus {
        match (self.row.status, self.delivery) {
            (FulfilmentStatus::Pending, Some(outbox::Status::Dead)) => FulfilmentStatus::Failed,
            (status, _) => status,
        }
    }

    /// Whether the job's time allowance ran out with the job still open.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        !self.row.status.is_settled() && self.row.due_at.is_some_and(|due| due < now)
    }

    /// What the system reported, if anything.
    pub fn evidence(&self) -> Evidence {
        self.row
            .evidence
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok())
            .unwrap_or_default()
    }
}

/// The outbox key of a job's webhook in its current round: a retry after a delivered
/// attempt is a new message, so that a receiver that drops repeats by `webhook-id` takes it.
fn message_key(job: &fulfilments::Model) -> String {
    match job.round {
        1 => format!("fulfilment:{}", job.id),
        round => format!("fulfilment:{}:{round}", job.id),
    }
}

/// Queues the jobs of an approved access, export, rectification or erasure, in the
/// approval's transaction. Returns how many there are: none when systems are registered and
/// none of them holds anything the request covers (Consentry's own part is then all).
pub async fn fan_out(
    tx: &mut Tx,
    request: &Request,
    subject: Option<&Subject>,
    details: &Details,
    note: Option<&str>,
) -> Result<usize, RequestError> {
    let registered = system::active(&*tx).await?;
    if registered.is_empty() {
        let job = insert(tx, request, None).await?;
        enqueue(tx, request, subject, details, &job, None, note).await?;
        return Ok(1);
    }
    let scope = super::erasure_scope(details)
        .map(|(categories, _)| categories)
        .filter(|categories| request.kind == RequestType::Erase && !categories.is_empty());
    let reached: Vec<&System> = registered
        .iter()
        .filter(|s| s.reaches(request.kind, scope.as_deref()))
        .collect();
    for system in &reached {
        let job = insert(tx, request, Some(system)).await?;
        enqueue(tx, request, subject, details, &job, Some(system), note).await?;
    }
    Ok(reached.len())
}

async fn insert(
    tx: &mut Tx,
    request: &Request,
    system: Option<&System>,
) -> Result<fulfilments::Model, RequestError> {
    let now = clock::now();
    let job = fulfilments::Model {
        id: uuid::Uuid::now_v7().to_string(),
        request_id: request.id.clone(),
        status: FulfilmentStatus::Pending,
        created_at: now,
        completed_at: None,
        system_key: system.map(|s| s.key.clone()),
        round: 1,
        due_at: system.map(|s| now + TimeDelta::days(i64::from(s.allowance_days))),
        acknowledged_at: None,
        outcome: None,
        evidence: None,
        note: None,
        part: None,
        decided_by: None,
    };
    fulfilments::Entity::insert(fulfilments::ActiveModel::from(job.clone()))
        .exec_without_returning(&*tx)
        .await?;
    Ok(job)
}

/// Queues the job's webhook for its current round.
async fn enqueue(
    tx: &mut Tx,
    request: &Request,
    subject: Option<&Subject>,
    details: &Details,
    job: &fulfilments::Model,
    system: Option<&System>,
    note: Option<&str>,
) -> Result<(), RequestError> {
    let scope = super::erasure_scope(details);
    let mut data = json!({
        "fulfilment_id": job.id,
        "request_id": request.id,
        "type": request.kind.to_value(),
        "external_id": subject.map(|s| s.external_id.clone()),
        // A person the main app knows only by address (filed without a login).
        "email": if subject.is_none() { request.email.clone() } else { None },
        "changes": details.changes,
        // An erasure of part of the data: only these; the account stays.
        "scope": scope.as_ref().map(|(categories, item_refs)| {
            json!({"categories": categories, "item_refs": item_refs})
        }),
        "note": note,
        "complete_path": format!("/v1/fulfilments/{}/complete", job.id),
        "acknowledge_path": format!("/v1/fulfilments/{}/acknowledge", job.id),
        "fail_path": format!("/v1/fulfilments/{}/fail", job.id),
    });
    if let Some(system) = system {
        data["system"] = json!(system.key);
        // The same for every round of this system's job on this request.
        data["idempotency_key"] = json!(job.id);
        data["round"] = json!(job.round);
        data["due_at"] = json!(job.due_at.map(clock::canonical));
        data["categories"] = json!(system.categories);
        data["report_path"] = json!(format!("/v1/systems/{}/fulfilments/{}", system.key, job.id));
    }
    outbox::enqueue_webhook_to(
        tx,
        job.system_key.as_deref(),
        &message_key(job),
        FULFILMENT_REQUESTED,
        data,
    )
    .await?;
    Ok(())
}

/// The jobs of a request, oldest first, with their systems and deliveries.
pub async fn of_request(
    conn: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Vec<Job>, RequestError> {
    let rows = fulfilments::Entity::find()
        .filter(fulfilments::Column::RequestId.eq(request_id))
        .order_by_asc(fulfilments::Column::Id)
        .all(conn)
        .await?;
    let systems = system::list(conn).await?;
    let keys: Vec<String> = rows.iter().map(message_key).collect();
    let deliveries = outbox::statuses_of(conn, &keys).await?;
    Ok(rows
        .into_iter()
        .zip(keys)
        .map(|(row, key)| {
            let system = row
                .system_key
                .as_ref()
                .and_then(|k| systems.iter().find(|s| &s.key == k));
            Job {
                system_name: system.map(|s| s.name.clone()),
                required: system.is_none_or(|s| s.required),
                delivery: deliveries.get(&key).copied(),
                row,
            }
        })
        .collect())
}

/// Records a system's answer for job `job_id`. `from` is the system whose signature the
/// answer carries (its own path), or `None` for the main app's service key, which answers for
/// any job. An answer for a job that is settled, or that cannot move from where it is,
/// changes nothing and is answered with the request as it stands.
pub async fn answer(
    tx: &mut Tx,
    config: &Config,
    job_id: &str,
    from: Option<&str>,
    answer: Answer,
) -> Result<Request, RequestError> {
    let job = fulfilments::Entity::find_by_id(job_id)
        .one(&*tx)
        .await?
        .filter(|job| from.is_none() || job.system_key.as_deref() == from)
        .ok_or(RequestError::NotFound)?;
    let request = super::lock(tx, &job.request_id).await?;
    let actor = match from {
        Some(key) => Actor::DataSystem(key.to_string()),
        None => Actor::MainApp,
    };
    let now = clock::now();
    let claim = |from: &[FulfilmentStatus]| {
        fulfilments::Entity::update_many()
            .filter(fulfilments::Column::Id.eq(job_id))
            .filter(fulfilments::Column::Status.is_in(from.iter().copied()))
    };
    let who = job_label(&*tx, &job).await?;
    match answer {
        Answer::Acknowledged { reference } => {
            let evidence = Evidence {
                reference,
                ..Default::default()
            };
            claim(&[FulfilmentStatus::Pending, FulfilmentStatus::Failed])
                .col_expr(
                    fulfilments::Column::Status,
                    Expr::value(FulfilmentStatus::Acknowledged),
                )
                .col_expr(fulfilments::Column::AcknowledgedAt, Expr::value(now))
                .col_expr(
                    fulfilments::Column::Evidence,
                    Expr::value(serde_json::to_string(&evidence).ok()),
                )
                .exec(&*tx)
                .await?;
            Ok(request)
        }
        Answer::Failed { note } => {
            let moved = claim(&[FulfilmentStatus::Pending, FulfilmentStatus::Acknowledged])
                .col_expr(
                    fulfilments::Column::Status,
                    Expr::value(FulfilmentStatus::Failed),
                )
                .col_expr(fulfilments::Column::Note, Expr::value(note.clone()))
                .exec(&*tx)
                .await?;
            if moved.rows_affected > 0 && request.status == RequestStatus::Fulfilling {
                note_on_request(tx, &request, &actor, &format!("{who} failed: {note}")).await?;
            }
            Ok(request)
        }
        Answer::Done(report) => {
            let part = match (&report.data, request.kind) {
                (Some(data), RequestType::Access | RequestType::Export) => {
                    Some(export::seal_part(config, data)?)
                }
                _ => None,
            };
            let moved = claim(&[
                FulfilmentStatus::Pending,
                FulfilmentStatus::Acknowledged,
                FulfilmentStatus::Failed,
            ])
            .col_expr(
                fulfilments::Column::Status,
                Expr::value(FulfilmentStatus::Done),
            )
            .col_expr(fulfilments::Column::CompletedAt, Expr::value(now))
            .col_expr(
                fulfilments::Column::Outcome,
                Expr::value(report.outcome.unwrap_or(Outcome::Completed)),
            )
            .col_expr(fulfilments::Column::Note, Expr::value(report.note.clone()))
            .col_expr(
                fulfilments::Column::Evidence,
                Expr::value(serde_json::to_string(&report.evidence).ok()),
            )
            .col_expr(fulfilments::Column::Part, Expr::value(part))
            .exec(&*tx)
            .await?;
            if moved.rows_affected == 0 || request.status != RequestStatus::Fulfilling {
                return Ok(request);
            }
            if job.system_key.is_some() {
                let record = confirmation(&who, &report);
                note_on_request(tx, &request, &actor, &record).await?;
            }
            settle(tx, config, request, &actor).await
        }
    }
}

/// A job's name in a request's history: its system, or the main app.
async fn job_label(
    conn: &impl ConnectionTrait,
    job: &fulfilments::Model,
) -> Result<String, RequestError> {
    Ok(match &job.system_key {
        Some(key) => match system::get(conn, key).await {
            Ok(system) => system.name,
            Err(system::SystemError::NotFound) => key.clone(),
            Err(e) => return Err(e.into()),
        },
        None => "the main app".into(),
    })
}

/// A system's confirmation as the request's history keeps it: the erasure proof per system.
fn confirmation(who: &str, report: &Report) -> String {
    let mut record = match report.outcome {
        Some(Outcome::Restricted) => format!("{who} kept the data restricted"),
        _ => format!("{who} confirmed"),
    };
    if !report.evidence.counts.is_empty() {
        let counts: Vec<String> = report
            .evidence
            .counts
            .iter()
            .map(|(category, n)| format!("{category}: {n}"))
            .collect();
        record.push_str(&format!(" ({})", counts.join(", ")));
    }
    if let Some(reference) = &report.evidence.reference {
        record.push_str(&format!(", reference {reference}"));
    }
    if let Some(note) = &report.note {
        record.push_str(&format!(": {note}"));
    }
    record
}

/// Adds a line to a request's history without moving it.
async fn note_on_request(
    tx: &Tx,
    request: &Request,
    actor: &Actor,
    note: &str,
) -> Result<(), RequestError> {
    super::record_event(
        tx,
        &request.id,
        Some(request.status),
        request.status,
        actor,
        Some(note),
    )
    .await
}

/// Completes a request being fulfilled once every required job is done or not applicable:
/// the request's outcome is restricted if any system kept data, the package is assembled
/// from every part, and each system's outcome goes in the completion email.
async fn settle(
    tx: &mut Tx,
    config: &Config,
    request: Request,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let jobs = of_request(&*tx, &request.id).await?;
    if jobs
        .iter()
        .any(|j| j.required && !j.row.status.is_settled())
    {
        return Ok(request);
    }
    let done: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.row.status == FulfilmentStatus::Done)
        .collect();
    let mut parts = export::Parts::default();
    for job in &done {
        let data = job
            .row
            .part
            .as_deref()
            .map(|sealed| export::open_part(config, sealed))
            .transpose()?;
        match (&job.row.system_key, data) {
            (None, data) => parts.main_app = data,
            (Some(key), Some(data)) => parts.systems.push((
                key.clone(),
                job.system_name.clone().unwrap_or_else(|| key.clone()),
                data,
            )),
            (Some(_), None) => {}
        }
    }
    let restricted: Vec<&Job> = done
        .into_iter()
        .filter(|j| j.row.outcome == Some(Outcome::Restricted))
        .collect();
    let outcome = if restricted.is_empty() {
        Outcome::Completed
    } else {
        Outcome::Restricted
    };
    // The main app's own words when it is the only job, as before systems were registered.
    let note = match jobs.as_slice() {
        [only] if only.row.system_key.is_none() => only.row.note.clone(),
        _ => (!restricted.is_empty()).then(|| {
            restricted
                .iter()
                .map(|j| {
                    format!(
                        "{}: {}",
                        j.system_name.as_deref().unwrap_or("the main app"),
                        j.row.note.as_deref().unwrap_or("kept")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        }),
    };
    let systems = jobs
        .iter()
        .filter_map(|j| {
            let restricted = j.row.outcome == Some(Outcome::Restricted);
            Some(SystemOutcome {
                name: j.system_name.clone()?,
                status: if restricted {
                    "job_restricted".into()
                } else {
                    format!("job_{}", j.status().to_value())
                },
                note: restricted.then(|| j.row.note.clone()).flatten(),
            })
        })
        .collect();
    let finished = fulfil::finish(
        tx,
        config,
        request,
        fulfil::Finish {
            outcome,
            note,
            parts,
            systems,
        },
        actor,
    )
    .await?;
    // The parts are in the package now; the database keeps none of them.
    fulfilments::Entity::update_many()
        .col_expr(
            fulfilments::Column::Part,
            Expr::value(Option::<String>::None),
        )
        .filter(fulfilments::Column::RequestId.eq(&finished.id))
        .exec(&*tx)
        .await?;
    Ok(finished)
}

/// Finds a request's open job for a reviewer's decision on it.
async fn open_job(
    tx: &mut Tx,
    job_id: &str,
) -> Result<(fulfilments::Model, Request), RequestError> {
    let request_id = fulfilments::Entity::find_by_id(job_id)
        .one(&*tx)
        .await?
        .ok_or(RequestError::NotFound)?
        .request_id;
    let request = super::lock(tx, &request_id).await?;
    // Read again under the lock: a report may have settled it meanwhile.
    let job = fulfilments::Entity::find_by_id(job_id)
        .one(&*tx)
        .await?
        .ok_or(RequestError::NotFound)?;
    if request.status != RequestStatus::Fulfilling {
        return Err(RequestError::refused(&request, "changed"));
    }
    if job.status.is_settled() {
        return Err(RequestError::JobSettled);
    }
    Ok((job, request))
}

/// Sends a failed or silent job again, alone: an undelivered webhook is tried again at once
/// with a fresh set of attempts; a delivered one is sent anew as the job's next round (same
/// idempotency key, new `webhook-id`). The job is pending again; its due date stays.
pub async fn retry(tx: &mut Tx, job_id: &str, actor: &Actor) -> Result<Request, RequestError> {
    let (job, request) = open_job(tx, job_id).await?;
    let waiting = outbox::find_by_key(&*tx, &message_key(&job))
        .await?
        .filter(|m| m.status != outbox::Status::Delivered);
    let round = match waiting {
        Some(message) => {
            outbox::retry(tx, &message.id, actor).await?;
            job.round
        }
        None => {
            let next = fulfilments::Model {
                round: job.round + 1,
                ..job.clone()
            };
            let details: Details = serde_json::from_str(&request.details).unwrap_or_default();
            let subject = match &request.subject_id {
                Some(id) => crate::subject::lock(tx, id).await?,
                None => None,
            };
            let system = match &job.system_key {
                Some(key) => Some(system::get(&*tx, key).await?),
                None => None,
            };
            enqueue(
                tx,
                &request,
                subject.as_ref(),
                &details,
                &next,
                system.as_ref(),
                None,
            )
            .await?;
            next.round
        }
    };
    fulfilments::Entity::update_many()
        .col_expr(
            fulfilments::Column::Status,
            Expr::value(FulfilmentStatus::Pending),
        )
        .col_expr(fulfilments::Column::Round, Expr::value(round))
        .filter(fulfilments::Column::Id.eq(job_id))
        .exec(&*tx)
        .await?;
    let who = job_label(&*tx, &job).await?;
    note_on_request(tx, &request, actor, &format!("{who}: sent again")).await?;
    audit::record(
        &*tx,
        actor,
        "fulfilment.retried",
        audit::Target::new("request", &request.id),
        json!({"fulfilment_id": job_id, "system": job.system_key, "round": round}),
    )
    .await?;
    super::get(&*tx, &request.id).await
}

/// A reviewer finds that a system has nothing to do for this request, and says why; the
/// request completes if that was the last job it waited for.
pub async fn not_applicable(
    tx: &mut Tx,
    config: &Config,
    job_id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let (job, request) = open_job(tx, job_id).await?;
    fulfilments::Entity::update_many()
        .col_expr(
            fulfilments::Column::Status,
            Expr::value(FulfilmentStatus::NotApplicable),
        )
        .col_expr(fulfilments::Column::CompletedAt, Expr::value(clock::now()))
        .col_expr(fulfilments::Column::Note, Expr::value(reason))
        .col_expr(
            fulfilments::Column::DecidedBy,
            Expr::value(actor.to_string()),
        )
        .filter(fulfilments::Column::Id.eq(job_id))
        .exec(&*tx)
        .await?;
    let who = job_label(&*tx, &job).await?;
    note_on_request(
        tx,
        &request,
        actor,
        &format!("{who}: not applicable: {reason}"),
    )
    .await?;
    audit::record(
        &*tx,
        actor,
        "fulfilment.not_applicable",
        audit::Target::new("request", &request.id),
        json!({"fulfilment_id": job_id, "system": job.system_key, "reason": reason}),
    )
    .await?;
    settle(tx, config, request, actor).await
}

/// Closes the open jobs of a request a reviewer completed by hand: they are not applicable
/// any more, for the reason the reviewer gave for completing.
pub async fn close_open(tx: &mut Tx, request_id: &str, actor: &Actor) -> Result<(), RequestError> {
    fulfilments::Entity::update_many()
        .col_expr(
            fulfilments::Column::Status,
            Expr::value(FulfilmentStatus::NotApplicable),
        )
        .col_expr(fulfilments::Column::CompletedAt, Expr::value(clock::now()))
        .col_expr(
            fulfilments::Column::Note,
            Expr::value("the request was completed by a reviewer"),
        )
        .col_expr(
            fulfilments::Column::DecidedBy,
            Expr::value(actor.to_string()),
        )
        .filter(fulfilments::Column::RequestId.eq(request_id))
        .filter(fulfilments::Column::Status.is_in([
            FulfilmentStatus::Pending,
            FulfilmentStatus::Acknowledged,
            FulfilmentStatus::Failed,
        ]))
        .exec(&*tx)
        .await?;
    Ok(())
}

/// Open jobs past their due date, per system key, for the metric and the daily digest.
pub async fn overdue(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, sea_orm::DbErr> {
    let counts: Vec<(Option<String>, i64)> = fulfilments::Entity::find()
        .select_only()
        .column(fulfilments::Column::SystemKey)
        .column_as(fulfilments::Column::Id.count(), "n")
        .filter(fulfilments::Column::Status.is_in([
            FulfilmentStatus::Pending,
            FulfilmentStatus::Acknowledged,
            FulfilmentStatus::Failed,
        ]))
        .filter(fulfilments::Column::DueAt.lt(now))
        .group_by(fulfilments::Column::SystemKey)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(counts
        .into_iter()
        .filter_map(|(key, n)| Some((key?, n)))
        .collect())
}
