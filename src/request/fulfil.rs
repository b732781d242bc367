//! Fulfilment of approved requests.
//!
//! Restriction and objection are carried out by Consentry alone. Access, export, rectification
//! and erasure need the systems that hold the real data: approval queues one signed
//! `fulfilment.requested` job per system (see [`super::jobs`]; the main app alone when no
//! system is registered), retried by the outbox until each accepts it, and each answers for its
//! job, carrying its data for an access or export request. Once every required job is done,
//! Consentry finishes its own part: the package, the erasure of its own copy, the final email.

use sea_orm::{ActiveEnum, ColumnTrait, EntityTrait, QueryFilter, prelude::Expr};
use serde_json::json;

use super::{
    Outcome, Request, RequestError, RequestStatus, RequestType, email, export, intake::Details,
    jobs, model, transition,
};
use crate::{
    audit::Actor,
    clock,
    config::Config,
    consent,
    db::Tx,
    guardian, law,
    notify::{
        email::{CategoryCount, EmailContent, SystemOutcome},
        outbox::{self, Undelivered},
    },
    retention::items,
    subject,
};

/// The webhook event type of a job for the main app.
pub const FULFILMENT_REQUESTED: &str = "fulfilment.requested";

/// Approves a request and carries out what Consentry can do at once, in the caller's
/// transaction: for a restriction or an objection the change, the transitions and the final
/// email commit together, and a refusal (a required purpose objected to, say) rolls all of it
/// back, leaving the request where the reviewer found it.
pub async fn start(
    tx: &mut Tx,
    config: &Config,
    request: Request,
    actor: &Actor,
    note: Option<&str>,
) -> Result<Request, RequestError> {
    let details: Details = serde_json::from_str(&request.details).unwrap_or_default();
    transition(
        &*tx,
        &request,
        RequestStatus::Approved,
        actor,
        note,
        "approved",
        |u| u.col_expr(model::Column::Reviewer, Expr::value(actor.to_string())),
    )
    .await?;
    let approved = super::get(&*tx, &request.id).await?;
    transition(
        &*tx,
        &approved,
        RequestStatus::Fulfilling,
        actor,
        None,
        "fulfilled",
        |u| u,
    )
    .await?;
    let fulfilling = super::get(&*tx, &request.id).await?;
    match request.kind {
        RequestType::Restrict | RequestType::Object => {
            if request.kind == RequestType::Object {
                let objected = details.purposes.clone().unwrap_or_default();
                withdraw_objected(tx, config, &fulfilling, &objected).await?;
            }
            finish(tx, config, fulfilling, Finish::default(), actor).await
        }
        RequestType::Access | RequestType::Export | RequestType::Rectify | RequestType::Erase => {
            let subject = match &request.subject_id {
                Some(id) => subject::lock(tx, id).await?,
                None => None,
            };
            if request.kind == RequestType::Rectify
                && let (Some(subject), Some(changes)) = (&subject, &details.changes)
            {
                subject::rectify(tx, &subject.id, changes).await?;
            }
            let sent = jobs::fan_out(tx, &fulfilling, subject.as_ref(), &details, note).await?;
            if sent > 0 {
                return Ok(fulfilling);
            }
            // Systems are registered and none of them holds what the request covers.
            finish(
                tx,
                config,
                fulfilling,
                Finish {
                    note: Some("no registered system holds data this request covers".into()),
                    ..Finish::default()
                },
                actor,
            )
            .await
        }
    }
}

