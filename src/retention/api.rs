//! Retention over HTTP: viewers read the rules, the coverage report and the purge runs; admins
//! change rules, hold items and start runs; the main app acknowledges erasure jobs.

use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{
    Gap, RetentionAction, Rule, RuleFields,
    model::{BatchStatus, RunStatus, RunTrigger},
    purge::{self, PurgeRun, Report},
};
use crate::{
    AppState,
    actions::{purges, retention_rules},
    api_tags::ApiTags,
    auth::{ApiKey, Role, SubjectToken},
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
    action: RetentionAction,
    /// What the category is called, per language tag.
    titles: std::collections::BTreeMap<String, String>,
    /// Periods a person may choose instead of `period`.
    options: Vec<String>,
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
        let options = super::choices::options(&r);
        Self {
            category: r.category,
            period: r.period,
            clock_start: r.clock_start,
            action: r.action,
            options,
            titles: r
                .titles
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default(),
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
    /// Periods a person may choose instead of `period` (`["P0D", "P30D", "P1Y"]`), through
    /// `PUT /v1/me/retention/{category}`.
    #[oai(default, validator(max_items = 10))]
    options: Vec<String>,
    /// What the category is called in emails and pages, per language tag:
    /// `{"en": "photos you uploaded", "zh-CN": "您上传的照片"}`. Without one, the key is shown.
    #[oai(default)]
    titles: std::collections::BTreeMap<String, String>,
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
            titles: b.titles,
            options: b.options,
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

/// A purge run: what it did, or for a dry run what it would do.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PurgeRunView {
    id: String,
    trigger: RunTrigger,
    dry_run: bool,
    /// `interrupted`: its process stopped mid-run; the next run carried on.
    status: RunStatus,
    as_of: DateTime<Utc>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    items_examined: i64,
    /// Items sent to the main app to purge.
    items_purged: i64,
    notices_queued: i64,
    errors: Vec<String>,
    report: Report,
    /// The run's erasure jobs still awaiting the main app's acknowledgement (detail view).
    jobs_pending: Option<u64>,
    /// The run's erasure jobs acknowledged (detail view).
    jobs_acknowledged: Option<u64>,
}

impl From<PurgeRun> for PurgeRunView {
    fn from(r: PurgeRun) -> Self {
        Self {
            report: serde_json::from_str(&r.report).unwrap_or_default(),
            errors: r
                .errors
                .as_deref()
                .and_then(|e| serde_json::from_str(e).ok())
                .unwrap_or_default(),
            id: r.id,
            trigger: r.trigger,
            dry_run: r.dry_run,
            status: r.status,
            as_of: r.as_of,
            started_at: r.started_at,
            finished_at: r.finished_at,
            items_examined: r.items_examined,
            items_purged: r.items_purged,
            notices_queued: r.notices_queued,
            jobs_pending: None,
            jobs_acknowledged: None,
        }
    }
}

/// Start a purge run.
#[derive(Object)]
struct NewRun {
    /// Report what a run would do, and change nothing but the run record.
    #[oai(default)]
    dry_run: bool,
}

#[derive(ApiResponse)]
enum Started {
    /// The run has started; follow it at `/v1/admin/purge-runs/{id}`.
    #[oai(status = 202)]
    Accepted(Json<PurgeRunView>),
}

/// An erasure job, as acknowledged.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct BatchView {
    batch_id: String,
    run_id: String,
    status: BatchStatus,
    items: i64,
    acknowledged_at: Option<DateTime<Utc>>,
}

/// Put an item on legal hold, or release it.
#[derive(Object)]
struct HoldBody {
    held: bool,
    /// Why (a litigation, an investigation); kept in the audit log.
    #[oai(validator(min_length = 1, max_length = 500))]
    reason: String,
}

/// An item's hold.
#[derive(Object)]
struct HoldView {
    item_ref: String,
    category: String,
    legal_hold: bool,
    purge_after: Option<DateTime<Utc>>,
}

/// A category whose retention the person may choose.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RetentionChoiceView {
    category: String,
    /// What the category is called, in the person's language.
    title: String,
    /// How long it is kept unless the person chooses otherwise.
    period: String,
    /// The periods the person may choose from.
    options: Vec<String>,
    /// The person's choice, if they made one (and it is still offered).
    chosen: Option<String>,
    chosen_at: Option<DateTime<Utc>>,
}

/// A person's choice.
#[derive(Object)]
struct RetentionChoiceBody {
    /// One of the category's `options`.
    #[oai(validator(max_length = 32))]
    period: String,
}

/// The answer to a choice.
#[derive(Object)]
struct RetentionChosen {
    category: String,
    period: String,
    /// The person's items of the category dated again by it.
    items_dated: u64,
}

#[OpenApi]
impl RetentionApi {
    /// How long my data is kept, where I may choose
    ///
    /// The categories whose retention rule offers periods to choose from, with the person's
    /// current choice.
    #[oai(path = "/v1/me/retention", method = "get", tag = "ApiTags::Portal")]
    async fn my_retention(
        &self,
        auth: SubjectToken,
    ) -> Result<Json<Vec<RetentionChoiceView>>, ApiError> {
        let conn = self.state.db.conn();
        let person = crate::subject::find(conn, &auth.0.0).await?;
        let locale = person.as_ref().and_then(|p| p.locale.as_deref());
        let offered = super::choices::offered(conn, person.as_ref().map(|p| p.id.as_str())).await?;
        Ok(Json(
            offered
                .into_iter()
                .map(|(rule, choice)| RetentionChoiceView {
                    title: super::category_title(Some(&rule), &rule.category, locale),
                    options: super::choices::options(&rule),
                    chosen: choice.as_ref().map(|c| c.period.clone()),
                    chosen_at: choice.map(|c| c.chosen_at),
                    category: rule.category,
                    period: rule.period,
                })
                .collect(),
        ))
    }

