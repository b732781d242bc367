//! Privacy policy versions: documents per jurisdiction and language, drafts that admins edit,
//! published versions that never change, and the re-consent that a material change triggers.
//!
//! A policy is a `key` (e.g. `privacy-policy`) with integer versions. A version has one
//! document per (jurisdiction, language); `*` is the jurisdiction for everywhere without a
//! document of its own, and one language per jurisdiction is authoritative. Readers get the
//! best document for their jurisdiction and language, falling back to the authoritative
//! language, then to `*`.
//!
//! Transactions: this room owns `policies`; its writers take the edge's [`Tx`]. Publishing
//! commits first; the re-consent rollout that follows spans the ledger and is an action
//! ([`crate::actions::policies`]).

pub mod api;
pub mod diff;
pub mod document;
pub mod import;
pub mod model;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, Iterable, QueryFilter,
    QueryOrder, QuerySelect, prelude::*,
};
use serde_json::json;

use crate::{
    audit::{self, Actor, Target},
    clock,
    db::{Db, Tx},
    error::FieldError,
};
pub use document::Document;
pub use model::{Model as Policy, PolicyStatus};

/// What can go wrong with policies.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("no such policy document")]
    NotFound,
    #[error("the document is {0:?}; only drafts can be changed or published")]
    NotDraft(PolicyStatus),
    #[error("only a published document can be retired")]
    NotPublished,
    #[error(
        "{key} version {version} ({jurisdiction}, {language}) is published and cannot change; \
         publish the change as a new version"
    )]
    Immutable {
        key: String,
        version: i32,
        jurisdiction: String,
        language: String,
    },
    #[error("version {version} is not newer than the published version {published}")]
    NotNewer { version: i32, published: i32 },
    #[error("a document for this key, version, jurisdiction and language already exists")]
    Exists,
    #[error("invalid document")]
    Invalid(Vec<FieldError>),
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Changes to a draft; absent fields stay as they are.
#[derive(Debug, Default, Clone)]
pub struct DraftChanges {
    pub authoritative: Option<bool>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub effective_at: Option<DateTime<Utc>>,
    pub material: Option<bool>,
    pub change_summary: Option<Option<String>>,
}

impl Policy {
    fn document(&self) -> Document {
        Document {
            key: self.key.clone(),
            version: self.version,
            jurisdiction: self.jurisdiction.clone(),
            language: self.language.clone(),
            authoritative: self.authoritative,
            title: self.title.clone(),
            effective_at: self.effective_at,
            material: self.material,
            change_summary: self.change_summary.clone(),
            body: self.body.clone(),
        }
    }
}

/// The policy that consents refer to unless a client names another.
pub const DEFAULT_KEY: &str = "privacy-policy";

/// One document by id.
pub async fn get(conn: &impl ConnectionTrait, id: &str) -> Result<Policy, PolicyError> {
    model::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
        .ok_or(PolicyError::NotFound)
}

/// Every document, drafts included, for the admin console; newest version first.
pub async fn list_all(
    conn: &impl ConnectionTrait,
    key: Option<&str>,
) -> Result<Vec<Policy>, DbErr> {
    let mut query = model::Entity::find();
    if let Some(key) = key {
        query = query.filter(model::Column::Key.eq(key));
    }
    query
        .order_by_asc(model::Column::Key)
        .order_by_desc(model::Column::Version)
        .order_by_asc(model::Column::Jurisdiction)
        .order_by_asc(model::Column::Language)
        .all(conn)
        .await
}

/// One more than the highest version of `key`, drafts included: a new draft's default.
pub async fn next_version(conn: &impl ConnectionTrait, key: &str) -> Result<i32, DbErr> {
    Ok(list_all(conn, Some(key))
        .await?
        .iter()
        .map(|p| p.version)
        .max()
        .unwrap_or(0)
        + 1)
}

/// Published and retired documents of a policy: what the public may read.
pub async fn list_public(conn: &impl ConnectionTrait, key: &str) -> Result<Vec<Policy>, DbErr> {
    public(model::Entity::find(), key).all(conn).await
}

