//! Consentry's own records past their use, deleted by every purge run: the service keeps its
//! own promises too. Each kind is one condition, used to count for a dry run and to delete for
//! a real one, so the two cannot disagree.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait, prelude::Expr, sea_query::SelectStatement,
};

use super::{RetentionError, purge::OwnData};
use crate::{
    age::guardian,
    config::Config,
    consent::model as consent,
    db::Db,
    notify::outbox,
    period::Period,
    request::{export, model as request},
    subject::{self, model as subjects},
};

/// How long after its code expired an unverified request may still ask for a new one; after
/// that the request is abandoned and the code goes.
const CODE_GRACE: TimeDelta = TimeDelta::days(1);

/// Deletes (or, dry, counts) what is past its use at `as_of`.
pub async fn purge(
    db: &Db,
    config: &Config,
    as_of: DateTime<Utc>,
    dry_run: bool,
) -> Result<OwnData, RetentionError> {
    let conn = db.conn();
    let before = |setting: &str| {
        setting
            .parse::<Period>()
            .ok()
            .and_then(|p| p.before_instant(as_of))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let codes = request::codes::Column::ExpiresAt.lte(as_of - CODE_GRACE);
    let tokens = guardian::entity::Column::ExpiresAt.lte(as_of);
    let delivered = Condition::all()
        .add(outbox::entity::Column::Status.eq(outbox::Status::Delivered))
        .add(
            outbox::entity::Column::DeliveredAt
                .lte(before(&config.retention.keep_delivered_outbox)),
        );
    let erased = erased_before(before(&config.retention.keep_erased_proofs));
    let proofs = consent::events::Column::SubjectId.in_subquery(erased.clone());
    if dry_run {
        return Ok(OwnData {
            export_packages: export::count_expired(conn, as_of).await?,
            verification_codes: request::codes::Entity::find()
                .filter(codes)
                .count(conn)
                .await?,
            guardian_tokens: guardian::entity::Entity::find()
                .filter(tokens)
                .count(conn)
                .await?,
            outbox_messages: outbox::entity::Entity::find()
                .filter(delivered)
                .count(conn)
                .await?,
            consent_proofs: consent::events::Entity::find()
                .filter(proofs)
                .count(conn)
                .await?,
        });
    }
    let export_packages = export::purge_expired(db, config, as_of)
        .await
        .map_err(|e| RetentionError::OwnData(e.to_string()))?;
    let txn = db.begin_write().await?;
    let verification_codes = request::codes::Entity::delete_many()
        .filter(codes)
        .exec(&*txn)
        .await?
        .rows_affected;
    let guardian_tokens = guardian::entity::Entity::delete_many()
        .filter(tokens)
        .exec(&*txn)
        .await?
        .rows_affected;
    let outbox_messages = outbox::entity::Entity::delete_many()
        .filter(delivered)
        .exec(&*txn)
        .await?
        .rows_affected;
    let consent_proofs = erase_proofs(&*txn, erased, proofs).await?;
    txn.commit().await?;
    Ok(OwnData {
        export_packages,
        verification_codes,
        guardian_tokens,
        outbox_messages,
        consent_proofs,
    })
}

/// The ids of people erased before `cutoff`.
fn erased_before(cutoff: DateTime<Utc>) -> SelectStatement {
    subjects::Entity::find()
        .select_only()
        .column(subjects::Column::Id)
        .filter(subjects::Column::ErasedAt.lte(cutoff))
        .into_query()
}

/// Deletes the consent records of people erased long enough ago, and resets their chains to
/// the genesis hash, so that what remains is consistent: an erased id with no history.
async fn erase_proofs(
    conn: &impl ConnectionTrait,
    erased: SelectStatement,
    proofs: sea_orm::sea_query::SimpleExpr,
) -> Result<u64, RetentionError> {
    let deleted = consent::events::Entity::delete_many()
        .filter(proofs)
        .exec(conn)
        .await?
        .rows_affected;
    consent::consents::Entity::delete_many()
        .filter(consent::consents::Column::SubjectId.in_subquery(erased.clone()))
        .exec(conn)
        .await?;
    subject::acceptances::Entity::delete_many()
        .filter(subject::acceptances::Column::SubjectId.in_subquery(erased.clone()))
        .exec(conn)
        .await?;
    subjects::Entity::update_many()
        .col_expr(subjects::Column::ConsentSeq, Expr::value(0))
        .col_expr(
            subjects::Column::ConsentHash,
            Expr::value(subject::GENESIS_HASH),
        )
        .filter(subjects::Column::Id.in_subquery(erased))
        .filter(subjects::Column::ConsentSeq.gt(0))
        .exec(conn)
        .await?;
    Ok(deleted)
}
