//! The consent ledger over HTTP: the portal (`/v1/me/consents...`, subject token), the main
//! app (`/v1/subjects/{id}/consents...` and `/v1/consents/check`, service key) and the admin
//! console (`/v1/admin/...`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{
    Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{
    Decision, PolicyRef, RecordRequest, Recorded,
    ledger::{self, ChainReport},
    model::{Action, ConsentActor, ConsentStatus, events},
    receipt::Receipt,
};
use crate::vocab::CountryCode;
use crate::{
    AppState, actions,
    api_tags::ApiTags,
    auth::{ApiKey, Role, SubjectToken},
    clock,
    error::ApiError,
};

pub struct ConsentApi {
    state: AppState,
}

impl ConsentApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// The policy a decision was made under, by default `privacy-policy`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(crate) struct PolicyShown {
    /// The version shown to the person.
    #[oai(validator(minimum(value = "1")))]
    policy_version: i32,
    #[oai(
        default = "default_policy_key",
        validator(min_length = 1, max_length = 64)
    )]
    policy_key: String,
    /// Pins the exact document (language and jurisdiction) shown; otherwise the document for
    /// the person's jurisdiction and language is assumed.
    #[oai(validator(max_length = 36))]
    policy_id: Option<String>,
    /// The language the person saw the request in.
    #[oai(validator(max_length = 16))]
    language: Option<String>,
}

fn default_policy_key() -> String {
    crate::policy::DEFAULT_KEY.into()
}

impl PolicyShown {
    pub(crate) fn policy_ref(&self) -> PolicyRef {
        PolicyRef {
            key: self.policy_key.clone(),
            version: self.policy_version,
            id: self.policy_id.clone(),
        }
    }
}

/// One decision.
#[derive(Object)]
pub(crate) struct DecisionBody {
    #[oai(validator(min_length = 1, max_length = 64))]
    purpose: String,
    /// `true` grants; `false` withdraws a grant, or refuses when nothing was granted.
    granted: bool,
}

/// A decision for one purpose (`PUT /v1/me/consents/{purpose}`).
#[derive(Object)]
struct SetConsent {
    granted: bool,
    #[oai(flatten)]
    policy: PolicyShown,
}

/// Several decisions made on one screen. A purpose that needs separate consent must be granted
/// alone.
#[derive(Object)]
struct SetConsents {
    #[oai(validator(min_items = 1, max_items = 50))]
    decisions: Vec<DecisionBody>,
    #[oai(flatten)]
    policy: PolicyShown,
}

/// Decisions the main app captured in its own interface, with the evidence it saw.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ReportedConsents {
    #[oai(validator(min_items = 1, max_items = 50))]
    decisions: Vec<DecisionBody>,
    #[oai(flatten)]
    policy: PolicyShown,
    /// Where: `web`, `ios`, `android`, ...
    #[oai(
        default = "default_channel",
        validator(min_length = 1, max_length = 32)
    )]
    channel: String,
    /// The person's country, if the subject record has none.
    jurisdiction: Option<CountryCode>,
    #[oai(validator(max_length = 1024))]
    user_agent: Option<String>,
    /// The person's IP address; stored truncated or hashed.
    ip: Option<IpAddr>,
    /// When the person decided; defaults to now.
    occurred_at: Option<DateTime<Utc>>,
}

fn default_channel() -> String {
    "main_app".into()
}

/// An admin correction of the record.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Correction {
    #[oai(validator(min_items = 1, max_items = 50))]
    decisions: Vec<DecisionBody>,
    #[oai(flatten)]
    policy: PolicyShown,
    /// Why the record is corrected (e.g. a paper form received by post).
    #[oai(validator(min_length = 1, max_length = 2000))]
    reason: String,
    occurred_at: Option<DateTime<Utc>>,
}