/// `query` narrowed to a policy's published and retired documents, newest version first.
fn public(query: Select<model::Entity>, key: &str) -> Select<model::Entity> {
    query
        .filter(model::Column::Key.eq(key))
        .filter(model::Column::Status.ne(PolicyStatus::Draft))
        .order_by_desc(model::Column::Version)
        .order_by_asc(model::Column::Jurisdiction)
        .order_by_asc(model::Column::Language)
}

/// [`list_public`] without the documents' text (`body` is empty), for the consent ledger, which
/// needs each document's identity, dates and hash on every decision but never its text.
pub async fn list_public_headers(
    conn: &impl ConnectionTrait,
    key: &str,
) -> Result<Vec<Policy>, DbErr> {
    let without_text = model::Entity::find()
        .select_only()
        .columns(model::Column::iter().filter(|c| !matches!(c, model::Column::Body)))
        .column_as(Expr::value(""), "body");
    public(without_text, key).all(conn).await
}

/// The document in force now for a jurisdiction and language: the latest published version
/// whose effective date has come, for the jurisdiction if it has documents of its own, else for
/// `*`; in the language asked for, else the authoritative one.
pub async fn current(
    conn: &impl ConnectionTrait,
    key: &str,
    jurisdiction: Option<&str>,
    language: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Policy>, DbErr> {
    let docs: Vec<Policy> = model::Entity::find()
        .filter(model::Column::Key.eq(key))
        .filter(model::Column::Status.eq(PolicyStatus::Published))
        .filter(model::Column::EffectiveAt.lte(now))
        .all(conn)
        .await?;
    Ok(pick(&docs, None, jurisdiction, language).cloned())
}

/// A published or retired document of one version, picked as [`current`] does.
pub async fn of_version(
    conn: &impl ConnectionTrait,
    key: &str,
    version: i32,
    jurisdiction: Option<&str>,
    language: Option<&str>,
) -> Result<Option<Policy>, DbErr> {
    let docs = model::Entity::find()
        .filter(model::Column::Key.eq(key))
        .filter(model::Column::Version.eq(version))
        .filter(model::Column::Status.ne(PolicyStatus::Draft))
        .all(conn)
        .await?;
    Ok(pick(&docs, Some(version), jurisdiction, language).cloned())
}

/// Picks from `docs`: the jurisdiction's own documents if it has any, else `*`; within those
/// the highest version (or `version`); then the language asked for (exactly, then by primary
/// subtag), else the authoritative document, else the first.
pub fn pick<'a>(
    docs: &'a [Policy],
    version: Option<i32>,
    jurisdiction: Option<&str>,
    language: Option<&str>,
) -> Option<&'a Policy> {
    let scope = |j: &str| {
        docs.iter()
            .filter(|d| d.jurisdiction == j && version.is_none_or(|v| d.version == v))
            .collect::<Vec<_>>()
    };
    let own = jurisdiction
        .map(|j| scope(&j.to_ascii_uppercase()))
        .unwrap_or_default();
    let candidates = if own.is_empty() { scope("*") } else { own };
    let latest = candidates.iter().map(|d| d.version).max()?;
    let in_version: Vec<&Policy> = candidates
        .into_iter()
        .filter(|d| d.version == latest)
        .collect();
    let primary = |tag: &str| tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
    language
        .and_then(|lang| {
            in_version
                .iter()
                .find(|d| d.language.eq_ignore_ascii_case(lang))
                .or_else(|| {
                    in_version
                        .iter()
                        .find(|d| primary(&d.language) == primary(lang))
                })
        })
        .or_else(|| in_version.iter().find(|d| d.authoritative))
        .or_else(|| in_version.first())
        .copied()
}

/// Creates a draft.
pub async fn create_draft(
    tx: &mut Tx,
    doc: Document,
    actor: &Actor,
) -> Result<Policy, PolicyError> {
    doc.validate().map_err(PolicyError::Invalid)?;
    ensure_newer(&*tx, &doc).await?;
    let policy = insert(&*tx, &doc, PolicyStatus::Draft).await?;
    audit::record(
        &*tx,
        actor,
        "policy.draft_created",
        Target::new("policy", &policy.id),
        json!({"key": policy.key, "version": policy.version,
               "jurisdiction": policy.jurisdiction, "language": policy.language}),
    )
    .await?;
    Ok(policy)
}

