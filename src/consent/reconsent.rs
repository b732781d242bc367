//! Re-consent after a material policy change: marks every current grant given under an older
//! version of the same policy and jurisdiction, and queues one "policy changed" email per
//! person, in their language.
//!
//! Work goes in batches of subjects, each batch one transaction holding its marks and its
//! emails, so memory stays flat and no transaction grows with the number of people. A batch
//! picks subjects that still have unmarked grants, so a run that stops half-way resumes where
//! it stopped, and two runs at once do no harm: marking is idempotent and each email has a
//! dedupe key per person and version.

use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, prelude::*,
};

use super::model::{ConsentStatus, consents};
use crate::{
    config::Config,
    db::Db,
    notify::{email::EmailContent, outbox, templates::language_for},
    policy::{self, Policy, PolicyStatus},
    subject::model as subjects,
};

/// The grants `policy` has still to mark: given under an older version of the same policy and
/// jurisdiction, and not yet marked.
fn affected(policy: &Policy) -> sea_orm::Select<consents::Entity> {
    consents::Entity::find()
        .filter(consents::Column::PolicyKey.eq(&policy.key))
        .filter(consents::Column::PolicyJurisdiction.eq(&policy.jurisdiction))
        .filter(consents::Column::NeedsReconsent.eq(false))
        .filter(consents::Column::PolicyVersion.lt(policy.version))
        .filter(consents::Column::Status.eq(ConsentStatus::Granted))
}

/// How many grants the rollout of `policy` has still to mark: its progress, for admins.
pub async fn remaining(conn: &impl ConnectionTrait, policy: &Policy) -> Result<u64, DbErr> {
    affected(policy).count(conn).await
}

/// Marks and notifies everyone affected by `policy`; returns how many consents were marked.
#[tracing::instrument(skip_all, fields(policy = %policy.id, version = policy.version), err)]
pub async fn run(db: &Db, config: &Config, policy: &Policy) -> Result<u64, DbErr> {
    let documents = policy::model::Entity::find()
        .filter(policy::model::Column::Key.eq(&policy.key))
        .filter(policy::model::Column::Version.eq(policy.version))
        .filter(policy::model::Column::Status.ne(PolicyStatus::Draft))
        .all(db.conn())
        .await?;
    let affected = || affected(policy);
    let mut marked = 0;
    loop {
        let mut txn = db.begin().await?;
        let subject_ids: Vec<String> = affected()
            .select_only()
            .column(consents::Column::SubjectId)
            .distinct()
            .limit(config.consent.reconsent_batch_size)
            .into_tuple()
            .all(&txn)
            .await?;
        if subject_ids.is_empty() {
            break;
        }
        let result = consents::Entity::update_many()
            .col_expr(consents::Column::NeedsReconsent, Expr::value(true))
            .col_expr(
                consents::Column::ReconsentDueAt,
                Expr::value(policy.effective_at),
            )
            .filter(consents::Column::PolicyKey.eq(&policy.key))
            .filter(consents::Column::PolicyJurisdiction.eq(&policy.jurisdiction))
            .filter(consents::Column::NeedsReconsent.eq(false))
            .filter(consents::Column::PolicyVersion.lt(policy.version))
            .filter(consents::Column::Status.eq(ConsentStatus::Granted))
            .filter(consents::Column::SubjectId.is_in(subject_ids.iter().map(String::as_str)))
            .exec(&txn)
            .await?;
        marked += result.rows_affected;
        let people = subjects::Entity::find()
            .filter(subjects::Column::Id.is_in(subject_ids.iter().map(String::as_str)))
            .filter(subjects::Column::ErasedAt.is_null())
            .filter(subjects::Column::Email.is_not_null())
            .all(&txn)
            .await?;
        for person in people {
            let Some(email) = person.email.as_deref() else {
                continue;
            };
            let doc = policy::pick(
                &documents,
                Some(policy.version),
                person.jurisdiction.as_deref(),
                person.locale.as_deref(),
            )
            .unwrap_or(policy);
            let language = language_for(person.locale.as_deref().unwrap_or(&doc.language));
            let portal = config.portal_url();
            let content = EmailContent::PolicyChanged {
                policy_title: doc.title.clone(),
                version: doc.version,
                effective_at: doc.effective_at,
                change_summary: doc.change_summary.clone().unwrap_or_default(),
                policy_url: format!(
                    "{portal}/policies/{}/versions/{}?jurisdiction={}&lang={}",
                    doc.key, doc.version, doc.jurisdiction, doc.language
                ),
                diff_url: format!(
                    "{portal}/policies/{}/diff?from={}&to={}&jurisdiction={}&lang={}",
                    doc.key,
                    doc.version - 1,
                    doc.version,
                    doc.jurisdiction,
                    doc.language
                ),
                shown_in: (language_for(&doc.language) != language).then(|| doc.language.clone()),
            };
            outbox::enqueue_email(
                &mut txn,
                &format!(
                    "policy_changed:{}:{}:{}",
                    policy.key, policy.version, person.id
                ),
                email,
                person.locale.as_deref().unwrap_or(&doc.language),
                &content,
            )
            .await?;
        }
        txn.commit().await?;
    }
    tracing::info!(marked, "re-consent marking finished");
    Ok(marked)
}
