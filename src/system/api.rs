//! Systems and their jobs over HTTP: admins keep the registry, reviewers see each request's
//! jobs and send one again or find it not applicable, and the jobs are answered either with the
//! main app's service key (`/v1/fulfilments/{id}/…`, for any job) or by the system itself on
//! its own path, signed with its own secret, for its own jobs only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem::Request as HttpRequest;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use serde_json::Value;

use super::{SecretChange, System, SystemFields};
use crate::{
    AppState,
    actions::systems,
    api_tags::ApiTags,
    auth::{ApiKey, Role},
    clock,
    error::{ApiError, FieldError},
    http::Signed,
    request::{
        Outcome, RequestType,
        api::RequestView,
        jobs::{self, Answer, Evidence, Job, Report},
        model::FulfilmentStatus,
    },
};

pub struct SystemsApi {
    state: AppState,
}

impl SystemsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// A registered system.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SystemView {
    key: String,
    name: String,
    description: String,
    /// Where its jobs are posted; absent: the main app's webhook URL (signed with the main
    /// app's secret).
    endpoint: Option<String>,
    /// Whether it has a signing secret of its own (the secret is shown once, when made).
    has_secret: bool,
    request_types: Vec<RequestType>,
    categories: Vec<String>,
    allowance_days: u32,
    required: bool,
    retired_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<System> for SystemView {
    fn from(s: System) -> Self {
        Self {
            key: s.key,
            name: s.name,
            description: s.description,
            endpoint: s.endpoint,
            has_secret: s.has_secret,
            request_types: s.request_types,
            categories: s.categories,
            allowance_days: s.allowance_days,
            required: s.required,
            retired_at: s.retired_at,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A system with the signing secret made for it: shown this once, never stored in clear.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SystemWithSecret {
    #[oai(flatten)]
    system: SystemView,
    /// `whsec_…`: configure it in the system to verify its jobs and sign its reports.
    secret: Option<String>,
}

/// What an admin declares about a system.
#[derive(Object)]
struct SystemBody {
    #[oai(validator(min_length = 1, max_length = 200))]
    name: String,
    #[oai(default, validator(max_length = 2000))]
    description: String,
    /// Where its jobs go (http or https); leave it out for the main app's webhook URL.
    endpoint: Option<String>,
    /// Its Standard Webhooks secret (`whsec_…`); leave it out to have one made.
    #[oai(write_only)]
    secret: Option<String>,
    /// Make a new secret (shown once in the answer); the old one stops working.
    #[oai(default)]
    rotate_secret: bool,
    /// `access`, `export`, `rectify`, `erase`.
    request_types: Vec<RequestType>,
    /// The data categories it holds, as in the retention rules (`photos`, `server_logs`).
    categories: Vec<String>,
    /// Days a job may take before it is overdue.
    allowance_days: u32,
    /// Whether a request waits for its confirmation.
    #[oai(default = "default_true")]
    required: bool,
}

fn default_true() -> bool {
    true
}

impl SystemBody {
    fn fields(&self) -> SystemFields {
        SystemFields {
            name: self.name.clone(),
            description: self.description.clone(),
            endpoint: self.endpoint.clone().filter(|e| !e.trim().is_empty()),
            request_types: self.request_types.clone(),
            categories: self.categories.clone(),
            allowance_days: self.allowance_days,
            required: self.required,
        }
    }
}

/// A new system.
#[derive(Object)]
struct NewSystem {
    /// `a-z0-9-_`, fixed for ever: jobs and proofs name it.
    #[oai(validator(min_length = 1, max_length = 64))]
    key: String,
    #[oai(flatten)]
    body: SystemBody,
}

/// One system's job for a request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct JobView {
    /// The job's id: its idempotency key, and the `{id}` of its report paths.
    id: String,
    /// The system's key; absent for the main app's single job.
    system: Option<String>,
    system_name: Option<String>,
    status: FulfilmentStatus,
    /// Whether the request waits for it.
    required: bool,
    /// Past its due date and still open.
    overdue: bool,
    /// Sent once, and once more per retry after a delivered attempt.
    round: i32,
    created_at: DateTime<Utc>,
    due_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    outcome: Option<Outcome>,
    /// The system's note, its failure, or a reviewer's reason for "not applicable".
    note: Option<String>,
    evidence: EvidenceBody,
    /// Who found the job not applicable.
    decided_by: Option<String>,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        let now = clock::now();
        Self {
            status: job.status(),
            overdue: job.is_overdue(now),
            evidence: job.evidence().into(),
            id: job.row.id,
            system: job.row.system_key,
            system_name: job.system_name,
            required: job.required,
            round: job.row.round,
            created_at: job.row.created_at,
            due_at: job.row.due_at,
            acknowledged_at: job.row.acknowledged_at,
            completed_at: job.row.completed_at,
            outcome: job.row.outcome,
            note: job.row.note,
            decided_by: job.row.decided_by,
        }
    }
}

/// What a system did: records per category, and its own reference for the work.
#[derive(Object, Default)]
#[oai(skip_serializing_if_is_none)]
struct EvidenceBody {
    /// Records per data category, e.g. `{"photos": 42}`.
    #[oai(default)]
    counts: BTreeMap<String, u64>,
    #[oai(validator(max_length = 200))]
    reference: Option<String>,
}

impl From<Evidence> for EvidenceBody {
    fn from(e: Evidence) -> Self {
        Self {
            counts: e.counts,
            reference: e.reference,
        }
    }
}

/// A report that a job is done.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct FulfilmentReport {
    /// For access and export requests: what the system holds about the person. Leave it out
    /// when it holds nothing more.
    data: Option<Value>,
    /// `restricted` when an erasure could not delete everything (a legal hold, or a technical
    /// impossibility); give the reason in `note`.
    outcome: Option<Outcome>,
    #[oai(validator(max_length = 2000))]
    note: Option<String>,
    evidence: Option<EvidenceBody>,
}

