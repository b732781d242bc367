//! Data-subject requests (GDPR Arts 15-21, PIPL Arts 44-47): intake, identity verification,
//! legal deadlines, review and fulfilment.
//!
//! A request filed through the portal (subject token), by the main app's signed events or by
//! the service itself arrives verified: the login, the signature or the service's own finding
//! stands in for identity verification. Anyone else proves control of an email address with a
//! one-time code. Every transition is a row in `request_events` and an audit entry, written in
//! the transaction that makes it; every email about it goes through the outbox in the same
//! transaction.
//!
//! Transactions: this room owns `requests`, `request_events`, `verification_codes`,
//! `fulfilments` and `exports`; its functions take the edge's [`Tx`]. A fulfilment that
//! changes Consentry's own records (a restriction, an objection's withdrawals, an erasure, a
//! rectification) makes the change and the request's transition in that one transaction, and
//! anything a client may repeat (a code, a decision, a job's report) is claimed inside it.

pub mod api;
pub mod budget;
pub mod digest;
pub mod export;
pub mod fulfil;
pub mod intake;
pub mod jobs;
pub mod model;
pub mod review;

use chrono::NaiveDate;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use crate::{
    audit::{self, Actor},
    clock,
    consent::ConsentError,
    db::Tx,
    error::FieldError,
    notify::{email::EmailContent, outbox},
};
pub use model::{Law, Model as Request, OnBehalfOf, Outcome, RequestStatus, RequestType};

/// Statuses of a request still being worked on.
pub const OPEN: [RequestStatus; 5] = [
    RequestStatus::Unverified,
    RequestStatus::Verified,
    RequestStatus::InReview,
    RequestStatus::Approved,
    RequestStatus::Fulfilling,
];

/// Statuses whose deadline is running.
pub const RUNNING: [RequestStatus; 4] = [
    RequestStatus::Verified,
    RequestStatus::InReview,
    RequestStatus::Approved,
    RequestStatus::Fulfilling,
];

/// Requests being worked on, by status and law, for monitoring.
pub async fn open_by_status_and_law(
    conn: &impl ConnectionTrait,
) -> Result<Vec<(RequestStatus, Law, i64)>, DbErr> {
    model::Entity::find()
        .select_only()
        .column(model::Column::Status)
        .column(model::Column::Law)
        .column_as(model::Column::Id.count(), "n")
        .filter(model::Column::Status.is_in(OPEN))
        .filter(model::Column::ClosedAt.is_null())
        .group_by(model::Column::Status)
        .group_by(model::Column::Law)
        .into_tuple()
        .all(conn)
        .await
}

/// How many running requests are past their due date on `today`, and how many fall due within
/// `within` of it.
pub async fn deadline_counts(
    conn: &impl ConnectionTrait,
    today: chrono::NaiveDate,
    within: chrono::TimeDelta,
) -> Result<(u64, u64), DbErr> {
    let running = || {
        model::Entity::find()
            .filter(model::Column::Status.is_in(RUNNING))
            .filter(model::Column::ClosedAt.is_null())
    };
    let overdue = running()
        .filter(model::Column::DueDate.lt(today))
        .count(conn)
        .await?;
    let due_soon = running()
        .filter(model::Column::DueDate.gte(today))
        .filter(model::Column::DueDate.lte(today + within))
        .count(conn)
        .await?;
    Ok((overdue, due_soon))
}