/// Applies, as soon as an objection is verified, the part the law makes absolute: the consents
/// to direct-marketing purposes it names are withdrawn without review (GDPR Art 21(2)-(3), PIPL
/// Arts 24 and 44), and the history says so. When it names nothing else, the request is
/// completed there and then, and can no longer be rejected; otherwise the rest waits for a
/// reviewer. Returns the request as it then stands.
pub async fn object_on_receipt(
    tx: &mut Tx,
    config: &Config,
    request: Request,
) -> Result<Request, RequestError> {
    if request.kind != RequestType::Object || request.status != RequestStatus::Verified {
        return Ok(request);
    }
    let details: Details = serde_json::from_str(&request.details).unwrap_or_default();
    let named = details.purposes.clone().unwrap_or_default();
    let keys: Vec<&str> = named.iter().map(String::as_str).collect();
    let marketing: Vec<String> = crate::purpose::find_many(&*tx, &keys)
        .await?
        .into_values()
        .filter(|p| law::objection_is_absolute(p.direct_marketing))
        .map(|p| p.key)
        .collect();
    if marketing.is_empty() {
        return Ok(request);
    }
    withdraw_objected(tx, config, &request, &marketing).await?;
    let note = format!(
        "objection to direct marketing applied on receipt, without review: {}",
        marketing.join(", ")
    );
    if marketing.len() < named.len() {
        super::record_event(
            &*tx,
            &request.id,
            Some(request.status),
            request.status,
            &Actor::System,
            Some(&note),
        )
        .await?;
        return Ok(request);
    }
    transition(
        &*tx,
        &request,
        RequestStatus::Fulfilling,
        &Actor::System,
        Some(&note),
        "fulfilled",
        |u| u,
    )
    .await?;
    let fulfilling = super::get(&*tx, &request.id).await?;
    finish(tx, config, fulfilling, Finish::default(), &Actor::System).await
}

/// Withdraws the consents to `objected` purposes (GDPR Art 21, PIPL Art 44), each under the
/// policy version it was given with. Purposes never granted need nothing more than the recorded
/// objection.
async fn withdraw_objected(
    tx: &mut Tx,
    config: &Config,
    request: &Request,
    objected: &[String],
) -> Result<(), RequestError> {
    let Some(subject_id) = &request.subject_id else {
        return Ok(());
    };
    let Some(subject) = subject::lock(tx, subject_id).await? else {
        return Ok(());
    };
    consent::ledger::withdraw(
        tx,
        config,
        &subject,
        objected,
        consent::ledger::Withdrawal {
            channel: "objection",
            language: request.locale.clone(),
            user_agent: None,
            ip: None,
        },
    )
    .await?;
    Ok(())
}

/// How a request being fulfilled ends.
#[derive(Debug, Clone)]
pub struct Finish {
    pub outcome: Outcome,
    pub note: Option<String>,
    /// What the systems sent for an access or export package.
    pub parts: export::Parts,
    /// What each registered system did, for the completion email.
    pub systems: Vec<SystemOutcome>,
}

impl Default for Finish {
    fn default() -> Self {
        Self {
            outcome: Outcome::Completed,
            note: None,
            parts: export::Parts::default(),
            systems: Vec::new(),
        }
    }
}