impl FulfilmentReport {
    fn answer(self) -> Result<Answer, ApiError> {
        if self.outcome == Some(Outcome::Restricted) && self.note.is_none() {
            return Err(ApiError::validation(vec![FieldError::new(
                "note",
                "say why the request ends restricted",
            )]));
        }
        let evidence = self.evidence.unwrap_or_default();
        Ok(Answer::Done(Report {
            data: self.data,
            outcome: self.outcome,
            note: self.note,
            evidence: Evidence {
                counts: evidence.counts,
                reference: evidence.reference,
            },
        }))
    }
}

/// A system has a job and is working on it.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Acknowledgement {
    /// The system's own reference for the work (a job number, a batch id).
    #[oai(validator(max_length = 200))]
    reference: Option<String>,
}

/// A system could not carry its job out.
#[derive(Object)]
struct Failure {
    /// Why, for the reviewer who will send it again (no personal data).
    #[oai(validator(min_length = 3, max_length = 2000))]
    note: String,
}

/// What a system says about its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
enum ReportedStatus {
    Acknowledged,
    Done,
    Failed,
}

/// A system's report on its own job, signed with its secret.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SystemReport {
    status: ReportedStatus,
    /// For `done` on an access or export request: what the system holds about the person.
    data: Option<Value>,
    /// For `done`: `restricted` when an erasure had to keep data (say why in `note`).
    outcome: Option<Outcome>,
    /// Required for `failed`: why.
    #[oai(validator(max_length = 2000))]
    note: Option<String>,
    evidence: Option<EvidenceBody>,
}

/// Why a job is not applicable.
#[derive(Object)]
struct NotApplicable {
    /// Recorded in the request's history and the audit log.
    #[oai(validator(min_length = 3, max_length = 2000))]
    reason: String,
}

#[derive(ApiResponse)]
enum CreatedResponse {
    /// Registered; the signing secret, if one was made, is in the answer this once.
    #[oai(status = 201)]
    Created(Json<SystemWithSecret>),
}

