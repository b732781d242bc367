//! Reviewers' decisions: take a request, approve it (which starts its fulfilment), reject it
//! with reasons and the remedies the law gives, extend a GDPR deadline once, complete it by
//! hand. A decision on a request in the wrong state is refused (409) and changes nothing.

use sea_orm::{ActiveEnum, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, prelude::Expr};

use chrono::TimeDelta;

use super::{
    Outcome, Request, RequestError, RequestStatus, RequestType, email, fulfil, model, transition,
};
use crate::{
    audit::Actor,
    clock,
    config::Config,
    db::Tx,
    law,
    notify::{email::EmailContent, templates::language_for},
};

/// What a reviewer may do next with a request: the one rule that the decisions below enforce
/// and that the console draws its buttons from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextSteps {
    pub take: bool,
    pub approve: bool,
    pub reject: bool,
    /// Extending once, under a law that allows it; the law may still refuse the date
    /// ([`law::extended_due_date`]).
    pub extend: bool,
    pub complete: bool,
}

/// The steps open to a reviewer for `request`.
pub fn next_steps(request: &Request) -> NextSteps {
    use RequestStatus::{Approved, Fulfilling, InReview, Verified};
    let open = super::is_open(request);
    NextSteps {
        take: open && request.status == Verified,
        approve: open && matches!(request.status, Verified | InReview),
        reject: open && matches!(request.status, Verified | InReview | Approved),
        extend: open
            && super::RUNNING.contains(&request.status)
            && request.extended_at.is_none()
            && request.law == super::Law::Gdpr
            && request.due_date.is_some(),
        complete: open && request.status == Fulfilling,
    }
}

/// A reviewer takes a verified request.
pub async fn take(tx: &mut Tx, id: &str, actor: &Actor) -> Result<Request, RequestError> {
    let request = super::get(&*tx, id).await?;
    if !next_steps(&request).take {
        return Err(RequestError::refused(&request, "taken for review"));
    }
    transition(
        &*tx,
        &request,
        RequestStatus::InReview,
        actor,
        None,
        "taken for review",
        |u| u.col_expr(model::Column::Reviewer, Expr::value(actor.to_string())),
    )
    .await?;
    let request = super::get(&*tx, id).await?;
    Ok(request)
}

/// Approves a request and starts its fulfilment (see [`fulfil::start`]); the reviewer's note,
/// if any, goes in the history and with the job to the main app.
pub async fn approve(
    tx: &mut Tx,
    config: &Config,
    id: &str,
    actor: &Actor,
    note: Option<&str>,
) -> Result<Request, RequestError> {
    let request = super::get(&*tx, id).await?;
    if !next_steps(&request).approve {
        return Err(RequestError::refused(&request, "approved"));
    }
    fulfil::start(tx, config, request, actor, note).await
}

/// The email that tells the person their request was rejected: the reason, and the remedies of
/// the request's law in their language. The console previews it before the reviewer rejects.
pub fn rejection(request: &Request, reason: &str) -> EmailContent {
    EmailContent::RequestRejected {
        request_id: request.id.clone(),
        request_type: request.kind.to_value(),
        reason: reason.to_string(),
        remedies: law::remedies(
            request.law,
            law::law_applies(request.jurisdiction.as_deref()),
            language_for(request.locale.as_deref().unwrap_or("en")),
        )
        .to_string(),
    }
}

/// The email the person gets once an approved request is carried out, as the console previews
/// it before the reviewer approves: the download email of an access or export request (its
/// link stands for the one the package will have), the completion email of any other.
pub fn completion(request: &Request, config: &Config) -> EmailContent {
    if matches!(request.kind, RequestType::Access | RequestType::Export) {
        EmailContent::ExportReady {
            request_id: request.id.clone(),
            download_url: format!(
                "{}/requests/{}/export?token=…",
                config.portal_url(),
                request.id
            ),
            expires_at: clock::now() + TimeDelta::days(i64::from(config.requests.export_days)),
        }
    } else {
        EmailContent::RequestCompleted {
            request_id: request.id.clone(),
            request_type: request.kind.to_value(),
            outcome: Outcome::Completed.to_value(),
            note: None,
            erased: Vec::new(),
            systems: Vec::new(),
        }
    }
}