    /// Choose how long a category of my data is kept
    ///
    /// Among the periods its rule offers; recorded with the browser as evidence, like a consent
    /// decision, and the person's items of the category are dated by it at once. A period not
    /// offered: 422.
    #[oai(
        path = "/v1/me/retention/:category",
        method = "put",
        tag = "ApiTags::Portal"
    )]
    async fn choose_retention(
        &self,
        auth: SubjectToken,
        req: &poem::Request,
        #[oai(validator(min_length = 1, max_length = 64))] category: Path<String>,
        body: Json<RetentionChoiceBody>,
    ) -> Result<Json<RetentionChosen>, ApiError> {
        let (user_agent, ip) = crate::http::client_evidence(req);
        let evidence = super::choices::Evidence {
            channel: "portal".into(),
            user_agent: crate::consent::evidence::user_agent(user_agent.as_deref()),
            ip: crate::consent::evidence::ip(&self.state.config.consent, ip),
        };
        let items_dated = retention_rules::choose(
            &self.state.db,
            &auth.0.0,
            &category.0,
            &body.0.period,
            evidence,
        )
        .await?;
        Ok(Json(RetentionChosen {
            category: category.0,
            period: body.0.period,
            items_dated,
        }))
    }

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
        let rule = retention_rules::create(
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
            retention_rules::update(&self.state.db, &category.0, body.0.into(), &auth.0.actor())
                .await?;
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
        retention_rules::delete(&self.state.db, &category.0, &auth.0.actor()).await?;
        Ok(Deleted::NoContent)
    }

    /// Purge runs
    ///
    /// The newest first.
    #[oai(path = "/v1/admin/purge-runs", method = "get", tag = "ApiTags::Admin")]
    async fn runs(
        &self,
        auth: ApiKey,
        /// How many runs (1-200).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "200"))
        )]
        limit: Query<u64>,
    ) -> Result<Json<Vec<PurgeRunView>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let runs = purge::list(self.state.db.conn(), limit.0).await?;
        Ok(Json(runs.into_iter().map(Into::into).collect()))
    }

    /// Run the purge now
    ///
    /// Starts a run at once (one at a time: 409 while another runs). A dry run reports what a
    /// real run would do and writes nothing but its record.
    #[oai(path = "/v1/admin/purge-runs", method = "post", tag = "ApiTags::Admin")]
    async fn start_run(&self, auth: ApiKey, body: Json<NewRun>) -> Result<Started, ApiError> {
        auth.0.require(Role::Admin)?;
        let run = purges::launch(
            &self.state.db,
            &self.state.config,
            body.0.dry_run,
            &auth.0.actor(),
        )
        .await?;
        Ok(Started::Accepted(Json(run.into())))
    }

    /// One purge run
    #[oai(
        path = "/v1/admin/purge-runs/:id",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn run(&self, auth: ApiKey, id: Path<String>) -> Result<Json<PurgeRunView>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let conn = self.state.db.conn();
        let run = purge::get(conn, &id.0).await?;
        let (pending, acknowledged) = purge::batch_counts(conn, &run.id).await?;
        let mut view = PurgeRunView::from(run);
        view.jobs_pending = Some(pending);
        view.jobs_acknowledged = Some(acknowledged);
        Ok(Json(view))
    }

    /// Acknowledge an erasure job
    ///
    /// The main app's answer to a `retention.purge_requested` webhook once it has deleted (or
    /// anonymised) every item of the job. Repeating it changes nothing.
    #[oai(
        path = "/v1/purge-batches/:id/complete",
        method = "post",
        tag = "ApiTags::Service"
    )]
    async fn complete_batch(
        &self,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<Json<BatchView>, ApiError> {
        auth.0.require(Role::Service)?;
        let batch = purges::acknowledge_batch(&self.state.db, &id.0).await?;
        Ok(Json(BatchView {
            batch_id: batch.id,
            run_id: batch.run_id,
            status: batch.status,
            items: batch.items,
            acknowledged_at: batch.acknowledged_at,
        }))
    }

    /// Hold or release one item
    ///
    /// A held item is never purged, whatever its date; runs report it among the held items.
    #[oai(
        path = "/v1/admin/subjects/:external_id/items/:item_ref/legal-hold",
        method = "put",
        tag = "ApiTags::Admin"
    )]
    async fn hold(
        &self,
        auth: ApiKey,
        external_id: Path<String>,
        item_ref: Path<String>,
        body: Json<HoldBody>,
    ) -> Result<Json<HoldView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let item = retention_rules::set_hold(
            &self.state.db,
            &external_id.0,
            &item_ref.0,
            body.0.held,
            &body.0.reason,
            &auth.0.actor(),
        )
        .await?;
        Ok(Json(HoldView {
            item_ref: item.external_ref,
            category: item.category,
            legal_hold: item.legal_hold,
            purge_after: item.purge_after,
        }))
    }
}

fn default_limit() -> u64 {
    50
}
