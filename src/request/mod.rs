//! Data-subject requests (GDPR Arts 15-21, PIPL Arts 44-47). Requests opened by the service
//! itself or by the main app's signed events arrive verified: the signature (or the service's
//! own finding) stands in for identity verification.

pub mod model;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::Value;

use crate::clock;
pub use model::{Model as Request, RequestStatus, RequestType};

/// Statuses of a request still being worked on.
const OPEN: [RequestStatus; 5] = [
    RequestStatus::Unverified,
    RequestStatus::Verified,
    RequestStatus::InReview,
    RequestStatus::Approved,
    RequestStatus::Fulfilling,
];

/// Opens a verified request for a subject, unless one of the same type is already open (then
/// that one is returned: the same request is never processed twice).
pub async fn open_verified(
    conn: &impl ConnectionTrait,
    subject_id: &str,
    kind: RequestType,
    source: &str,
    details: Value,
) -> Result<Request, DbErr> {
    if let Some(open) = model::Entity::find()
        .filter(model::Column::SubjectId.eq(subject_id))
        .filter(model::Column::Kind.eq(kind))
        .filter(model::Column::Status.is_in(OPEN))
        .one(conn)
        .await?
    {
        return Ok(open);
    }
    let now = clock::now();
    let row = model::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        subject_id: Set(Some(subject_id.to_string())),
        kind: Set(kind),
        status: Set(RequestStatus::Verified),
        source: Set(source.to_string()),
        details: Set(crate::crypto::canonical_json(&details)),
        received_at: Set(now),
        updated_at: Set(now),
    };
    sea_orm::ActiveModelTrait::insert(row, conn).await
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