/// Edits a draft; published and retired documents are refused.
pub async fn update_draft(
    tx: &mut Tx,
    id: &str,
    changes: DraftChanges,
    actor: &Actor,
) -> Result<Policy, PolicyError> {
    let policy = get(&*tx, id).await?;
    if policy.status != PolicyStatus::Draft {
        return Err(PolicyError::NotDraft(policy.status));
    }
    let mut doc = policy.document();
    if let Some(v) = changes.authoritative {
        doc.authoritative = v;
    }
    if let Some(v) = changes.title {
        doc.title = v;
    }
    if let Some(v) = changes.body {
        doc.body = v;
    }
    if let Some(v) = changes.effective_at {
        doc.effective_at = clock::truncate(v);
    }
    if let Some(v) = changes.material {
        doc.material = v;
    }
    if let Some(v) = changes.change_summary {
        doc.change_summary = v;
    }
    doc.validate().map_err(PolicyError::Invalid)?;
    let mut row: model::ActiveModel = policy.into();
    row.authoritative = Set(doc.authoritative);
    row.title = Set(doc.title.clone());
    row.body = Set(doc.body.clone());
    row.effective_at = Set(doc.effective_at);
    row.material = Set(doc.material);
    row.change_summary = Set(doc.change_summary.clone());
    row.content_sha256 = Set(doc.content_sha256());
    row.updated_at = Set(clock::now());
    let policy = row.update(&*tx).await?;
    audit::record(
        &*tx,
        actor,
        "policy.draft_updated",
        Target::new("policy", &policy.id),
        json!({"content_sha256": policy.content_sha256}),
    )
    .await?;
    Ok(policy)
}

/// Publishes a draft. A material version then needs its rollout ([`crate::actions::policies::start_roll_out`]), after the
/// commit, to mark older consents for re-consent and email the people affected.
pub async fn publish(tx: &mut Tx, id: &str, actor: &Actor) -> Result<Policy, PolicyError> {
    let policy = get(&*tx, id).await?;
    if policy.status != PolicyStatus::Draft {
        return Err(PolicyError::NotDraft(policy.status));
    }
    ensure_newer(&*tx, &policy.document()).await?;
    let now = clock::now();
    let mut row: model::ActiveModel = policy.into();
    row.status = Set(PolicyStatus::Published);
    row.published_at = Set(Some(now));
    row.updated_at = Set(now);
    let policy = row.update(&*tx).await?;
    audit::record(
        &*tx,
        actor,
        "policy.published",
        Target::new("policy", &policy.id),
        json!({"key": policy.key, "version": policy.version, "material": policy.material,
               "content_sha256": policy.content_sha256}),
    )
    .await?;
    Ok(policy)
}

/// Records that a version's re-consent rollout is finished (or that it needed none).
pub async fn mark_rolled_out(db: &Db, policy_id: &str) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    model::Entity::update_many()
        .col_expr(model::Column::ReconsentDoneAt, Expr::value(clock::now()))
        .filter(model::Column::Id.eq(policy_id))
        .exec(&tx)
        .await?;
    tx.commit().await
}

/// Published versions whose re-consent rollout has not finished (just published, or
/// interrupted by a crash or a restart).
pub async fn unfinished_rollouts(conn: &impl ConnectionTrait) -> Result<Vec<Policy>, DbErr> {
    unfinished().all(conn).await
}

fn unfinished() -> sea_orm::Select<model::Entity> {
    model::Entity::find()
        .filter(model::Column::Status.ne(PolicyStatus::Draft))
        .filter(model::Column::ReconsentDoneAt.is_null())
}

/// How many rollouts have not finished, for monitoring.
pub async fn rollouts_running(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    sea_orm::PaginatorTrait::count(unfinished(), conn).await
}