#[OpenApi]
impl SystemsApi {
    /// List the systems that hold people's data
    #[oai(path = "/v1/admin/systems", method = "get", tag = "ApiTags::Admin")]
    async fn list(&self, auth: ApiKey) -> Result<Json<Vec<SystemView>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let systems = super::list(self.state.db.conn()).await?;
        Ok(Json(systems.into_iter().map(Into::into).collect()))
    }

    /// Register a system
    ///
    /// From then on, approved requests of the types it handles become a job for it (an
    /// erasure of some categories only if it holds one of them). With no system registered,
    /// the main app gets the single job. Audited.
    #[oai(path = "/v1/admin/systems", method = "post", tag = "ApiTags::Admin")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<NewSystem>,
    ) -> Result<CreatedResponse, ApiError> {
        auth.0.require(Role::Admin)?;
        let NewSystem { key, body } = body.0;
        let fields = body.fields();
        let (system, secret) = systems::create(
            &self.state.db,
            &self.state.config,
            &key,
            fields,
            body.secret,
            &auth.0.actor(),
        )
        .await?;
        Ok(CreatedResponse::Created(Json(SystemWithSecret {
            system: system.into(),
            secret,
        })))
    }

    /// One system
    #[oai(
        path = "/v1/admin/systems/:key",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn get(&self, auth: ApiKey, key: Path<String>) -> Result<Json<SystemView>, ApiError> {
        auth.0.require(Role::Viewer)?;
        Ok(Json(super::get(self.state.db.conn(), &key.0).await?.into()))
    }

    /// Change a system
    ///
    /// Jobs not yet delivered go to the new endpoint with the new secret. Audited.
    #[oai(
        path = "/v1/admin/systems/:key",
        method = "put",
        tag = "ApiTags::Admin"
    )]
    async fn update(
        &self,
        auth: ApiKey,
        key: Path<String>,
        body: Json<SystemBody>,
    ) -> Result<Json<SystemWithSecret>, ApiError> {
        auth.0.require(Role::Admin)?;
        let body = body.0;
        let change = match (body.secret.clone(), body.rotate_secret) {
            (Some(_), true) => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "rotate_secret",
                    "give a secret or ask for a new one, not both",
                )]));
            }
            (Some(secret), false) => SecretChange::Set(secret),
            (None, true) => SecretChange::Rotate,
            (None, false) => SecretChange::Keep,
        };
        let (system, secret) = systems::update(
            &self.state.db,
            &self.state.config,
            &key.0,
            body.fields(),
            change,
            &auth.0.actor(),
        )
        .await?;
        Ok(Json(SystemWithSecret {
            system: system.into(),
            secret,
        }))
    }

    /// Retire a system
    ///
    /// No new jobs; its past jobs and their evidence stay as proof. Audited.
    #[oai(
        path = "/v1/admin/systems/:key/retire",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn retire(&self, auth: ApiKey, key: Path<String>) -> Result<Json<SystemView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let system = systems::retire(&self.state.db, &key.0, &auth.0.actor()).await?;
        Ok(Json(system.into()))
    }

    /// A request's jobs, one per system
    #[oai(
        path = "/v1/admin/requests/:id/jobs",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn jobs(&self, auth: ApiKey, id: Path<String>) -> Result<Json<Vec<JobView>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let conn = self.state.db.conn();
        crate::request::get(conn, &id.0).await?;
        let jobs = jobs::of_request(conn, &id.0).await?;
        Ok(Json(jobs.into_iter().map(Into::into).collect()))
    }

    /// Send one system's job again
    ///
    /// For a failed or silent system: the others are not sent anything. An undelivered job is
    /// tried again at once; a delivered one is sent anew with the same idempotency key and a
    /// new `webhook-id`. Audited.
    #[oai(
        path = "/v1/admin/fulfilments/:id/retry",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn retry(&self, auth: ApiKey, id: Path<String>) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let request = systems::retry_job(&self.state.db, &id.0, &auth.0.actor()).await?;
        Ok(Json(request.into()))
    }

    /// Find a system's job not applicable
    ///
    /// The system holds nothing this request covers; the reason is recorded. The request
    /// completes if it waited for nothing else. Audited.
    #[oai(
        path = "/v1/admin/fulfilments/:id/not-applicable",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn not_applicable(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<NotApplicable>,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let request = systems::job_not_applicable(
            &self.state.db,
            &self.state.config,
            &id.0,
            &body.0.reason,
            &auth.0.actor(),
        )
        .await?;
        Ok(Json(request.into()))
    }

    /// Report a finished fulfilment job
    ///
    /// The answer to a `fulfilment.requested` webhook, by the main app for its own job or for
    /// any system's. Repeating a report is harmless: a finished job answers with its request
    /// and changes nothing. The request completes once every required job is done.
    #[oai(
        path = "/v1/fulfilments/:id/complete",
        method = "post",
        tag = "ApiTags::Service"
    )]
    async fn complete(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<FulfilmentReport>,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Service)?;
        self.answer(&id.0, None, body.0.answer()?).await
    }

    /// Acknowledge a fulfilment job
    ///
    /// The system has the job and is working on it. Repeats are harmless.
    #[oai(
        path = "/v1/fulfilments/:id/acknowledge",
        method = "post",
        tag = "ApiTags::Service"
    )]
    async fn acknowledge(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<Acknowledgement>,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Service)?;
        let answer = Answer::Acknowledged {
            reference: body.0.reference,
        };
        self.answer(&id.0, None, answer).await
    }

    /// Report a failed fulfilment job
    ///
    /// The system could not carry the job out; a reviewer sends it again. The other systems'
    /// jobs go on.
    #[oai(
        path = "/v1/fulfilments/:id/fail",
        method = "post",
        tag = "ApiTags::Service"
    )]
    async fn fail(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<Failure>,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Service)?;
        let answer = Answer::Failed { note: body.0.note };
        self.answer(&id.0, None, answer).await
    }

    /// A system reports on its own job
    ///
    /// Signed per Standard Webhooks with the system's own secret (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature`, 5-minute tolerance), so a system needs no API
    /// key and can answer only for its own jobs: another system's job is 404. A missing or
    /// wrong signature, or a system without a secret of its own, is 401. Repeats are harmless.
    #[oai(
        path = "/v1/systems/:key/fulfilments/:id",
        method = "post",
        tag = "ApiTags::Service"
    )]
    async fn report(
        &self,
        req: &HttpRequest,
        key: Path<String>,
        id: Path<String>,
        body: Signed<SystemReport>,
    ) -> Result<Json<RequestView>, ApiError> {
        let unsigned = || ApiError::unauthorized("missing, invalid or stale signature");
        let secret =
            match super::verifying_secret(self.state.db.conn(), &self.state.config, &key.0).await {
                Ok(Some(secret)) => secret,
                Ok(None) | Err(super::SystemError::NotFound) => return Err(unsigned()),
                Err(e) => return Err(e.into()),
            };
        let verifier = standardwebhooks::Webhook::from_bytes(secret)
            .map_err(|e| ApiError::internal(&e.to_string()))?;
        if verifier.verify(body.bytes(), req.headers()).is_err() {
            return Err(unsigned());
        }
        let value: Value = serde_json::from_slice(body.bytes())
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        let report =
            <SystemReport as poem_openapi::types::ParseFromJSON>::parse_from_json(Some(value))
                .map_err(|e| crate::error::payload_error(e.message()))?;
        let answer = match report.status {
            ReportedStatus::Acknowledged => Answer::Acknowledged {
                reference: report.evidence.and_then(|e| e.reference),
            },
            ReportedStatus::Failed => Answer::Failed {
                note: report.note.ok_or_else(|| {
                    ApiError::validation(vec![FieldError::new("note", "say why it failed")])
                })?,
            },
            ReportedStatus::Done => FulfilmentReport {
                data: report.data,
                outcome: report.outcome,
                note: report.note,
                evidence: report.evidence,
            }
            .answer()?,
        };
        self.answer(&id.0, Some(&key.0), answer).await
    }
}

impl SystemsApi {
    async fn answer(
        &self,
        job_id: &str,
        from: Option<&str>,
        answer: Answer,
    ) -> Result<Json<RequestView>, ApiError> {
        let request =
            systems::answer_job(&self.state.db, &self.state.config, job_id, from, answer).await?;
        Ok(Json(request.into()))
    }
}