/// The state of one purpose after a request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(crate) struct RecordedView {
    purpose: String,
    status: ConsentStatus,
    policy_version: i32,
    needs_reconsent: bool,
    /// The event written; absent when the decision repeated the current state.
    #[oai(skip_serializing_if_is_none)]
    event_id: Option<String>,
    /// Whether an event was written.
    recorded: bool,
}

impl From<Recorded> for RecordedView {
    fn from(r: Recorded) -> Self {
        Self {
            recorded: r.event_id.is_some(),
            purpose: r.purpose,
            status: r.status,
            policy_version: r.policy_version,
            needs_reconsent: r.needs_reconsent,
            event_id: r.event_id,
        }
    }
}

/// The current state of one purpose for a person.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(crate) struct ConsentView {
    purpose: String,
    status: ConsentStatus,
    policy_key: String,
    policy_version: i32,
    needs_reconsent: bool,
    #[oai(skip_serializing_if_is_none)]
    reconsent_due_at: Option<DateTime<Utc>>,
    last_event_id: String,
    updated_at: DateTime<Utc>,
}

impl From<super::model::consents::Model> for ConsentView {
    fn from(c: super::model::consents::Model) -> Self {
        Self {
            purpose: c.purpose_key,
            status: c.status,
            policy_key: c.policy_key,
            policy_version: c.policy_version,
            needs_reconsent: c.needs_reconsent,
            reconsent_due_at: c.reconsent_due_at,
            last_event_id: c.last_event_id,
            updated_at: c.updated_at,
        }
    }
}

/// One event of the ledger.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct EventView {
    id: String,
    seq: i64,
    purpose: String,
    action: Action,
    actor: ConsentActor,
    channel: String,
    policy_id: String,
    policy_sha256: String,
    language: String,
    jurisdiction: String,
    #[oai(skip_serializing_if_is_none)]
    user_agent: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    ip: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    reason: Option<String>,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    prev_hash: String,
    hash: String,
}

impl From<events::Model> for EventView {
    fn from(e: events::Model) -> Self {
        Self {
            id: e.id,
            seq: e.seq,
            purpose: e.purpose_key,
            action: e.action,
            actor: e.actor,
            channel: e.channel,
            policy_id: e.policy_id,
            policy_sha256: e.policy_sha256,
            language: e.language,
            jurisdiction: e.jurisdiction,
            user_agent: e.user_agent,
            ip: e.ip,
            reason: e.reason,
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// A page of events, newest first.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct HistoryPage {
    items: Vec<EventView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    next_before: Option<i64>,
}

/// The proof of consent kept after a person's erasure.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ErasedProof {
    /// The id that replaced the person's; their history and chain are under it
    /// (`/v1/admin/subjects/{pseudonym}/consents/history`).
    pseudonym: String,
    erased_at: Option<DateTime<Utc>>,
    /// The consent events kept, checked link by link.
    chain: ChainCheck,
}

/// The result of checking a subject's hash chain.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ChainCheck {
    ok: bool,
    checked: u64,
    #[oai(skip_serializing_if_is_none)]
    first_broken_seq: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    problem: Option<String>,
}

impl From<ChainReport> for ChainCheck {
    fn from(r: ChainReport) -> Self {
        Self {
            ok: r.ok,
            checked: r.checked,
            first_broken_seq: r.first_broken_seq,
            problem: r.problem,
        }
    }
}

/// May the data be processed for this purpose?
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct CheckView {
    allowed: bool,
    /// The recorded decision; null when the person never decided.
    status: Option<ConsentStatus>,
    policy_version: Option<i32>,
    needs_reconsent: bool,
    /// `consent_granted`, `not_consent_based`, `no_consent`, `withdrawn`, `denied`,
    /// `reconsent_required`, `restricted`, `guardian_required`, `unknown_purpose`,
    /// `purpose_archived`.
    reason: String,
}

impl From<super::CheckResult> for CheckView {
    fn from(r: super::CheckResult) -> Self {
        Self {
            allowed: r.allowed,
            status: r.status,
            policy_version: r.policy_version,
            needs_reconsent: r.needs_reconsent,
            reason: r.reason.to_string(),
        }
    }
}