/// Rejects a request with a reason; the email states it and the remedies of the request's law.
pub async fn reject(
    tx: &mut Tx,
    id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let request = super::get(&*tx, id).await?;
    if !next_steps(&request).reject {
        return Err(RequestError::refused(&request, "rejected"));
    }
    let now = clock::now();
    transition(
        &*tx,
        &request,
        RequestStatus::Rejected,
        actor,
        Some(reason),
        "rejected",
        |u| {
            u.col_expr(model::Column::DecisionReason, Expr::value(reason))
                .col_expr(model::Column::Reviewer, Expr::value(actor.to_string()))
                .col_expr(model::Column::ClosedAt, Expr::value(now))
        },
    )
    .await?;
    email(tx, &request, "rejected", &rejection(&request, reason)).await?;
    let request = super::get(&*tx, id).await?;
    Ok(request)
}

/// Extends a GDPR request's deadline once, by one or two further months, and tells the person
/// why. The law decides the new date and whether it is still allowed (see
/// [`law::extended_due_date`]).
pub async fn extend(
    tx: &mut Tx,
    config: &Config,
    id: &str,
    months: u32,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let request = super::get(&*tx, id).await?;
    if !super::RUNNING.contains(&request.status) {
        return Err(RequestError::refused(&request, "extended"));
    }
    if request.extended_at.is_some() {
        return Err(RequestError::AlreadyExtended);
    }
    let now = clock::now();
    let new_due = law::extended_due_date(
        &config.requests,
        request.law,
        request.received_at.date_naive(),
        now.date_naive(),
        months,
    )?;
    // The status stays; the update is guarded by it like any transition.
    let moved = model::Entity::update_many()
        .col_expr(model::Column::DueDate, Expr::value(new_due))
        .col_expr(model::Column::ExtendedAt, Expr::value(now))
        .col_expr(model::Column::ExtensionReason, Expr::value(reason))
        .col_expr(model::Column::UpdatedAt, Expr::value(now))
        .filter(model::Column::Id.eq(id))
        .filter(model::Column::ExtendedAt.is_null())
        .exec(&*tx)
        .await?;
    if moved.rows_affected == 0 {
        return Err(RequestError::AlreadyExtended);
    }
    super::record_event(
        &*tx,
        id,
        Some(request.status),
        request.status,
        actor,
        Some(&format!("extended to {new_due}: {reason}")),
    )
    .await?;
    email(
        tx,
        &request,
        "extended",
        &EmailContent::RequestExtended {
            request_id: request.id.clone(),
            request_type: request.kind.to_value(),
            reason: reason.to_string(),
            new_due_date: new_due,
            law_applies: law::law_applies(request.jurisdiction.as_deref()),
        },
    )
    .await?;
    let request = super::get(&*tx, id).await?;
    Ok(request)
}

/// Completes a request being fulfilled by hand, e.g. an erasure that a legal hold turns into a
/// restriction (PIPL Art 47).
pub async fn complete(
    tx: &mut Tx,
    config: &Config,
    id: &str,
    outcome: Outcome,
    note: Option<String>,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let request = super::get(&*tx, id).await?;
    if !next_steps(&request).complete {
        return Err(RequestError::refused(&request, "completed"));
    }
    super::jobs::close_open(tx, &request.id, actor).await?;
    fulfil::finish(
        tx,
        config,
        request,
        fulfil::Finish {
            outcome,
            note,
            ..Default::default()
        },
        actor,
    )
    .await
}

