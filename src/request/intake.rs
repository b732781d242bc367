//! Filing requests and proving who files them.
//!
//! A person without a login files with an email address and receives a 6-digit code (stored as
//! a digest, valid 15 minutes, 5 attempts, then the request is closed; at most 3 codes, a
//! minute apart). Across requests, each address has a daily budget of filings and of wrong codes
//! ([`budget`]). The answer is the same whether or not the address belongs to a known subject;
//! the request is linked to a subject only once the code proves the address.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use poem_openapi::Object;
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, prelude::Expr,
};
use serde::{Deserialize, Serialize};
use validator::ValidateEmail;

use super::{
    Law, OnBehalfOf, Request, RequestError, RequestStatus, RequestType,
    budget::{self, Spend},
    email, model, open_of_kind, received_email, record_event,
};
use crate::vocab::CountryCode;
use crate::{
    audit::{self, Actor},
    clock,
    config::Config,
    crypto,
    db::Tx,
    error::FieldError,
    law,
    notify::email::EmailContent,
    purpose,
    subject::{self, Subject},
};

/// How long an emailed code is valid.
pub const CODE_LIFETIME: TimeDelta = TimeDelta::minutes(15);
/// Wrong codes allowed before the request is closed.
pub const MAX_ATTEMPTS: i32 = 5;
/// Codes sent per request, the first included.
pub const MAX_SENDS: i32 = 3;
/// Time between two codes for the same request.
pub const RESEND_INTERVAL: TimeDelta = TimeDelta::seconds(60);

/// What a request is about.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
#[oai(rename = "RequestDetails", skip_serializing_if_is_none)]
pub struct Details {
    /// Free text from the person.
    #[oai(validator(max_length = 2000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Rectification: field → corrected value (`email` and `locale` are also corrected in
    /// Consentry's own record; every field is sent to the main app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<BTreeMap<String, String>>,
    /// Objection: the purposes objected to.
    #[oai(validator(max_items = 50))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purposes: Option<Vec<String>>,
    /// Erasure of part of the data only: these data categories (`training_data`, `uploads`).
    /// The person keeps their account.
    #[oai(validator(max_items = 100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Erasure of part of the data only: these items, by the main app's reference.
    #[oai(validator(max_items = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_refs: Option<Vec<String>>,
    /// Next of kin (PIPL Art 49): who the deceased person was (name and account), as the main
    /// app would know them.
    #[oai(validator(max_length = 500))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deceased: Option<String>,
    /// Next of kin: how the requester is related to the deceased.
    #[oai(validator(max_length = 100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship: Option<String>,
    /// Next of kin: the proof offered (a death certificate's number, a notarised kinship
    /// certificate), for the reviewer to check.
    #[oai(validator(max_length = 2000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Why the service opened the request itself (automatic requests).
    #[oai(read_only)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A new request.
#[derive(Debug, Clone)]
pub struct Intake {
    pub kind: RequestType,
    pub details: Details,
    pub locale: Option<String>,
    pub jurisdiction: Option<CountryCode>,
}

/// Checks the details each type needs; filing runs it, and the portal runs it before it shows
/// a person's answers back.
pub async fn validate(conn: &impl ConnectionTrait, intake: &Intake) -> Result<(), RequestError> {
    let mut errors = Vec::new();
    match intake.kind {
        RequestType::Rectify => match &intake.details.changes {
            Some(changes) if !changes.is_empty() && changes.len() <= 50 => {
                for (field, value) in changes {
                    if field.is_empty() || field.len() > 64 || value.len() > 1000 {
                        errors.push(FieldError::new(
                            format!("details.changes.{field}"),
                            "field names take 1-64 characters and values at most 1000",
                        ));
                    } else if field == "email" && !value.validate_email() {
                        errors.push(FieldError::new(
                            "details.changes.email",
                            "not an email address",
                        ));
                    }
                }
            }
            _ => errors.push(FieldError::new(
                "details.changes",
                "a rectification names 1-50 fields and their corrected values",
            )),
        },
        RequestType::Erase => {
            for (i, category) in intake.details.categories.iter().flatten().enumerate() {
                if !crate::vocab::is_key(category) {
                    errors.push(FieldError::new(
                        format!("details.categories.{i}"),
                        "1-64 characters from a-z, 0-9, `-` and `_`",
                    ));
                }
            }
            for (i, item) in intake.details.item_refs.iter().flatten().enumerate() {
                if item.is_empty() || item.len() > 255 {
                    errors.push(FieldError::new(
                        format!("details.item_refs.{i}"),
                        "1-255 characters",
                    ));
                }
            }
        }
        RequestType::Object => match &intake.details.purposes {
            Some(keys) if !keys.is_empty() => {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let known = purpose::find_many(conn, &refs).await?;
                for key in keys {
                    if !known.contains_key(key) {
                        errors.push(FieldError::new(
                            "details.purposes",
                            format!("no purpose `{key}`"),
                        ));
                    }
                }
            }
            _ => errors.push(FieldError::new(
                "details.purposes",
                "an objection names the purposes objected to",
            )),
        },
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RequestError::Invalid(errors))
    }
}

