//! `/v1/policies/...` (public: current document, versions, diff) and `/v1/admin/policies/...`
//! (admin: drafts, publish, retire).

use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};

use super::{
    Document, DraftChanges, Policy, PolicyStatus,
    diff::{self, DiffLine},
};
use crate::{
    AppState,
    actions::policies,
    api_tags::ApiTags,
    auth::{ApiKey, Role},
    clock,
    error::ApiError,
};

pub struct PoliciesApi {
    state: AppState,
}

impl PoliciesApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// A policy document without its body.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PolicySummary {
    id: String,
    key: String,
    version: i32,
    /// ISO 3166-1 alpha-2 code, or `*` for everywhere without a document of its own.
    jurisdiction: String,
    language: String,
    /// The language version that prevails in a dispute.
    authoritative: bool,
    title: String,
    status: PolicyStatus,
    effective_at: DateTime<Utc>,
    #[oai(skip_serializing_if_is_none)]
    published_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    retired_at: Option<DateTime<Utc>>,
    /// A material change requires fresh consent.
    material: bool,
    #[oai(skip_serializing_if_is_none)]
    change_summary: Option<String>,
    /// SHA-256 of the document's canonical form; consent events quote it.
    content_sha256: String,
}

/// A policy document with its Markdown body.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PolicyView {
    #[oai(flatten)]
    summary: PolicySummary,
    body: String,
    /// When re-consent marking and emails for a material version finished.
    #[oai(skip_serializing_if_is_none)]
    reconsent_done_at: Option<DateTime<Utc>>,
    /// While the re-consent rollout of a published material version runs: the grants it has
    /// still to mark (admin view only).
    #[oai(skip_serializing_if_is_none)]
    reconsent_remaining: Option<u64>,
}

impl From<Policy> for PolicySummary {
    fn from(p: Policy) -> Self {
        Self {
            id: p.id,
            key: p.key,
            version: p.version,
            jurisdiction: p.jurisdiction,
            language: p.language,
            authoritative: p.authoritative,
            title: p.title,
            status: p.status,
            effective_at: p.effective_at,
            published_at: p.published_at,
            retired_at: p.retired_at,
            material: p.material,
            change_summary: p.change_summary,
            content_sha256: p.content_sha256,
        }
    }
}

impl From<Policy> for PolicyView {
    fn from(mut p: Policy) -> Self {
        let body = std::mem::take(&mut p.body);
        let reconsent_done_at = p.reconsent_done_at;
        Self {
            summary: p.into(),
            body,
            reconsent_done_at,
            reconsent_remaining: None,
        }
    }
}

/// A line diff between two versions.
#[derive(Object)]
struct PolicyDiff {
    from: PolicySummary,
    to: PolicySummary,
    lines: Vec<DiffLine>,
}

/// A new draft.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct NewDraft {
    #[oai(validator(min_length = 1, max_length = 64))]
    key: String,
    /// Defaults to one more than the highest version of this key.
    #[oai(validator(minimum(value = "1")))]
    version: Option<i32>,
    #[oai(default = "everywhere", validator(min_length = 1, max_length = 2))]
    jurisdiction: String,
    #[oai(validator(min_length = 2, max_length = 16))]
    language: String,
    #[oai(default)]
    authoritative: bool,
    #[oai(validator(min_length = 1, max_length = 300))]
    title: String,
    /// Markdown.
    #[oai(validator(min_length = 1, max_length = 500000))]
    body: String,
    effective_at: DateTime<Utc>,
    #[oai(default)]
    material: bool,
    /// Required for a material change: what changed, in the document's language.
    #[oai(validator(max_length = 4000))]
    change_summary: Option<String>,
}

fn everywhere() -> String {
    "*".into()
}

/// Changes to a draft; absent fields stay as they are, `change_summary: null` clears it.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct DraftPatch {
    authoritative: Option<bool>,
    #[oai(validator(min_length = 1, max_length = 300))]
    title: Option<String>,
    #[oai(validator(min_length = 1, max_length = 500000))]
    body: Option<String>,
    effective_at: Option<DateTime<Utc>>,
    material: Option<bool>,
    #[oai(validator(max_length = 4000))]
    change_summary: MaybeUndefined<String>,
}