/// Records in a request's history that its approval was refused and rolled back, and why, so
/// that the reviewer sees it on the request, which stays where it was.
pub async fn note_refused_approval(
    tx: &mut Tx,
    id: &str,
    actor: &Actor,
    reason: &str,
) -> Result<(), RequestError> {
    let request = super::get(&*tx, id).await?;
    super::record_event(
        &*tx,
        id,
        Some(request.status),
        request.status,
        actor,
        Some(&format!("approval refused, nothing changed: {reason}")),
    )
    .await
}

/// Lifts a subject's restriction of processing, the way GDPR Art 18(3) asks: the person is
/// told first, with the reason and the date, and the restriction ends
/// `requests.restriction_lift_notice` later, when [`lift_due_restrictions`] finds that the
/// notice went out. Until then consent checks still answer `restricted`. Returns when it ends.
pub async fn lift_restriction(
    tx: &mut Tx,
    config: &Config,
    external_id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<chrono::DateTime<chrono::Utc>, RequestError> {
    let subject = crate::subject::find(&*tx, external_id)
        .await?
        .ok_or(RequestError::NotFound)?;
    if !subject.restricted {
        return Err(RequestError::NotRestricted);
    }
    let now = clock::now();
    let lifts_at = config
        .requests
        .restriction_lift_notice
        .parse::<crate::period::Period>()
        .ok()
        .and_then(|p| p.after_instant(now))
        .unwrap_or(now);
    if !crate::subject::schedule_lift(tx, &subject.id, lifts_at).await? {
        return Err(RequestError::LiftScheduled);
    }
    let restricting = model::Entity::find()
        .filter(model::Column::SubjectId.eq(&subject.id))
        .filter(
            model::Column::Kind.is_in([super::RequestType::Restrict, super::RequestType::Erase]),
        )
        .filter(model::Column::Outcome.is_not_null())
        .order_by_desc(model::Column::ClosedAt)
        .one(&*tx)
        .await?;
    if let Some(to) = subject
        .email
        .clone()
        .or_else(|| restricting.as_ref().and_then(|r| r.email.clone()))
    {
        let request_id = restricting
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default();
        crate::notify::outbox::enqueue_email(
            tx,
            &lift_notice_key(&subject.id, lifts_at),
            &to,
            subject.locale.as_deref().unwrap_or("en"),
            &EmailContent::RestrictionLifted {
                request_id,
                lift_date: lifts_at.date_naive(),
                reason: reason.to_string(),
            },
        )
        .await?;
    }
    crate::audit::record(
        &*tx,
        actor,
        "subject.restriction_lift_scheduled",
        crate::audit::Target::new("subject", &subject.id),
        serde_json::json!({"reason": reason, "lifts_at": clock::canonical(lifts_at)}),
    )
    .await?;
    Ok(lifts_at)
}

/// The outbox key of the notice that announces a lift.
fn lift_notice_key(subject_id: &str, lifts_at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "restriction_lifted:{subject_id}:{}",
        lifts_at.timestamp_micros()
    )
}

/// Ends the restrictions due at `now` whose notice has gone out (or that had no address to
/// tell). A notice still waiting or dead keeps the restriction: the person has not been told.
/// A job: one transaction per person. Returns how many were lifted.
pub async fn lift_due_restrictions(
    db: &crate::db::Db,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, RequestError> {
    use crate::notify::outbox;
    let mut lifted = 0;
    for subject in crate::subject::lifts_due(db.conn(), now).await? {
        let Some(lifts_at) = subject.restriction_lifts_at else {
            continue;
        };
        let key = lift_notice_key(&subject.id, lifts_at);
        if outbox::status_of(db.conn(), &key)
            .await?
            .is_some_and(|s| s != outbox::Status::Delivered)
        {
            continue;
        }
        let mut tx = db.begin().await?;
        if crate::subject::lift_restriction(&mut tx, &subject.id).await? {
            crate::audit::record(
                &tx,
                &Actor::System,
                "subject.restriction_lifted",
                crate::audit::Target::new("subject", &subject.id),
                serde_json::json!({"notice": key}),
            )
            .await?;
            lifted += 1;
        }
        tx.commit().await?;
    }
    Ok(lifted)
}