/// A new, unverified request row with nothing but what every intake sets; callers fill in
/// the rest.
fn new_row(intake: &Intake, source: &str, law: Law, now: DateTime<Utc>) -> model::ActiveModel {
    let details = serde_json::to_value(&intake.details).unwrap_or_default();
    model::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        subject_id: Set(None),
        kind: Set(intake.kind),
        status: Set(RequestStatus::Unverified),
        source: Set(source.to_string()),
        details: Set(crypto::canonical_json(&details)),
        received_at: Set(now),
        updated_at: Set(now),
        law: Set(law),
        email: Set(None),
        locale: Set(None),
        jurisdiction: Set(None),
        verified_at: Set(None),
        due_date: Set(None),
        extension_reason: Set(None),
        extended_at: Set(None),
        duplicate_of: Set(None),
        reviewer: Set(None),
        decision_reason: Set(None),
        outcome: Set(None),
        closed_at: Set(None),
        on_behalf_of: Set(None),
    }
}

/// Opens a verified request for a subject and tells them it was received. A request of the
/// same type already running for the person is not processed twice: the new one is recorded,
/// linked to it and closed. Runs in the caller's transaction.
pub async fn open_verified(
    tx: &mut Tx,
    config: &Config,
    subject: &Subject,
    intake: Intake,
    source: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let (request, duplicate) = open(tx, config, subject, intake, source, actor, None).await?;
    if !duplicate {
        email(tx, &request, "received", &received_email(&request)).await?;
    }
    super::fulfil::object_on_receipt(tx, config, request).await
}

/// Opens the erasure the service owes a minor whose guardian never consented (the policies
/// promise deletion). The child did not ask for it, so it is addressed to the guardian when one
/// is known, and otherwise tells the child in plain words why the service opened it.
pub async fn open_for_minor(
    tx: &mut Tx,
    config: &Config,
    subject: &Subject,
) -> Result<Request, RequestError> {
    let intake = Intake {
        kind: RequestType::Erase,
        details: Details {
            reason: Some("minor_without_guardian_consent".into()),
            ..Default::default()
        },
        locale: None,
        jurisdiction: None,
    };
    let to_guardian = subject.guardian_email.is_some();
    let address = subject.guardian_email.clone().or(subject.email.clone());
    let (request, duplicate) = open(
        tx,
        config,
        subject,
        intake,
        "automatic",
        &Actor::System,
        Some(address),
    )
    .await?;
    if !duplicate {
        let content = EmailContent::MinorErasure {
            request_id: request.id.clone(),
            to_guardian,
            due_date: request
                .due_date
                .unwrap_or_else(|| clock::now().date_naive()),
        };
        email(tx, &request, "received", &content).await?;
    }
    Ok(request)
}