/// A one-click unsubscribe link and the two headers that carry it.
#[derive(Object)]
struct UnsubscribeLink {
    url: String,
    /// The value of the `List-Unsubscribe` header.
    list_unsubscribe: String,
    /// The value of the `List-Unsubscribe-Post` header.
    list_unsubscribe_post: String,
}

/// One (subject, purpose) pair to check.
#[derive(Object)]
struct CheckPair {
    #[oai(validator(min_length = 1, max_length = 255))]
    subject: String,
    #[oai(validator(min_length = 1, max_length = 64))]
    purpose: String,
}

#[derive(Object)]
struct CheckBatch {
    #[oai(validator(min_items = 1, max_items = 1000))]
    checks: Vec<CheckPair>,
}

#[derive(Object)]
struct CheckBatchItem {
    subject: String,
    purpose: String,
    #[oai(flatten)]
    result: CheckView,
}

#[derive(Object)]
struct CheckBatchResult {
    /// In the order of the request.
    results: Vec<CheckBatchItem>,
}

/// Current consents per purpose, policy version and status.
#[derive(Object)]
struct StatsLine {
    purpose: String,
    policy_version: i32,
    status: ConsentStatus,
    needs_reconsent: bool,
    count: i64,
}

pub(crate) fn decisions(list: Vec<DecisionBody>) -> Vec<Decision> {
    list.into_iter()
        .map(|d| Decision {
            purpose: d.purpose,
            granted: d.granted,
        })
        .collect()
}

const DEFAULT_PAGE: u64 = 50;
const MAX_PAGE: u64 = 500;

impl ConsentApi {
    async fn record_from_portal(
        &self,
        external_id: String,
        req: &Request,
        decisions: Vec<Decision>,
        policy: PolicyShown,
    ) -> Result<Vec<RecordedView>, ApiError> {
        let (user_agent, ip) = crate::http::client_evidence(req);
        let recorded = super::record_alone(
            &self.state.decisions,
            RecordRequest {
                external_id,
                decisions,
                policy: policy.policy_ref(),
                actor: ConsentActor::Subject,
                channel: "portal".into(),
                language: policy.language,
                jurisdiction: None,
                user_agent,
                ip,
                occurred_at: None,
                reason: None,
                audited_by: None,
            },
        )
        .await?;
        Ok(recorded.into_iter().map(Into::into).collect())
    }

    async fn history_of(
        &self,
        external_id: &str,
        before: Option<i64>,
        limit: Option<u64>,
    ) -> Result<HistoryPage, ApiError> {
        let conn = self.state.db.conn();
        let subject = ledger::subject(conn, external_id).await?;
        let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let items = ledger::history(conn, &subject.id, before, limit).await?;
        let next_before = (items.len() as u64 == limit)
            .then(|| items.last().map(|e| e.seq))
            .flatten();
        Ok(HistoryPage {
            items: items.into_iter().map(Into::into).collect(),
            next_before,
        })
    }

    async fn verify_of(&self, external_id: &str) -> Result<ChainCheck, ApiError> {
        let conn = self.state.db.conn();
        let subject = ledger::subject(conn, external_id).await?;
        Ok(ledger::verify(conn, &subject).await?.into())
    }

    async fn current_of(&self, external_id: &str) -> Result<Vec<ConsentView>, ApiError> {
        let conn = self.state.db.conn();
        let Some(subject) = crate::subject::find(conn, external_id).await? else {
            return Ok(Vec::new());
        };
        let current = ledger::current(conn, &subject.id).await?;
        Ok(current.into_iter().map(Into::into).collect())
    }
}