/// What can go wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no such request")]
    NotFound,
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("a request that is `{from}` cannot be {action}")]
    Transition { from: String, action: &'static str },
    #[error("the code is not right; {left} attempts left")]
    WrongCode { left: i32 },
    #[error("the code has expired; ask for a new one")]
    CodeExpired,
    #[error("the request was closed after too many wrong codes; file a new one")]
    Closed,
    #[error("no more codes can be sent for this request now")]
    ResendLimited { retry_after: u64 },
    #[error("this email address has used today's requests and code attempts; try again tomorrow")]
    BudgetSpent { retry_after: u64 },
    #[error("a request can be extended only once")]
    AlreadyExtended,
    #[error(transparent)]
    Extension(#[from] crate::law::ExtensionRefused),
    #[error("processing of this person's data is not restricted")]
    NotRestricted,
    #[error("the restriction is already being lifted; the person has been told when")]
    LiftScheduled,
    #[error(
        "next of kin may act for a deceased person under PIPL Art 49 only; the GDPR does not \
         cover the deceased (Recital 27)"
    )]
    NextOfKinNotCovered,
    #[error("the export package is not available")]
    ExportGone,
    #[error("export package: {0}")]
    Export(String),
    #[error("the job is done or not applicable already")]
    JobSettled,
    #[error(transparent)]
    System(#[from] crate::system::SystemError),
    #[error("pseudonym key: {0}")]
    Key(String),
    #[error(transparent)]
    Consent(#[from] ConsentError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl RequestError {
    /// The refusal of `action` on a request in a state that does not allow it.
    pub fn refused(request: &Request, action: &'static str) -> Self {
        Self::Transition {
            from: request.status.to_value(),
            action,
        }
    }
}

/// What an erasure covers: everything (`None`), or the named categories and items only.
pub fn erasure_scope(details: &intake::Details) -> Option<(Vec<String>, Vec<String>)> {
    let categories = details.categories.clone().unwrap_or_default();
    let item_refs = details.item_refs.clone().unwrap_or_default();
    (!categories.is_empty() || !item_refs.is_empty()).then_some((categories, item_refs))
}

/// Who a request is from, as a reviewer needs to see it before deciding.
#[derive(Debug, Clone)]
pub struct Requester {
    /// The account the request is linked to (the main app's id), if any.
    pub external_id: Option<String>,
    /// The address the request was filed with, or the account's.
    pub email: Option<String>,
    /// Whether that address was proven with an emailed code.
    pub email_verified: bool,
    pub jurisdiction: Option<String>,
    /// Why the request follows the law it does.
    pub law_reason: String,
}

/// The requester of each request, with one read of the accounts they are linked to.
pub async fn requesters(
    conn: &impl ConnectionTrait,
    config: &crate::config::Config,
    requests: &[Request],
) -> Result<Vec<Requester>, DbErr> {
    let ids: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.subject_id.as_deref())
        .collect();
    let accounts: std::collections::HashMap<String, crate::subject::Subject> =
        crate::subject::model::Entity::find()
            .filter(crate::subject::model::Column::Id.is_in(ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
    Ok(requests
        .iter()
        .map(|r| {
            let account = r.subject_id.as_ref().and_then(|id| accounts.get(id));
            let jurisdiction = r
                .jurisdiction
                .clone()
                .or_else(|| account.and_then(|a| a.jurisdiction.clone()));
            Requester {
                external_id: account.map(|a| a.external_id.clone()),
                email: r
                    .email
                    .clone()
                    .or_else(|| account.and_then(|a| a.email.clone())),
                email_verified: r.source == "email" && r.verified_at.is_some(),
                law_reason: crate::law::procedure_reason(&config.requests, jurisdiction.as_deref()),
                jurisdiction,
            }
        })
        .collect())
}

/// The request with this id.
pub async fn get(conn: &impl ConnectionTrait, id: &str) -> Result<Request, RequestError> {
    model::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(RequestError::NotFound)
}

/// A request, its row locked until the transaction ends, so that changes which read its jobs
/// before they move it (each system's report, a reviewer's decision on a job) queue up: the last
/// of two reports arriving together sees the first one's job done, and completes the request.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Request, RequestError> {
    model::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&*tx)
        .await?
        .ok_or(RequestError::NotFound)
}

/// A subject's requests, newest first.
pub async fn of_subject(
    conn: &impl ConnectionTrait,
    subject_id: &str,
) -> Result<Vec<Request>, DbErr> {
    model::Entity::find()
        .filter(model::Column::SubjectId.eq(subject_id))
        .order_by_desc(model::Column::ReceivedAt)
        .all(conn)
        .await
}