/// Records a verified request for a subject, to `address` (the subject's own by default);
/// returns it and whether it repeats one already running.
async fn open(
    tx: &mut Tx,
    config: &Config,
    subject: &Subject,
    intake: Intake,
    source: &str,
    actor: &Actor,
    address: Option<Option<String>>,
) -> Result<(Request, bool), RequestError> {
    validate(&*tx, &intake).await?;
    let now = clock::now();
    let jurisdiction = intake
        .jurisdiction
        .as_ref()
        .map(CountryCode::to_string)
        .or_else(|| subject.jurisdiction.clone());
    let law = law::procedure(&config.requests, jurisdiction.as_deref());
    let duplicate = open_of_kind(&*tx, &subject.id, intake.kind, None).await?;
    let status = if duplicate.is_some() {
        RequestStatus::Cancelled
    } else {
        RequestStatus::Verified
    };
    let mut row = new_row(&intake, source, law, now);
    row.subject_id = Set(Some(subject.id.clone()));
    row.status = Set(status);
    row.email = Set(address.unwrap_or_else(|| subject.email.clone()));
    row.locale = Set(intake.locale.clone().or_else(|| subject.locale.clone()));
    row.jurisdiction = Set(jurisdiction);
    row.verified_at = Set(Some(now));
    row.due_date = Set(Some(law::due_date(
        &config.requests,
        law,
        now.date_naive(),
        now.date_naive(),
    )));
    row.duplicate_of = Set(duplicate.as_ref().map(|d| d.id.clone()));
    row.decision_reason = Set(duplicate.as_ref().map(|_| "duplicate".to_string()));
    row.closed_at = Set(duplicate.as_ref().map(|_| now));
    let request = sea_orm::ActiveModelTrait::insert(row, &*tx).await?;
    let note = duplicate.as_ref().map(|d| format!("duplicate of {}", d.id));
    record_event(&*tx, &request.id, None, status, actor, note.as_deref()).await?;
    Ok((request, duplicate.is_some()))
}

/// A request filed without a login: queued with a code to the address; verified by
/// [`verify`]. Next of kin of a deceased person file this way, for them (PIPL Art 49).
pub async fn file_by_email(
    tx: &mut Tx,
    config: &Config,
    address: &str,
    intake: Intake,
    on_behalf_of: Option<OnBehalfOf>,
) -> Result<Request, RequestError> {
    if !address.validate_email() {
        return Err(RequestError::Invalid(vec![FieldError::new(
            "email",
            "not an email address",
        )]));
    }
    let jurisdiction = intake.jurisdiction.as_ref().map(CountryCode::to_string);
    let law = law::procedure(&config.requests, jurisdiction.as_deref());
    if on_behalf_of == Some(OnBehalfOf::NextOfKin) {
        check_next_of_kin(law, &intake)?;
    }
    validate(&*tx, &intake).await?;
    budget::spend(tx, &config.rate_limit, address, Spend::Filing).await?;
    let now = clock::now();
    let mut row = new_row(&intake, "email", law, now);
    row.on_behalf_of = Set(on_behalf_of);
    row.email = Set(Some(address.to_string()));
    row.locale = Set(intake.locale.clone());
    row.jurisdiction = Set(jurisdiction);
    let request = sea_orm::ActiveModelTrait::insert(row, &*tx).await?;
    record_event(
        &*tx,
        &request.id,
        None,
        RequestStatus::Unverified,
        &Actor::Subject,
        None,
    )
    .await?;
    send_code(tx, &request, 1, 0).await?;
    Ok(request)
}

/// Next of kin act for a deceased person only where the law lets them (PIPL Art 49, not the
/// GDPR: Recital 27), for the rights it names, and with the evidence a reviewer needs.
fn check_next_of_kin(law: Law, intake: &Intake) -> Result<(), RequestError> {
    if !law::next_of_kin_may_act(law) {
        return Err(RequestError::NextOfKinNotCovered);
    }
    let mut errors = Vec::new();
    if !law::NEXT_OF_KIN_RIGHTS.contains(&intake.kind) {
        errors.push(FieldError::new(
            "type",
            "next of kin may ask for access, a copy (export), correction or deletion",
        ));
    }
    let d = &intake.details;
    for (field, value) in [
        ("details.deceased", &d.deceased),
        ("details.relationship", &d.relationship),
        ("details.evidence", &d.evidence),
    ] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            errors.push(FieldError::new(field, "required for next of kin"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RequestError::Invalid(errors))
    }
}