#[OpenApi]
impl ConsentApi {
    /// My consents
    ///
    /// The current decision for each purpose the person has decided on.
    #[oai(path = "/v1/me/consents", method = "get", tag = "ApiTags::Portal")]
    async fn my_consents(&self, auth: SubjectToken) -> Result<Json<Vec<ConsentView>>, ApiError> {
        Ok(Json(self.current_of(&auth.0.0).await?))
    }

    /// Grant or withdraw consent for one purpose
    ///
    /// Withdrawing is as easy as granting: the same call with `granted: false`. Repeating the
    /// current state records nothing and answers 200.
    #[oai(
        path = "/v1/me/consents/:purpose",
        method = "put",
        tag = "ApiTags::Portal"
    )]
    async fn set_my_consent(
        &self,
        auth: SubjectToken,
        req: &Request,
        #[oai(validator(min_length = 1, max_length = 64))] purpose: Path<String>,
        body: Json<SetConsent>,
    ) -> Result<Json<RecordedView>, ApiError> {
        let decision = Decision {
            purpose: purpose.0,
            granted: body.0.granted,
        };
        let mut recorded = self
            .record_from_portal(auth.0.0, req, vec![decision], body.0.policy)
            .await?;
        Ok(Json(recorded.remove(0)))
    }

    /// Decide on several purposes at once
    #[oai(path = "/v1/me/consents", method = "post", tag = "ApiTags::Portal")]
    async fn set_my_consents(
        &self,
        auth: SubjectToken,
        req: &Request,
        body: Json<SetConsents>,
    ) -> Result<Json<Vec<RecordedView>>, ApiError> {
        let SetConsents {
            decisions: list,
            policy,
        } = body.0;
        Ok(Json(
            self.record_from_portal(auth.0.0, req, decisions(list), policy)
                .await?,
        ))
    }

    /// My consent history
    #[oai(
        path = "/v1/me/consents/history",
        method = "get",
        tag = "ApiTags::Portal"
    )]
    async fn my_history(
        &self,
        auth: SubjectToken,
        before: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u64>>,
    ) -> Result<Json<HistoryPage>, ApiError> {
        Ok(Json(self.history_of(&auth.0.0, before.0, limit.0).await?))
    }

    /// A consent receipt
    ///
    /// The record of one event to keep: controller, purpose, legal basis, policy version and
    /// digest, jurisdiction, time, how to withdraw, retention and recipients.
    #[oai(
        path = "/v1/me/consents/receipts/:event_id",
        method = "get",
        tag = "ApiTags::Portal"
    )]
    async fn my_receipt(
        &self,
        auth: SubjectToken,
        #[oai(validator(max_length = 36))] event_id: Path<String>,
    ) -> Result<Json<Receipt>, ApiError> {
        Ok(Json(
            actions::receipts::of_event(
                self.state.db.conn(),
                &self.state.config,
                &auth.0.0,
                &event_id.0,
            )
            .await?,
        ))
    }

    /// Check my consent chain
    #[oai(
        path = "/v1/me/consents/verify",
        method = "get",
        tag = "ApiTags::Portal"
    )]
    async fn my_verify(&self, auth: SubjectToken) -> Result<Json<ChainCheck>, ApiError> {
        Ok(Json(self.verify_of(&auth.0.0).await?))
    }

    /// A subject's consents
    #[oai(
        path = "/v1/subjects/:external_id/consents",
        method = "get",
        tag = "ApiTags::Service"
    )]
    async fn subject_consents(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 255))] external_id: Path<String>,
    ) -> Result<Json<Vec<ConsentView>>, ApiError> {
        auth.0.require(Role::Service)?;
        Ok(Json(self.current_of(&external_id.0).await?))
    }

    /// May we process this person's data for this purpose?
    ///
    /// The hot path. `allowed` is false, with a `reason`, when consent is missing, withdrawn,
    /// refused or needs renewing after a material policy change, when processing is
    /// restricted, or when a minor's guardian has not consented.
    #[oai(
        path = "/v1/subjects/:external_id/consents/:purpose",
        method = "get",
        tag = "ApiTags::Service"
    )]
    async fn check_one(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 255))] external_id: Path<String>,
        #[oai(validator(max_length = 64))] purpose: Path<String>,
    ) -> Result<Json<CheckView>, ApiError> {
        auth.0.require(Role::Service)?;
        let result = self
            .state
            .checks
            .check(&self.state.db, &external_id.0, &purpose.0, clock::now())
            .await?;
        self.state.metrics.count_check(result.reason);
        Ok(Json(result.into()))
    }

    /// The one-click unsubscribe link for a person and a purpose
    ///
    /// For the `List-Unsubscribe` header of the main app's marketing emails (RFC 8058): send
    /// `List-Unsubscribe: <url>` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and
    /// sign the email with DKIM covering both. A `POST` of `List-Unsubscribe=One-Click` to the
    /// URL withdraws the purpose at once, with no login; opening it shows a page with one
    /// button. The link does not expire.
    #[oai(
        path = "/v1/subjects/:external_id/consents/:purpose/unsubscribe",
        method = "get",
        tag = "ApiTags::Service"
    )]
    async fn unsubscribe_link(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 255))] external_id: Path<String>,
        #[oai(validator(max_length = 64))] purpose: Path<String>,
    ) -> Result<Json<UnsubscribeLink>, ApiError> {
        auth.0.require(Role::Service)?;
        let conn = self.state.db.conn();
        let subject = ledger::subject(conn, &external_id.0).await?;
        crate::purpose::get(conn, &purpose.0).await?;
        let url = super::unsubscribe::url(&self.state.config, &subject.id, &purpose.0)
            .map_err(|e| ApiError::internal(&e))?;
        Ok(Json(UnsubscribeLink {
            list_unsubscribe: format!("<{url}>"),
            list_unsubscribe_post: super::unsubscribe::ONE_CLICK_BODY.into(),
            url,
        }))
    }

    /// Record decisions captured by the main app
    ///
    /// Recorded with actor `main_app`, with the evidence the app saw.
    #[oai(
        path = "/v1/subjects/:external_id/consents",
        method = "post",
        tag = "ApiTags::Service"
    )]
    async fn report_consents(
        &self,
        auth: ApiKey,
        #[oai(validator(min_length = 1, max_length = 255))] external_id: Path<String>,
        body: Json<ReportedConsents>,
    ) -> Result<Json<Vec<RecordedView>>, ApiError> {
        auth.0.require(Role::Service)?;
        let b = body.0;
        let recorded = super::record_alone(
            &self.state.decisions,
            RecordRequest {
                external_id: external_id.0,
                decisions: decisions(b.decisions),
                policy: b.policy.policy_ref(),
                actor: ConsentActor::MainApp,
                channel: b.channel,
                language: b.policy.language,
                jurisdiction: b.jurisdiction,
                user_agent: b.user_agent,
                ip: b.ip,
                occurred_at: b.occurred_at,
                reason: None,
                audited_by: None,
            },
        )
        .await?;
        Ok(Json(recorded.into_iter().map(Into::into).collect()))
    }

    /// Check many (subject, purpose) pairs
    #[oai(path = "/v1/consents/check", method = "post", tag = "ApiTags::Service")]
    async fn check_batch(
        &self,
        auth: ApiKey,
        body: Json<CheckBatch>,
    ) -> Result<Json<CheckBatchResult>, ApiError> {
        auth.0.require(Role::Service)?;
        let pairs: Vec<(String, String)> = body
            .0
            .checks
            .into_iter()
            .map(|c| (c.subject, c.purpose))
            .collect();
        let results = super::check_many(self.state.db.conn(), &pairs, clock::now()).await?;
        for result in &results {
            self.state.metrics.count_check(result.reason);
        }
        Ok(Json(CheckBatchResult {
            results: pairs
                .into_iter()
                .zip(results)
                .map(|((subject, purpose), result)| CheckBatchItem {
                    subject,
                    purpose,
                    result: result.into(),
                })
                .collect(),
        }))
    }

    /// A subject's consent history
    #[oai(
        path = "/v1/admin/subjects/:external_id/consents/history",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn admin_history(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 255))] external_id: Path<String>,
        before: Query<Option<i64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u64>>,
    ) -> Result<Json<HistoryPage>, ApiError> {
        auth.0.require(Role::Viewer)?;
        Ok(Json(
            self.history_of(&external_id.0, before.0, limit.0).await?,
        ))
    }

    /// Check a subject's consent chain
    #[oai(
        path = "/v1/admin/subjects/:external_id/consents/verify",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn admin_verify(
        &self,
        auth: ApiKey,
        #[oai(validator(max_length = 255))] external_id: Path<String>,
    ) -> Result<Json<ChainCheck>, ApiError> {
        auth.0.require(Role::Viewer)?;
        Ok(Json(self.verify_of(&external_id.0).await?))
    }

    /// Find the proof of consent of an erased person
    ///
    /// By the id the main app knew them by: the keyed pseudonym that replaced it is computed
    /// again and the kept consent events are verified. 404 when no erased person had this id,
    /// or when their proof is past `retention.keep_erased_proofs` and gone.
    #[oai(
        path = "/v1/admin/erasures/:external_id",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn erased_proof(
        &self,
        auth: ApiKey,
        #[oai(validator(min_length = 1, max_length = 255))] external_id: Path<String>,
    ) -> Result<Json<ErasedProof>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let pseudonym = crate::subject::pseudonym(&self.state.config, &external_id.0)
            .map_err(|e| ApiError::internal(&e))?;
        let conn = self.state.db.conn();
        let subject = crate::subject::find(conn, &pseudonym)
            .await?
            .filter(|s| s.erased_at.is_some())
            .ok_or_else(|| ApiError::not_found("no erased person had this id"))?;
        let chain = ledger::verify(conn, &subject).await?;
        if chain.checked == 0 {
            return Err(ApiError::not_found(
                "the proof of this person's consent is no longer kept",
            ));
        }
        Ok(Json(ErasedProof {
            pseudonym,
            erased_at: subject.erased_at,
            chain: chain.into(),
        }))
    }

    /// Correct a subject's consents
    ///
    /// Recorded with actor `admin` and the reason; the audit log names the key.
    #[oai(
        path = "/v1/admin/subjects/:external_id/consents",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn admin_correct(
        &self,
        auth: ApiKey,
        #[oai(validator(min_length = 1, max_length = 255))] external_id: Path<String>,
        body: Json<Correction>,
    ) -> Result<Json<Vec<RecordedView>>, ApiError> {
        auth.0.require(Role::Admin)?;
        let b = body.0;
        let recorded = actions::consents::correct(
            &self.state.db,
            &self.state.config,
            RecordRequest {
                external_id: external_id.0,
                decisions: decisions(b.decisions),
                policy: b.policy.policy_ref(),
                actor: ConsentActor::Admin,
                channel: "admin_console".into(),
                language: b.policy.language,
                jurisdiction: None,
                user_agent: None,
                ip: None,
                occurred_at: b.occurred_at,
                reason: Some(b.reason),
                audited_by: Some(auth.0.actor()),
            },
        )
        .await?;
        Ok(Json(recorded.into_iter().map(Into::into).collect()))
    }

    /// Consent statistics
    ///
    /// Current consents counted per purpose, policy version and status.
    #[oai(
        path = "/v1/admin/consents/stats",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn stats(&self, auth: ApiKey) -> Result<Json<Vec<StatsLine>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let rows = ledger::stats(self.state.db.conn()).await?;
        Ok(Json(
            rows.into_iter()
                .map(|r| StatsLine {
                    purpose: r.purpose,
                    policy_version: r.policy_version,
                    status: r.status,
                    needs_reconsent: r.needs_reconsent,
                    count: r.count,
                })
                .collect(),
        ))
    }
}