/// A request's transitions, oldest first.
pub async fn history(
    conn: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Vec<model::events::Model>, DbErr> {
    model::events::Entity::find()
        .filter(model::events::Column::RequestId.eq(request_id))
        .order_by_asc(model::events::Column::OccurredAt)
        .order_by_asc(model::events::Column::Id)
        .all(conn)
        .await
}

/// Filters of the admin queue; every field is optional.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<RequestStatus>,
    pub kind: Option<RequestType>,
    pub law: Option<Law>,
    /// Running requests past their due date.
    pub overdue: bool,
    /// Running requests due on or before this date.
    pub due_by: Option<NaiveDate>,
    /// Running requests only (received and not yet finished).
    pub running: bool,
    /// Who has taken them.
    pub taken: Option<Taken>,
    pub limit: u64,
    pub offset: u64,
}

/// Who has taken the requests a [`Filter`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Nobody yet.
    Nobody,
    /// This reviewer (an audit actor, `staff:<id>`).
    By(String),
}

/// A page of the admin queue, soonest deadline first, and the number of matches.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &Filter,
    today: NaiveDate,
) -> Result<(Vec<Request>, u64), DbErr> {
    let query = matching(filter, today);
    let total = query.clone().count(conn).await?;
    let page = query
        .order_by_asc(model::Column::DueDate)
        .order_by_asc(model::Column::Id)
        .limit(filter.limit)
        .offset(filter.offset)
        .all(conn)
        .await?;
    Ok((page, total))
}

/// How many requests match `filter` (its page bounds aside).
pub async fn count(
    conn: &impl ConnectionTrait,
    filter: &Filter,
    today: NaiveDate,
) -> Result<u64, DbErr> {
    matching(filter, today).count(conn).await
}

/// The requests `filter` selects.
fn matching(filter: &Filter, today: NaiveDate) -> sea_orm::Select<model::Entity> {
    let mut query = model::Entity::find();
    if let Some(status) = filter.status {
        query = query.filter(model::Column::Status.eq(status));
    }
    if let Some(kind) = filter.kind {
        query = query.filter(model::Column::Kind.eq(kind));
    }
    if let Some(law) = filter.law {
        query = query.filter(model::Column::Law.eq(law));
    }
    if filter.running || filter.overdue || filter.due_by.is_some() {
        query = query.filter(model::Column::Status.is_in(RUNNING));
    }
    match &filter.taken {
        Some(Taken::Nobody) => query = query.filter(model::Column::Reviewer.is_null()),
        Some(Taken::By(actor)) => query = query.filter(model::Column::Reviewer.eq(actor)),
        None => {}
    }
    if filter.overdue {
        query = query.filter(model::Column::DueDate.lt(today));
    }
    if let Some(by) = filter.due_by {
        query = query.filter(model::Column::DueDate.lte(by));
    }
    query
}

/// Moves a request from `from` to `to` unless someone else moved it first, and records the
/// transition with its actor. `changes` sets further columns in the same update.
async fn transition(
    tx: &Tx,
    request: &Request,
    to: RequestStatus,
    actor: &Actor,
    note: Option<&str>,
    action: &'static str,
    changes: impl FnOnce(sea_orm::UpdateMany<model::Entity>) -> sea_orm::UpdateMany<model::Entity>,
) -> Result<(), RequestError> {
    let now = clock::now();
    let update = model::Entity::update_many()
        .col_expr(model::Column::Status, sea_orm::prelude::Expr::value(to))
        .col_expr(model::Column::UpdatedAt, sea_orm::prelude::Expr::value(now))
        .filter(model::Column::Id.eq(&request.id))
        .filter(model::Column::Status.eq(request.status));
    let moved = changes(update).exec(tx).await?;
    if moved.rows_affected == 0 {
        return Err(RequestError::refused(request, action));
    }
    record_event(tx, &request.id, Some(request.status), to, actor, note).await
}

