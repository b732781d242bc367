//! Retention rules over HTTP: viewers read them and the coverage report, admins change them.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{Gap, Rule, RuleFields};
use crate::{
    AppState,
    api_tags::ApiTags,
    auth::{ApiKey, Role},
    error::ApiError,
};

pub struct RetentionApi {
    state: AppState,
}

impl RetentionApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// How long a category of data is kept.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RuleView {
    category: String,
    /// ISO 8601 duration: `P30D`, `P3M`, `P1Y`.
    period: String,
    /// `created`, or the event that starts the clock (sent by the main app with
    /// `data.recorded`), e.g. `training_completed`.
    clock_start: String,
    /// `delete` or `anonymize`.
    action: String,
    /// How long before the purge the person is told; absent for no notice.
    notice_before: Option<String>,
    /// Whether the person is told after the purge.
    notify_after: bool,
    /// Items of a held category are never purged.
    legal_hold: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Rule> for RuleView {
    fn from(r: Rule) -> Self {
        Self {
            category: r.category,
            period: r.period,
            clock_start: r.clock_start,
            action: r.action,
            notice_before: r.notice_before,
            notify_after: r.notify_after,
            legal_hold: r.legal_hold,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A rule's settings.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RuleBody {
    #[oai(validator(max_length = 32))]
    period: String,
    #[oai(default = "default_clock_start", validator(max_length = 64))]
    clock_start: String,
    #[oai(default = "default_action", validator(max_length = 16))]
    action: String,
    #[oai(validator(max_length = 32))]
    notice_before: Option<String>,
    #[oai(default)]
    notify_after: bool,
    #[oai(default)]
    legal_hold: bool,
}

fn default_clock_start() -> String {
    super::CREATED.into()
}

fn default_action() -> String {
    "delete".into()
}

/// A new rule.
#[derive(Object)]
struct NewRule {
    #[oai(validator(min_length = 1, max_length = 64))]
    category: String,
    #[oai(flatten)]
    rule: RuleBody,
}

impl From<RuleBody> for RuleFields {
    fn from(b: RuleBody) -> Self {
        Self {
            period: b.period,
            clock_start: b.clock_start,
            action: b.action,
            notice_before: b.notice_before,
            notify_after: b.notify_after,
            legal_hold: b.legal_hold,
        }
    }
}

/// A category without a rule: a compliance gap.
#[derive(Object)]
struct GapView {
    category: String,
    /// Items the main app has registered in it.
    items: i64,
    /// Purposes that name it.
    purposes: Vec<String>,
}

impl From<Gap> for GapView {
    fn from(g: Gap) -> Self {
        Self {
            category: g.category,
            items: g.items,
            purposes: g.purposes,
        }
    }
}

#[derive(ApiResponse)]
enum Created {
    /// The rule; the category's items are dated by it.
    #[oai(status = 201)]
    Created(Json<RuleView>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// Deleted; the category's items are undated.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi]
impl RetentionApi {
    /// Retention rules
    #[oai(
        path = "/v1/admin/retention-rules",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn list(&self, auth: ApiKey) -> Result<Json<Vec<RuleView>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let rules = super::list(self.state.db.conn()).await?;
        Ok(Json(rules.into_iter().map(Into::into).collect()))
    }

    /// Create a retention rule
    #[oai(
        path = "/v1/admin/retention-rules",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn create(&self, auth: ApiKey, body: Json<NewRule>) -> Result<Created, ApiError> {
        auth.0.require(Role::Admin)?;
        let rule = super::create(
            &self.state.db,
            &body.0.category,
            body.0.rule.into(),
            &auth.0.actor(),
        )
        .await?;
        Ok(Created::Created(Json(rule.into())))
    }

    /// Categories without a rule
    ///
    /// Categories of registered data items, or named by purposes, that no rule covers: data
    /// kept with no promise of when it goes.
    #[oai(
        path = "/v1/admin/retention-rules/coverage",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn coverage(&self, auth: ApiKey) -> Result<Json<Vec<GapView>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let gaps = super::gaps(self.state.db.conn()).await?;
        Ok(Json(gaps.into_iter().map(Into::into).collect()))
    }

    /// One retention rule
    #[oai(
        path = "/v1/admin/retention-rules/:category",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn get(&self, auth: ApiKey, category: Path<String>) -> Result<Json<RuleView>, ApiError> {
        auth.0.require(Role::Viewer)?;
        Ok(Json(
            super::get(self.state.db.conn(), &category.0).await?.into(),
        ))
    }

    /// Change a retention rule
    ///
    /// Takes effect on the items already held: each one's purge date is computed again.
    #[oai(
        path = "/v1/admin/retention-rules/:category",
        method = "put",
        tag = "ApiTags::Admin"
    )]
    async fn update(
        &self,
        auth: ApiKey,
        category: Path<String>,
        body: Json<RuleBody>,
    ) -> Result<Json<RuleView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let rule =
            super::update(&self.state.db, &category.0, body.0.into(), &auth.0.actor()).await?;
        Ok(Json(rule.into()))
    }

    /// Delete a retention rule
    #[oai(
        path = "/v1/admin/retention-rules/:category",
        method = "delete",
        tag = "ApiTags::Admin"
    )]
    async fn delete(&self, auth: ApiKey, category: Path<String>) -> Result<Deleted, ApiError> {
        auth.0.require(Role::Admin)?;
        super::delete(&self.state.db, &category.0, &auth.0.actor()).await?;
        Ok(Deleted::NoContent)
    }
}
