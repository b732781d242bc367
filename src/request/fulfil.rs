//! Fulfilment of approved requests.
//!
//! Restriction and objection are carried out by Consentry alone. Access, export, rectification
//! and erasure need the main app, which holds the real data: approval queues a signed
//! `fulfilment.requested` webhook (retried by the outbox until the main app accepts it), and
//! the main app answers with `POST /v1/fulfilments/{id}/complete`, carrying its data for an
//! access or export request. Consentry then finishes its own part: the package, the erasure of
//! its own copy, the final email.

use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    prelude::Expr,
};
use serde_json::{Value, json};

use super::{
    Outcome, Request, RequestError, RequestStatus, RequestType, email, export, intake::Details,
    model, transition,
};
use crate::{
    audit::Actor,
    clock,
    config::Config,
    consent::{self, ConsentActor, Decision, PolicyRef, RecordRequest, model::ConsentStatus},
    crypto,
    db::Db,
    notify::{email::EmailContent, outbox},
    subject::{self, items},
};

/// The webhook event type of a job for the main app.
pub const FULFILMENT_REQUESTED: &str = "fulfilment.requested";

/// Approves a request and carries out what Consentry can do at once.
pub async fn start(
    db: &Db,
    config: &Config,
    request: Request,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let details: Details = serde_json::from_str(&request.details).unwrap_or_default();
    let txn = db.begin_write().await?;
    transition(
        &*txn,
        &request,
        RequestStatus::Approved,
        actor,
        None,
        "approved",
        |u| u.col_expr(model::Column::Reviewer, Expr::value(actor.to_string())),
    )
    .await?;
    let approved = super::get(&*txn, &request.id).await?;
    match request.kind {
        RequestType::Restrict | RequestType::Object => {
            transition(
                &*txn,
                &approved,
                RequestStatus::Fulfilling,
                actor,
                None,
                "fulfilled",
                |u| u,
            )
            .await?;
            txn.commit().await?;
            let fulfilling = super::get(db.conn(), &request.id).await?;
            if request.kind == RequestType::Object {
                withdraw_objected(db, config, &fulfilling, &details).await?;
            }
            finish(
                db,
                config,
                fulfilling,
                Outcome::Completed,
                None,
                None,
                actor,
            )
            .await
        }
        RequestType::Access | RequestType::Export | RequestType::Rectify | RequestType::Erase => {
            let subject = match &request.subject_id {
                Some(id) => {
                    subject::model::Entity::find_by_id(id.as_str())
                        .one(&*txn)
                        .await?
                }
                None => None,
            };
            if request.kind == RequestType::Rectify
                && let (Some(subject), Some(changes)) = (&subject, &details.changes)
            {
                rectify_own_copy(&*txn, subject, changes).await?;
            }
            let job_id = uuid::Uuid::now_v7().to_string();
            model::fulfilments::Entity::insert(model::fulfilments::ActiveModel {
                id: Set(job_id.clone()),
                request_id: Set(request.id.clone()),
                status: Set("pending".into()),
                created_at: Set(clock::now()),
                completed_at: Set(None),
            })
            .exec_without_returning(&*txn)
            .await?;
            transition(
                &*txn,
                &approved,
                RequestStatus::Fulfilling,
                actor,
                None,
                "fulfilled",
                |u| u,
            )
            .await?;
            outbox::enqueue_webhook(
                &*txn,
                &format!("fulfilment:{job_id}"),
                FULFILMENT_REQUESTED,
                json!({
                    "fulfilment_id": job_id,
                    "request_id": request.id,
                    "type": request.kind.to_value(),
                    "external_id": subject.as_ref().map(|s| s.external_id.clone()),
                    // A person the main app knows only by address (filed without a login).
                    "email": if subject.is_none() { request.email.clone() } else { None },
                    "changes": details.changes,
                    "complete_path": format!("/v1/fulfilments/{job_id}/complete"),
                }),
            )
            .await?;
            let request = super::get(&*txn, &request.id).await?;
            txn.commit().await?;
            Ok(request)
        }
    }
}