/// Appends a transition to a request's history and to the audit log.
async fn record_event(
    tx: &Tx,
    request_id: &str,
    from: Option<RequestStatus>,
    to: RequestStatus,
    actor: &Actor,
    note: Option<&str>,
) -> Result<(), RequestError> {
    model::events::Entity::insert(model::events::ActiveModel {
        id: sea_orm::ActiveValue::Set(uuid::Uuid::now_v7().to_string()),
        request_id: sea_orm::ActiveValue::Set(request_id.to_string()),
        from_status: sea_orm::ActiveValue::Set(from),
        to_status: sea_orm::ActiveValue::Set(to),
        actor: sea_orm::ActiveValue::Set(actor.to_string()),
        note: sea_orm::ActiveValue::Set(note.map(str::to_string)),
        occurred_at: sea_orm::ActiveValue::Set(clock::now()),
    })
    .exec_without_returning(tx)
    .await?;
    audit::record(
        tx,
        actor,
        &format!("request.{}", to.to_value()),
        audit::Target::new("request", request_id),
        serde_json::json!({
            "from": from.map(|s| s.to_value()),
            "to": to.to_value(),
        }),
    )
    .await?;
    Ok(())
}

/// Clears the address on an erased person's closed requests, found by their link or by the
/// address itself (requests filed by email), except `except`, which forgets its own once its
/// confirmation is queued. Open requests keep it, to answer the person. Returns how many open
/// requests keep it.
async fn forget_addresses(
    tx: &mut Tx,
    subject_id: &str,
    addresses: &[String],
    except: &str,
) -> Result<u64, DbErr> {
    let theirs = sea_orm::Condition::any()
        .add(model::Column::SubjectId.eq(subject_id))
        .add(model::Column::Email.is_in(addresses.iter().map(String::as_str)));
    model::Entity::update_many()
        .col_expr(
            model::Column::Email,
            sea_orm::prelude::Expr::value(Option::<String>::None),
        )
        .filter(theirs.clone())
        .filter(model::Column::ClosedAt.is_not_null())
        .filter(model::Column::Id.ne(except))
        .exec(&*tx)
        .await?;
    model::Entity::find()
        .filter(theirs)
        .filter(model::Column::ClosedAt.is_null())
        .filter(model::Column::Id.ne(except))
        .filter(model::Column::Email.is_not_null())
        .count(&*tx)
        .await
}

/// Queues an email about a request to the address captured at intake, once per `step`.
async fn email(
    tx: &mut Tx,
    request: &Request,
    step: &str,
    content: &EmailContent,
) -> Result<(), DbErr> {
    if let Some(to) = &request.email {
        let locale = request.locale.as_deref().unwrap_or("en");
        outbox::enqueue_email(
            tx,
            &format!("request:{}:{step}", request.id),
            to,
            locale,
            content,
        )
        .await?;
    }
    Ok(())
}

/// The "request received" email, sent when a request is verified.
fn received_email(request: &Request) -> EmailContent {
    EmailContent::RequestReceived {
        request_id: request.id.clone(),
        request_type: request.kind.to_value(),
        law: request.law.to_value(),
        law_applies: crate::law::law_applies(request.jurisdiction.as_deref()),
        due_date: request
            .due_date
            .unwrap_or_else(|| clock::now().date_naive()),
    }
}

/// The open request of `kind` for a subject, if any.
async fn open_of_kind(
    conn: &impl ConnectionTrait,
    subject_id: &str,
    kind: RequestType,
    except: Option<&str>,
) -> Result<Option<Request>, DbErr> {
    let mut query = model::Entity::find()
        .filter(model::Column::SubjectId.eq(subject_id))
        .filter(model::Column::Kind.eq(kind))
        .filter(model::Column::Status.is_in(RUNNING));
    if let Some(id) = except {
        query = query.filter(model::Column::Id.ne(id));
    }
    query.one(conn).await
}

/// Whether a request is still open.
pub fn is_open(request: &Request) -> bool {
    OPEN.contains(&request.status) && request.closed_at.is_none()
}