#[derive(ApiResponse)]
enum CreateDraftResponse {
    /// The draft was created.
    #[oai(status = 201)]
    Created(Json<PolicyView>),
}

/// Which document of a version to show.
struct Selection {
    jurisdiction: Option<String>,
    lang: Option<String>,
}

impl PoliciesApi {
    async fn document_of_version(
        &self,
        key: &str,
        version: i32,
        sel: &Selection,
    ) -> Result<Policy, ApiError> {
        super::of_version(
            self.state.db.conn(),
            key,
            version,
            sel.jurisdiction.as_deref(),
            sel.lang.as_deref(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{key} has no published version {version}")))
    }
}

#[OpenApi]
impl PoliciesApi {
    /// The policy in force
    ///
    /// The latest published version whose effective date has come, for the jurisdiction (or
    /// `*`) and language (or the authoritative language).
    #[oai(path = "/v1/policies/:key", method = "get", tag = "ApiTags::Public")]
    async fn current(
        &self,
        #[oai(validator(max_length = 64))] key: Path<String>,
        #[oai(validator(max_length = 2))] jurisdiction: Query<Option<String>>,
        #[oai(validator(max_length = 16))] lang: Query<Option<String>>,
    ) -> Result<Json<PolicyView>, ApiError> {
        let policy = super::current(
            self.state.db.conn(),
            &key.0,
            jurisdiction.0.as_deref(),
            lang.0.as_deref(),
            clock::now(),
        )
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no policy `{}` is in force", key.0)))?;
        Ok(Json(policy.into()))
    }

    /// Every published version of a policy
    ///
    /// All documents (each jurisdiction and language) of every published or retired version,
    /// newest first, without bodies.
    #[oai(
        path = "/v1/policies/:key/versions",
        method = "get",
        tag = "ApiTags::Public"
    )]
    async fn versions(
        &self,
        #[oai(validator(max_length = 64))] key: Path<String>,
    ) -> Result<Json<Vec<PolicySummary>>, ApiError> {
        let docs = super::list_public(self.state.db.conn(), &key.0).await?;
        if docs.is_empty() {
            return Err(ApiError::not_found(format!("no policy `{}`", key.0)));
        }
        Ok(Json(docs.into_iter().map(Into::into).collect()))
    }