/// Retires a published document: it stays readable as proof, but no new consent may cite it.
pub async fn retire(tx: &mut Tx, id: &str, actor: &Actor) -> Result<Policy, PolicyError> {
    let policy = get(&*tx, id).await?;
    if policy.status != PolicyStatus::Published {
        return Err(PolicyError::NotPublished);
    }
    let now = clock::now();
    let mut row: model::ActiveModel = policy.into();
    row.status = Set(PolicyStatus::Retired);
    row.retired_at = Set(Some(now));
    row.updated_at = Set(now);
    let policy = row.update(&*tx).await?;
    audit::record(
        &*tx,
        actor,
        "policy.retired",
        Target::new("policy", &policy.id),
        json!({"key": policy.key, "version": policy.version}),
    )
    .await?;
    Ok(policy)
}

/// Refuses a version that is not above every published version of the same document series.
async fn ensure_newer(conn: &impl ConnectionTrait, doc: &Document) -> Result<(), PolicyError> {
    let published = model::Entity::find()
        .filter(model::Column::Key.eq(&doc.key))
        .filter(model::Column::Jurisdiction.eq(&doc.jurisdiction))
        .filter(model::Column::Language.eq(&doc.language))
        .filter(model::Column::Status.ne(PolicyStatus::Draft))
        .order_by_desc(model::Column::Version)
        .one(conn)
        .await?;
    match published {
        Some(p) if p.version >= doc.version => Err(PolicyError::NotNewer {
            version: doc.version,
            published: p.version,
        }),
        _ => Ok(()),
    }
}

async fn insert(tx: &Tx, doc: &Document, status: PolicyStatus) -> Result<Policy, PolicyError> {
    let now = clock::now();
    let published = status == PolicyStatus::Published;
    let row = model::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        key: Set(doc.key.clone()),
        version: Set(doc.version),
        jurisdiction: Set(doc.jurisdiction.clone()),
        language: Set(doc.language.clone()),
        authoritative: Set(doc.authoritative),
        title: Set(doc.title.clone()),
        body: Set(doc.body.clone()),
        content_sha256: Set(doc.content_sha256()),
        status: Set(status),
        effective_at: Set(doc.effective_at),
        published_at: Set(published.then_some(now)),
        retired_at: Set(None),
        material: Set(doc.material),
        change_summary: Set(doc.change_summary.clone()),
        reconsent_done_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    row.insert(tx).await.map_err(|e| match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => PolicyError::Exists,
        _ => PolicyError::Db(e),
    })
}

/// The document with this identity, if any.
async fn find_document(
    conn: &impl ConnectionTrait,
    doc: &Document,
) -> Result<Option<Policy>, DbErr> {
    model::Entity::find()
        .filter(model::Column::Key.eq(&doc.key))
        .filter(model::Column::Version.eq(doc.version))
        .filter(model::Column::Jurisdiction.eq(&doc.jurisdiction))
        .filter(model::Column::Language.eq(&doc.language))
        .one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(version: i32, jurisdiction: &str, language: &str, authoritative: bool) -> Policy {
        Policy {
            id: format!("{version}-{jurisdiction}-{language}"),
            key: "privacy-policy".into(),
            version,
            jurisdiction: jurisdiction.into(),
            language: language.into(),
            authoritative,
            title: String::new(),
            body: String::new(),
            content_sha256: String::new(),
            status: PolicyStatus::Published,
            effective_at: Utc::now(),
            published_at: None,
            retired_at: None,
            material: false,
            change_summary: None,
            reconsent_done_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn documents_fall_back_to_the_authoritative_language_then_everywhere() {
        let docs = vec![
            doc(1, "*", "en", true),
            doc(2, "*", "en", true),
            doc(2, "CN", "zh-CN", true),
            doc(2, "CN", "en", false),
        ];
        let id = |j, l| pick(&docs, None, j, l).unwrap().id.clone();
        assert_eq!(id(Some("CN"), Some("en")), "2-CN-en");
        assert_eq!(id(Some("cn"), Some("zh")), "2-CN-zh-CN");
        assert_eq!(id(Some("CN"), Some("fr")), "2-CN-zh-CN");
        assert_eq!(id(Some("DE"), Some("de")), "2-*-en");
        assert_eq!(id(None, None), "2-*-en");
        assert_eq!(
            pick(&docs, Some(1), Some("CN"), Some("zh-CN")).unwrap().id,
            "1-*-en",
            "a version without a document for the jurisdiction falls back to `*`"
        );
    }
}