/// A code of six decimal digits, uniformly drawn.
fn new_code() -> String {
    loop {
        let n = u32::from_le_bytes(crypto::random_bytes::<4>());
        // Reject the top of the range so that every code is equally likely.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// The stored digest of a request's code; the request id salts it.
fn code_hash(request_id: &str, code: &str) -> String {
    crypto::sha256_hex(format!("{request_id}:{code}").as_bytes())
}

/// Stores a fresh code (replacing any earlier one) and queues it by email.
async fn send_code(
    tx: &mut Tx,
    request: &Request,
    sends: i32,
    attempts: i32,
) -> Result<(), RequestError> {
    let code = new_code();
    let now = clock::now();
    model::codes::Entity::insert(model::codes::ActiveModel {
        request_id: Set(request.id.clone()),
        code_hash: Set(code_hash(&request.id, &code)),
        expires_at: Set(now + CODE_LIFETIME),
        attempts: Set(attempts),
        sends: Set(sends),
        last_sent_at: Set(now),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(model::codes::Column::RequestId)
            .update_columns([
                model::codes::Column::CodeHash,
                model::codes::Column::ExpiresAt,
                model::codes::Column::Sends,
                model::codes::Column::LastSentAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(&*tx)
    .await?;
    email(
        tx,
        request,
        &format!("code:{sends}"),
        &EmailContent::VerificationCode {
            code,
            request_type: request.kind.to_value(),
            expires_in_minutes: CODE_LIFETIME.num_minutes() as u32,
        },
    )
    .await?;
    Ok(())
}

/// An unverified request that may still be verified.
async fn pending(conn: &impl ConnectionTrait, id: &str) -> Result<Request, RequestError> {
    let request = super::get(conn, id).await?;
    if request.closed_at.is_some() && request.status == RequestStatus::Unverified {
        return Err(RequestError::Closed);
    }
    if request.status != RequestStatus::Unverified {
        return Err(RequestError::refused(&request, "verified"));
    }
    Ok(request)
}

/// Deletes (or, dry, counts) the codes that expired at or before `cutoff`: their requests were
/// abandoned. Part of the purge of Consentry's own data.
pub async fn purge_codes(
    tx: &mut Tx,
    cutoff: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    let expired = model::codes::Column::ExpiresAt.lte(cutoff);
    if dry_run {
        return model::codes::Entity::find()
            .filter(expired)
            .count(&*tx)
            .await;
    }
    Ok(model::codes::Entity::delete_many()
        .filter(expired)
        .exec(&*tx)
        .await?
        .rows_affected)
}

/// Sends a new code for an unverified request.
pub async fn resend(tx: &mut Tx, id: &str) -> Result<(), RequestError> {
    let code = model::codes::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&*tx)
        .await?;
    let request = pending(&*tx, id).await?;
    let code = code.ok_or(RequestError::Closed)?;
    let wait = code.last_sent_at + RESEND_INTERVAL - clock::now();
    if code.sends >= MAX_SENDS || wait > TimeDelta::zero() {
        return Err(RequestError::ResendLimited {
            retry_after: wait.num_seconds().max(1) as u64,
        });
    }
    send_code(tx, &request, code.sends + 1, code.attempts).await?;
    Ok(())
}

/// The outcome of a code check. A wrong code is counted (and may close the request), and that
/// count must be committed like a success, so a refused attempt comes back as a value for the
/// edge to commit before it answers with the error.
pub type Attempt = Result<Request, RequestError>;

/// Verifies a request with its emailed code. The request is then linked to the subject with
/// that address, if one is known, and its deadline starts running. The code row is locked
/// first, so that parallel attempts on one request queue up and each is counted.
pub async fn verify(
    tx: &mut Tx,
    config: &Config,
    id: &str,
    code: &str,
) -> Result<Attempt, RequestError> {
    let stored = model::codes::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&*tx)
        .await?;
    let request = pending(&*tx, id).await?;
    let stored = stored.ok_or(RequestError::Closed)?;
    let address = request.email.clone().unwrap_or_default();
    budget::check(&*tx, &config.rate_limit, &address, Spend::FailedCode).await?;
    let now = clock::now();
    let right = crypto::constant_time_eq(
        code_hash(id, code.trim()).as_bytes(),
        stored.code_hash.as_bytes(),
    );
    if !right {
        budget::spend(tx, &config.rate_limit, &address, Spend::FailedCode).await?;
        let attempts = stored.attempts + 1;
        if attempts >= MAX_ATTEMPTS {
            model::codes::Entity::delete_by_id(id).exec(&*tx).await?;
            model::Entity::update_many()
                .col_expr(model::Column::ClosedAt, Expr::value(now))
                .col_expr(
                    model::Column::DecisionReason,
                    Expr::value("verification_failed"),
                )
                .filter(model::Column::Id.eq(id))
                .exec(&*tx)
                .await?;
            audit::record(
                &*tx,
                &Actor::System,
                "request.closed",
                audit::Target::new("request", id),
                serde_json::json!({"reason": "verification_failed"}),
            )
            .await?;
            return Ok(Err(RequestError::Closed));
        }
        model::codes::Entity::update_many()
            .col_expr(model::codes::Column::Attempts, Expr::value(attempts))
            .filter(model::codes::Column::RequestId.eq(id))
            .exec(&*tx)
            .await?;
        return Ok(Err(RequestError::WrongCode {
            left: MAX_ATTEMPTS - attempts,
        }));
    }
    if stored.expires_at <= now {
        return Err(RequestError::CodeExpired);
    }
    model::codes::Entity::delete_by_id(id).exec(&*tx).await?;

    // Next of kin prove their own address, not the deceased's: the reviewer links the person.
    let subject = match &request.email {
        Some(_) if request.on_behalf_of.is_some() => None,
        Some(address) => {
            subject::model::Entity::find()
                .filter(subject::model::Column::Email.eq(address.as_str()))
                .filter(subject::model::Column::ErasedAt.is_null())
                .one(&*tx)
                .await?
        }
        None => None,
    };
    let jurisdiction = request
        .jurisdiction
        .clone()
        .or_else(|| subject.as_ref().and_then(|s| s.jurisdiction.clone()));
    let law: Law = law::procedure(&config.requests, jurisdiction.as_deref());
    let duplicate = match &subject {
        Some(s) => open_of_kind(&*tx, &s.id, request.kind, Some(id)).await?,
        None => None,
    };
    let due = law::due_date(
        &config.requests,
        law,
        request.received_at.date_naive(),
        now.date_naive(),
    );
    let to = if duplicate.is_some() {
        RequestStatus::Cancelled
    } else {
        RequestStatus::Verified
    };
    let note = duplicate.as_ref().map(|d| format!("duplicate of {}", d.id));
    super::transition(
        &*tx,
        &request,
        to,
        &Actor::Subject,
        note.as_deref(),
        "verified",
        |update| {
            let update = update
                .col_expr(
                    model::Column::SubjectId,
                    Expr::value(subject.as_ref().map(|s| s.id.clone())),
                )
                .col_expr(model::Column::Jurisdiction, Expr::value(jurisdiction))
                .col_expr(model::Column::Law, Expr::value(law))
                .col_expr(model::Column::VerifiedAt, Expr::value(now))
                .col_expr(model::Column::DueDate, Expr::value(due));
            match &duplicate {
                Some(d) => update
                    .col_expr(model::Column::DuplicateOf, Expr::value(d.id.clone()))
                    .col_expr(model::Column::DecisionReason, Expr::value("duplicate"))
                    .col_expr(model::Column::ClosedAt, Expr::value(now)),
                None => update,
            }
        },
    )
    .await?;
    let request = super::get(&*tx, id).await?;
    if duplicate.is_none() {
        email(tx, &request, "received", &received_email(&request)).await?;
    }
    Ok(Ok(
        super::fulfil::object_on_receipt(tx, config, request).await?
    ))
}