/// Finishes Consentry's part of a request being fulfilled and closes it with the final email,
/// in the caller's transaction. The export package is written while the transaction is open,
/// so that a failure leaves the request fulfilling rather than completed without its package.
pub async fn finish(
    tx: &mut Tx,
    config: &Config,
    request: Request,
    finish: Finish,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let Finish {
        outcome,
        note,
        parts,
        systems,
    } = finish;
    let now = clock::now();
    let subject = match &request.subject_id {
        Some(id) => subject::lock(tx, id).await?,
        None => None,
    };
    // What a scoped erasure deleted, per category; empty for everything else.
    let mut erased: Vec<CategoryCount> = Vec::new();
    let mut in_part = false;
    match (request.kind, outcome, &subject) {
        (RequestType::Restrict, _, Some(s))
        | (RequestType::Erase, Outcome::Restricted, Some(s)) => {
            subject::restrict(tx, &s.id).await?
        }
        (RequestType::Erase, Outcome::Completed, Some(s)) => {
            let details: Details = serde_json::from_str(&request.details).unwrap_or_default();
            let record = match super::erasure_scope(&details) {
                Some((categories, item_refs)) => {
                    let counts =
                        items::erase_scope(tx, &s.id, &categories, &item_refs, now).await?;
                    let record = counts
                        .iter()
                        .map(|(category, n)| format!("{category}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let rules = crate::retention::list(&*tx).await?;
                    let locale = request.locale.as_deref();
                    erased = counts
                        .into_iter()
                        .map(|(category, count)| CategoryCount {
                            category: crate::retention::category_title(
                                rules.iter().find(|r| r.category == category),
                                &category,
                                locale,
                            ),
                            count,
                        })
                        .collect();
                    in_part = true;
                    format!("erased in part, the account stays: {record}")
                }
                None => erase_own_copy(tx, config, &request, s, &systems).await?,
            };
            super::record_event(
                &*tx,
                &request.id,
                Some(request.status),
                request.status,
                actor,
                Some(&record),
            )
            .await?;
        }
        _ => {}
    }
    transition(
        &*tx,
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
    if matches!(request.kind, RequestType::Access | RequestType::Export) {
        let package = export::build(&*tx, config, &request, &parts).await?;
        let expires_at = package.record(&*tx, &request.id, config).await?;
        email(
            tx,
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
            tx,
            &request,
            "completed",
            &EmailContent::RequestCompleted {
                request_id: request.id.clone(),
                request_type: request.kind.to_value(),
                outcome: outcome.to_value(),
                // With systems, each one's reason is in its own line.
                note: if systems.is_empty() {
                    note.clone()
                } else {
                    None
                },
                erased,
                systems,
            },
        )
        .await?;
    }
    if request.kind == RequestType::Erase && outcome == Outcome::Completed && !in_part {
        // The confirmation above holds the address until it is delivered; the request keeps
        // none.
        model::Entity::update_many()
            .col_expr(model::Column::Email, Expr::value(Option::<String>::None))
            .filter(model::Column::Id.eq(&request.id))
            .exec(&*tx)
            .await?;
    }
    super::get(&*tx, &request.id).await
}

/// Erases Consentry's copy of a person, each part by the room that owns it: messages not yet
/// sent to their addresses, their guardian links (the guardian's address), the address on
/// their closed requests, their contact and age details (the main app's id becomes a keyed
/// pseudonym), and their registered data items. The minimal proof of consent (the hash-chained
/// events, keyed by the internal id) stays for `retention.keep_erased_proofs`. Returns the
/// completion record for the request's history: where the proof is and what was kept.
async fn erase_own_copy(
    tx: &mut Tx,
    config: &Config,
    request: &Request,
    subject: &subject::Subject,
    systems: &[SystemOutcome],
) -> Result<String, RequestError> {
    let pseudonym = subject::pseudonym(config, &subject.external_id).map_err(RequestError::Key)?;
    let mut addresses: Vec<String> = [subject.email.clone(), request.email.clone()]
        .into_iter()
        .flatten()
        .collect();
    addresses.dedup();
    let mut on_their_way = 0;
    for address in &addresses {
        on_their_way += outbox::forget_recipient(tx, address, Undelivered::Deliver).await?;
    }
    let mut guardians = guardian::forget_subject(tx, &subject.id).await?;
    guardians.extend(subject.guardian_email.clone());
    for address in &guardians {
        outbox::forget_recipient(tx, address, Undelivered::Drop).await?;
    }
    let still_open = super::forget_addresses(tx, &subject.id, &addresses, &request.id).await?;
    crate::auth::session::end_all(tx, &subject.id).await?;
    subject::erase(tx, &subject.id, &pseudonym).await?;
    let now = clock::now();
    items::erase_all_of(tx, &subject.id, now).await?;
    let kept_until = config
        .retention
        .keep_erased_proofs
        .parse::<crate::period::Period>()
        .ok()
        .and_then(|p| p.after(now.date_naive()));
    crate::audit::record(
        &*tx,
        &Actor::System,
        "subject.erased",
        crate::audit::Target::new("subject", &subject.id),
        json!({
            "request_id": request.id,
            "pseudonym": pseudonym,
            "proof_kept_until": kept_until,
            // Each system's confirmation, as the request's history records it in full.
            "systems": systems.iter().map(|s| json!({"name": s.name, "status": s.status}))
                .collect::<Vec<_>>(),
        }),
    )
    .await?;
    let mut record = format!(
        "erased; the proof of consent is kept as `{pseudonym}` until {}",
        kept_until.map_or_else(|| "further notice".to_string(), |d| d.to_string())
    );
    if still_open > 0 {
        record.push_str(&format!(
            "; {still_open} open request(s) keep the address until they are answered"
        ));
    }
    if on_their_way > 0 {
        record.push_str(&format!(
            "; {on_their_way} message(s) about the person's requests keep it until delivered"
        ));
    }
    Ok(record)
}