/// Applies the corrections that concern Consentry's own record of the person.
async fn rectify_own_copy(
    conn: &impl ConnectionTrait,
    subject: &subject::Subject,
    changes: &std::collections::BTreeMap<String, String>,
) -> Result<(), RequestError> {
    let mut update = subject::model::Entity::update_many()
        .col_expr(subject::model::Column::UpdatedAt, Expr::value(clock::now()))
        .filter(subject::model::Column::Id.eq(&subject.id));
    for (field, value) in changes {
        update = match field.as_str() {
            "email" => update.col_expr(subject::model::Column::Email, Expr::value(value.clone())),
            "locale" => update.col_expr(subject::model::Column::Locale, Expr::value(value.clone())),
            _ => update,
        };
    }
    update.exec(conn).await?;
    Ok(())
}

/// Withdraws the consents an objection names (GDPR Art 21, PIPL Art 44), each under the policy
/// version it was given with. Purposes never granted need nothing more than the recorded
/// objection.
async fn withdraw_objected(
    db: &Db,
    config: &Config,
    request: &Request,
    details: &Details,
) -> Result<(), RequestError> {
    let Some(subject_id) = &request.subject_id else {
        return Ok(());
    };
    let Some(subject) = subject::model::Entity::find_by_id(subject_id.as_str())
        .one(db.conn())
        .await?
    else {
        return Ok(());
    };
    let objected = details.purposes.clone().unwrap_or_default();
    for current in consent::ledger::current(db.conn(), subject_id).await? {
        if !objected.contains(&current.purpose_key) || current.status != ConsentStatus::Granted {
            continue;
        }
        consent::record(
            db,
            config,
            RecordRequest {
                external_id: subject.external_id.clone(),
                decisions: vec![Decision {
                    purpose: current.purpose_key.clone(),
                    granted: false,
                }],
                policy: PolicyRef {
                    key: current.policy_key.clone(),
                    version: current.policy_version,
                    id: Some(current.policy_id.clone()),
                },
                actor: ConsentActor::Subject,
                channel: "objection".into(),
                language: request.locale.clone(),
                jurisdiction: None,
                user_agent: None,
                ip: None,
                occurred_at: None,
                reason: None,
                audited_by: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// What the main app reports for a job.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The main app's data for an access or export request.
    pub data: Option<Value>,
    /// `restricted` when an erasure had to stop short of deletion.
    pub outcome: Option<Outcome>,
    pub note: Option<String>,
}

/// Records the main app's answer to a job and finishes the request. A job already completed is
/// answered with its request and applied nothing twice.
pub async fn complete_job(
    db: &Db,
    config: &Config,
    job_id: &str,
    report: Report,
) -> Result<Request, RequestError> {
    let job = model::fulfilments::Entity::find_by_id(job_id)
        .one(db.conn())
        .await?
        .ok_or(RequestError::NotFound)?;
    let request = super::get(db.conn(), &job.request_id).await?;
    if job.status == "completed" {
        return Ok(request);
    }
    if request.status != RequestStatus::Fulfilling {
        return Err(RequestError::refused(&request, "completed"));
    }
    finish(
        db,
        config,
        request,
        report.outcome.unwrap_or(Outcome::Completed),
        report.note,
        report.data,
        &Actor::MainApp,
    )
    .await
}

/// Finishes Consentry's part of a request being fulfilled and closes it with the final email.
pub async fn finish(
    db: &Db,
    config: &Config,
    request: Request,
    outcome: Outcome,
    note: Option<String>,
    main_app_data: Option<Value>,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let package = match request.kind {
        RequestType::Access | RequestType::Export => {
            Some(export::build(db, config, &request, main_app_data.as_ref()).await?)
        }
        _ => None,
    };
    let txn = db.begin_write().await?;
    let now = clock::now();
    let subject = match &request.subject_id {
        Some(id) => {
            subject::model::Entity::find_by_id(id.as_str())
                .one(&*txn)
                .await?
        }
        None => None,
    };
    match (request.kind, outcome, &subject) {
        (RequestType::Restrict, _, Some(s))
        | (RequestType::Erase, Outcome::Restricted, Some(s)) => {
            subject::model::Entity::update_many()
                .col_expr(subject::model::Column::Restricted, Expr::value(true))
                .col_expr(subject::model::Column::UpdatedAt, Expr::value(now))
                .filter(subject::model::Column::Id.eq(&s.id))
                .exec(&*txn)
                .await?;
        }
        (RequestType::Erase, Outcome::Completed, Some(s)) => erase_own_copy(&*txn, s).await?,
        _ => {}
    }
    model::fulfilments::Entity::update_many()
        .col_expr(model::fulfilments::Column::Status, Expr::value("completed"))
        .col_expr(model::fulfilments::Column::CompletedAt, Expr::value(now))
        .filter(model::fulfilments::Column::RequestId.eq(&request.id))
        .filter(model::fulfilments::Column::Status.eq("pending"))
        .exec(&*txn)
        .await?;
    transition(
        &*txn,
        &request,
        RequestStatus::Completed,
        actor,
        note.as_deref(),
        "completed",
        |u| {
            u.col_expr(model::Column::Outcome, Expr::value(outcome))
                .col_expr(model::Column::DecisionReason, Expr::value(note.clone()))
                .col_expr(model::Column::ClosedAt, Expr::value(now))
        },
    )
    .await?;
    if let Some(package) = package {
        let expires_at = package.record(&*txn, &request.id, config).await?;
        email(
            &*txn,
            &request,
            "export_ready",
            &EmailContent::ExportReady {
                request_id: request.id.clone(),
                download_url: package.download_url(config, &request),
                expires_at,
            },
        )
        .await?;
    } else {
        email(
            &*txn,
            &request,
            "completed",
            &EmailContent::RequestCompleted {
                request_id: request.id.clone(),
                request_type: request.kind.to_value(),
                outcome: outcome.to_value(),
                note: note.clone(),
            },
        )
        .await?;
    }
    if request.kind == RequestType::Erase && outcome == Outcome::Completed {
        // The confirmation above holds the address until it is delivered; the request keeps
        // none.
        model::Entity::update_many()
            .col_expr(model::Column::Email, Expr::value(Option::<String>::None))
            .filter(model::Column::Id.eq(&request.id))
            .exec(&*txn)
            .await?;
    }
    let request = super::get(&*txn, &request.id).await?;
    txn.commit().await?;
    Ok(request)
}

/// Erases Consentry's copy of a person: contact and age details are cleared, the main app's id
/// is replaced by a salted digest, and registered data items are marked erased. The minimal
/// proof of consent (the hash-chained events, keyed by the internal id) stays for the legally
/// required period.
async fn erase_own_copy(
    conn: &impl ConnectionTrait,
    subject: &subject::Subject,
) -> Result<(), RequestError> {
    let now = clock::now();
    let pseudonym = format!(
        "erased:{}",
        crypto::sha256_hex(format!("{}:{}", subject.id, subject.external_id).as_bytes())
    );
    subject::model::Entity::update_many()
        .col_expr(subject::model::Column::ExternalId, Expr::value(pseudonym))
        .col_expr(
            subject::model::Column::Email,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            subject::model::Column::Locale,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            subject::model::Column::BirthDate,
            Expr::value(Option::<chrono::NaiveDate>::None),
        )
        .col_expr(
            subject::model::Column::AgeBand,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            subject::model::Column::GuardianEmail,
            Expr::value(Option::<String>::None),
        )
        .col_expr(subject::model::Column::ErasedAt, Expr::value(now))
        .col_expr(subject::model::Column::UpdatedAt, Expr::value(now))
        .filter(subject::model::Column::Id.eq(&subject.id))
        .exec(conn)
        .await?;
    items::entity::Entity::update_many()
        .col_expr(items::entity::Column::ErasedAt, Expr::value(now))
        .filter(items::entity::Column::SubjectId.eq(&subject.id))
        .filter(items::entity::Column::ErasedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}