    /// One version of a policy
    #[oai(
        path = "/v1/policies/:key/versions/:version",
        method = "get",
        tag = "ApiTags::Public"
    )]
    async fn version(
        &self,
        #[oai(validator(max_length = 64))] key: Path<String>,
        version: Path<i32>,
        #[oai(validator(max_length = 2))] jurisdiction: Query<Option<String>>,
        #[oai(validator(max_length = 16))] lang: Query<Option<String>>,
    ) -> Result<Json<PolicyView>, ApiError> {
        let sel = Selection {
            jurisdiction: jurisdiction.0,
            lang: lang.0,
        };
        Ok(Json(
            self.document_of_version(&key.0, version.0, &sel)
                .await?
                .into(),
        ))
    }

    /// What changed between two versions
    ///
    /// A line diff of the bodies of the two documents chosen for the jurisdiction and language.
    /// Rate-limited per client like the other public routes that do work.
    #[oai(
        path = "/v1/policies/:key/diff",
        method = "get",
        tag = "ApiTags::Public"
    )]
    async fn diff(
        &self,
        req: &poem::Request,
        #[oai(validator(max_length = 64))] key: Path<String>,
        from: Query<i32>,
        to: Query<i32>,
        #[oai(validator(max_length = 2))] jurisdiction: Query<Option<String>>,
        #[oai(validator(max_length = 16))] lang: Query<Option<String>>,
    ) -> Result<Json<PolicyDiff>, ApiError> {
        self.state.rate_limiter.check(crate::http::client_ip(req))?;
        let sel = Selection {
            jurisdiction: jurisdiction.0,
            lang: lang.0,
        };
        let a = self.document_of_version(&key.0, from.0, &sel).await?;
        let b = self.document_of_version(&key.0, to.0, &sel).await?;
        let lines = diff::lines(&a.body, &b.body).await;
        Ok(Json(PolicyDiff {
            from: a.into(),
            to: b.into(),
            lines,
        }))
    }

    /// Every policy document, drafts included
    #[oai(path = "/v1/admin/policies", method = "get", tag = "ApiTags::Admin")]
    async fn admin_list(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 64))] key: Query<Option<String>>,
    ) -> Result<Json<Vec<PolicySummary>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let docs = super::list_all(self.state.db.conn(), key.0.as_deref()).await?;
        Ok(Json(docs.into_iter().map(Into::into).collect()))
    }

    /// Create a draft
    #[oai(path = "/v1/admin/policies", method = "post", tag = "ApiTags::Admin")]
    async fn create_draft(
        &self,
        auth: ApiKey,
        body: Json<NewDraft>,
    ) -> Result<CreateDraftResponse, ApiError> {
        auth.0.require(Role::Admin)?;
        let b = body.0;
        let version = match b.version {
            Some(v) => v,
            None => super::next_version(self.state.db.conn(), &b.key).await?,
        };
        let doc = Document {
            key: b.key,
            version,
            jurisdiction: b.jurisdiction,
            language: b.language,
            authoritative: b.authoritative,
            title: b.title,
            effective_at: clock::truncate(b.effective_at),
            material: b.material,
            change_summary: b.change_summary,
            body: b.body,
        };
        let policy = policies::create_draft(&self.state.db, doc, &auth.0.actor()).await?;
        Ok(CreateDraftResponse::Created(Json(policy.into())))
    }

    /// One policy document
    #[oai(
        path = "/v1/admin/policies/:id",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn admin_get(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 36))] id: Path<String>,
    ) -> Result<Json<PolicyView>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let conn = self.state.db.conn();
        let policy = super::get(conn, &id.0).await?;
        let rolling_out = policy.material
            && policy.status != super::PolicyStatus::Draft
            && policy.reconsent_done_at.is_none();
        let remaining = match rolling_out {
            true => Some(crate::consent::reconsent::remaining(conn, &policy).await?),
            false => None,
        };
        let mut view = PolicyView::from(policy);
        view.reconsent_remaining = remaining;
        Ok(Json(view))
    }

    /// Edit a draft
    ///
    /// Published and retired documents never change: 409.
    #[oai(
        path = "/v1/admin/policies/:id",
        method = "patch",
        tag = "ApiTags::Admin"
    )]
    async fn edit_draft(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 36))] id: Path<String>,
        body: Json<DraftPatch>,
    ) -> Result<Json<PolicyView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let b = body.0;
        let changes = DraftChanges {
            authoritative: b.authoritative,
            title: b.title,
            body: b.body,
            effective_at: b.effective_at,
            material: b.material,
            change_summary: match b.change_summary {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
        };
        let policy = policies::save_draft(&self.state.db, &id.0, changes, &auth.0.actor()).await?;
        Ok(Json(policy.into()))
    }

    /// Publish a draft
    ///
    /// The document becomes public and immutable; `effective_at` may lie in the future. For a
    /// material version, consents given under older versions are then marked `needs_reconsent`
    /// and each person affected is emailed the change summary, in the background: the answer
    /// comes at once, and `reconsent_done_at` is set when the rollout has finished (a crash
    /// resumes it on any replica once the rollout's lease is free).
    #[oai(
        path = "/v1/admin/policies/:id/publish",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn publish(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 36))] id: Path<String>,
    ) -> Result<Json<PolicyView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let policy =
            policies::publish(&self.state.db, &self.state.config, &id.0, &auth.0.actor()).await?;
        Ok(Json(policy.into()))
    }

    /// Retire a published document
    ///
    /// It stays readable as proof of what people agreed to, but new consent cannot cite it.
    #[oai(
        path = "/v1/admin/policies/:id/retire",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn retire(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 36))] id: Path<String>,
    ) -> Result<Json<PolicyView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let policy = policies::retire(&self.state.db, &id.0, &auth.0.actor()).await?;
        Ok(Json(policy.into()))
    }
}
