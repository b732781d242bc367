//! Data-subject requests over HTTP: filing and following them in the portal, filing without a
//! login (email code), the reviewers' queue and decisions (the jobs of each system are in
//! `system::api`). A person only ever sees their own requests: another person's id answers 404, as an
//! unknown one does.

use chrono::{DateTime, NaiveDate, Utc};
use poem::{Body, Request as HttpRequest};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::{Attachment, Json},
};

use super::{
    Filter, Law, OnBehalfOf, Outcome, Request, RequestError, RequestStatus, RequestType, budget,
    export,
    intake::{self, Details, Intake},
};
use crate::vocab::CountryCode;
use crate::{
    AppState,
    actions::{filings, reviews},
    api_tags::ApiTags,
    auth::{ApiKey, Role, SubjectToken},
    clock,
    error::{ApiError, FieldError},
    http::client_ip,
    period::Period,
    subject,
};

pub struct RequestsApi {
    state: AppState,
}

impl RequestsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// A data-subject request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RequestView {
    id: String,
    #[oai(rename = "type")]
    kind: RequestType,
    status: RequestStatus,
    /// `portal`, `email`, `main_app` or `automatic`.
    source: String,
    law: Law,
    received_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The legal deadline, once the request is verified.
    due_date: Option<NaiveDate>,
    extension_reason: Option<String>,
    /// The request this one repeats; it was closed without being processed twice.
    duplicate_of: Option<String>,
    /// Why it was rejected, or a note on how it ended.
    decision_reason: Option<String>,
    outcome: Option<Outcome>,
    details: Details,
    closed_at: Option<DateTime<Utc>>,
    /// Filed for someone else (next of kin of a deceased person): check `details` for the
    /// evidence before deciding.
    on_behalf_of: Option<OnBehalfOf>,
}

impl From<Request> for RequestView {
    fn from(r: Request) -> Self {
        Self {
            details: serde_json::from_str(&r.details).unwrap_or_default(),
            id: r.id,
            kind: r.kind,
            status: r.status,
            source: r.source,
            law: r.law,
            received_at: r.received_at,
            updated_at: r.updated_at,
            due_date: r.due_date,
            extension_reason: r.extension_reason,
            duplicate_of: r.duplicate_of,
            decision_reason: r.decision_reason,
            outcome: r.outcome,
            closed_at: r.closed_at,
            on_behalf_of: r.on_behalf_of,
        }
    }
}

/// Who a request is from (admin views).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RequesterView {
    /// The account the request is linked to (the main app's id); absent when the address
    /// matched no account.
    external_id: Option<String>,
    /// The address the request was filed with, or the account's.
    email: Option<String>,
    /// Whether that address was proven with an emailed code (portal and main-app requests rely
    /// on the main app's login instead).
    email_verified: bool,
    jurisdiction: Option<String>,
    /// Why the request follows the law it does.
    law_reason: String,
}

impl From<super::Requester> for RequesterView {
    fn from(r: super::Requester) -> Self {
        Self {
            external_id: r.external_id,
            email: r.email,
            email_verified: r.email_verified,
            jurisdiction: r.jurisdiction,
            law_reason: r.law_reason,
        }
    }
}

/// A request as reviewers see it: with who it is from.
#[derive(Object)]
struct ReviewedRequest {
    #[oai(flatten)]
    request: RequestView,
    requester: RequesterView,
}

/// One transition in a request's history.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct TransitionView {
    from_status: Option<RequestStatus>,
    to_status: RequestStatus,
    /// `subject`, `main_app`, `system` or `api_key:<id>` (shown to admins only).
    actor: Option<String>,
    note: Option<String>,
    occurred_at: DateTime<Utc>,
}

/// A request with its history.
#[derive(Object)]
struct RequestDetail {
    #[oai(flatten)]
    request: RequestView,
    history: Vec<TransitionView>,
}

/// A request with who it is from and its history (admin view).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ReviewedDetail {
    #[oai(flatten)]
    request: ReviewedRequest,
    history: Vec<TransitionView>,
    /// For an erasure of part of the data: the items it covers, not yet erased.
    covered_items: Option<Vec<CoveredItem>>,
}

/// An item an erasure covers.
#[derive(Object)]
struct CoveredItem {
    item_ref: String,
    category: String,
}

/// A page of the reviewers' queue.
#[derive(Object)]
struct RequestPage {
    items: Vec<ReviewedRequest>,
    /// Requests matching the filters, on every page.
    total: u64,
}

/// A request filed in the portal.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PortalFiling {
    #[oai(rename = "type")]
    kind: RequestType,
    #[oai(default)]
    details: Details,
    #[oai(validator(min_length = 2, max_length = 16))]
    locale: Option<String>,
    /// Defaults to the one the main app reported.
    jurisdiction: Option<CountryCode>,
}

/// A request filed without a login.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct EmailFiling {
    /// Where the verification code and every later message go.
    #[oai(validator(min_length = 3, max_length = 320))]
    email: String,
    #[oai(rename = "type")]
    kind: RequestType,
    #[oai(default)]
    details: Details,
    jurisdiction: Option<CountryCode>,
    #[oai(validator(min_length = 2, max_length = 16))]
    locale: Option<String>,
    /// `next_of_kin`: a close relative files for a deceased person (PIPL Art 49: access,
    /// export, rectify or erase; `details.deceased`, `details.relationship` and
    /// `details.evidence` required). Under the GDPR, which does not cover the deceased: 422
    /// `next_of_kin_not_covered`.
    on_behalf_of: Option<OnBehalfOf>,
}

/// The answer to a filing without a login: the same whether or not the address is known.
#[derive(Object)]
struct Filed {
    id: String,
    status: RequestStatus,
    /// Minutes the emailed code stays valid.
    code_expires_in_minutes: u32,
}

/// The emailed code.
#[derive(Object)]
struct Verification {
    #[oai(validator(pattern = "^[0-9]{6}$"))]
    code: String,
}

/// A decision's reason: a rejection, or the lifting of a restriction.
#[derive(Object)]
struct Reason {
    /// Shown to the person in the email about the decision.
    #[oai(validator(min_length = 3, max_length = 2000))]
    reason: String,
}

/// What a reviewer may add to an approval.
#[derive(Object, Default)]
#[oai(skip_serializing_if_is_none)]
struct Approval {
    /// For the main app with the job (and the request's history): what to keep in mind, e.g.
    /// "keep the invoices".
    #[oai(validator(max_length = 2000))]
    note: Option<String>,
}

/// [`Approval`] as a body that may be left out entirely.
struct OptionalApproval(Approval);

impl<'a> poem_openapi::ApiExtractor<'a> for OptionalApproval {
    const TYPES: &'static [poem_openapi::ApiExtractorType] =
        &[poem_openapi::ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <Json<Approval> as poem_openapi::payload::Payload>::register(registry);
    }

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        Some(poem_openapi::registry::MetaRequest {
            description: None,
            content: vec![poem_openapi::registry::MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: <Json<Approval> as poem_openapi::payload::Payload>::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a HttpRequest,
        body: &mut poem::RequestBody,
        _: poem_openapi::ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        if request.content_type().is_none() {
            return Ok(Self(Approval::default()));
        }
        let Json(approval) =
            <Json<Approval> as poem_openapi::payload::ParsePayload>::from_request(request, body)
                .await?;
        Ok(Self(approval))
    }
}

/// A restriction being lifted: it still applies until `lifts_at`, once the person was told.
#[derive(Object)]
struct Lifted {
    restricted: bool,
    lifts_at: DateTime<Utc>,
}

/// An extension of a GDPR deadline (Art 12(3)).
#[derive(Object)]
struct Extension {
    /// Further months: 1 or 2.
    #[oai(validator(minimum(value = "1"), maximum(value = "2")))]
    months: u32,
    /// Emailed to the person.
    #[oai(validator(min_length = 3, max_length = 2000))]
    reason: String,
}

/// Completing a request by hand.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Completion {
    outcome: Outcome,
    /// Required for `restricted`: the legal hold or impossibility that stopped the erasure.
    #[oai(validator(max_length = 2000))]
    note: Option<String>,
}

#[derive(ApiResponse)]
enum FiledResponse {
    /// Filed; a code was emailed.
    #[oai(status = 202)]
    Accepted(Json<Filed>),
}

#[derive(ApiResponse)]
enum CreatedResponse {
    /// Filed and verified.
    #[oai(status = 201)]
    Created(Json<RequestView>),
}

#[derive(ApiResponse)]
enum ResendResponse {
    /// A new code was emailed.
    #[oai(status = 202)]
    Accepted,
}

/// The package, decrypted as it is sent.
#[derive(ApiResponse)]
enum Download {
    /// The package: JSON for access requests, a ZIP for export requests.
    #[oai(status = 200)]
    Ok(Attachment<Body>),
}

fn history_view(
    history: Vec<super::model::events::Model>,
    with_actor: bool,
) -> Vec<TransitionView> {
    history
        .into_iter()
        .map(|e| TransitionView {
            from_status: e.from_status,
            to_status: e.to_status,
            actor: with_actor.then_some(e.actor),
            note: e.note,
            occurred_at: e.occurred_at,
        })
        .collect()
}

impl RequestsApi {
    /// The caller's own request, or 404 (another person's request is as unknown as a missing
    /// one).
    async fn own(&self, external_id: &str, id: &str) -> Result<Request, ApiError> {
        let conn = self.state.db.conn();
        let subject = subject::find(conn, external_id)
            .await?
            .ok_or_else(|| ApiError::from(RequestError::NotFound))?;
        let request = super::get(conn, id).await?;
        if request.subject_id.as_deref() != Some(subject.id.as_str()) {
            return Err(RequestError::NotFound.into());
        }
        Ok(request)
    }

    async fn download(&self, request: &Request, token: &str) -> Result<Download, ApiError> {
        Ok(Download::Ok(package(&self.state, request, token).await?))
    }
}

/// The package of `request` that `token` opens, as an attachment streamed from disk; the
/// download is recorded. The portal's download page uses it too.
pub(crate) async fn package(
    state: &AppState,
    request: &Request,
    token: &str,
) -> Result<Attachment<Body>, ApiError> {
    let package = filings::open_package(&state.db, &request.id, token).await?;
    let path = state
        .config
        .data_dir
        .join("exports")
        .join(&package.file_name);
    let body = package_body(state, path).await?;
    let extension = if package.media_type == "application/zip" {
        "zip"
    } else {
        "json"
    };
    Ok(Attachment::new(body).filename(format!("request-{}.{extension}", request.id)))
}

/// Streams a package file, decrypting chunk by chunk.
async fn package_body(state: &AppState, path: std::path::PathBuf) -> Result<Body, RequestError> {
    use tokio::io::AsyncReadExt;

    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| RequestError::ExportGone)?;
    let mut header = vec![0u8; 4];
    file.read_exact(&mut header)
        .await
        .map_err(|e| RequestError::Export(e.to_string()))?;
    header.resize(export::Opener::header_len(&header)?, 0);
    file.read_exact(&mut header[4..])
        .await
        .map_err(|e| RequestError::Export(e.to_string()))?;
    let opener = export::Opener::new(&state.config, &header)?;
    let chunks =
        futures_util::stream::try_unfold((file, opener), |(mut file, mut opener)| async move {
            if opener.is_done() {
                return Ok::<_, std::io::Error>(None);
            }
            let mut buf = vec![0u8; export::Opener::CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
            let plain = opener.open(&buf)?;
            Ok(Some((plain, (file, opener))))
        });
    Ok(Body::from_bytes_stream(chunks))
}

#[OpenApi]
impl RequestsApi {
    /// File a request
    ///
    /// The portal's login counts as identity verification: the request is verified at once and
    /// its legal deadline starts. A request of the same type already running for the person is
    /// not processed twice: the new one is linked to it (`duplicate_of`) and closed.
    #[oai(path = "/v1/me/requests", method = "post", tag = "ApiTags::Portal")]
    async fn file(
        &self,
        auth: SubjectToken,
        body: Json<PortalFiling>,
    ) -> Result<CreatedResponse, ApiError> {
        let request = filings::signed_in(
            &self.state.db,
            &self.state.config,
            &auth.0.0,
            Intake {
                kind: body.0.kind,
                details: body.0.details,
                locale: body.0.locale,
                jurisdiction: body.0.jurisdiction,
            },
        )
        .await?;
        Ok(CreatedResponse::Created(Json(request.into())))
    }

    /// My requests
    #[oai(path = "/v1/me/requests", method = "get", tag = "ApiTags::Portal")]
    async fn mine(&self, auth: SubjectToken) -> Result<Json<Vec<RequestView>>, ApiError> {
        let conn = self.state.db.conn();
        let Some(subject) = subject::find(conn, &auth.0.0).await? else {
            return Ok(Json(Vec::new()));
        };
        let requests = super::of_subject(conn, &subject.id).await?;
        Ok(Json(requests.into_iter().map(Into::into).collect()))
    }

    /// One of my requests, with its history
    #[oai(path = "/v1/me/requests/:id", method = "get", tag = "ApiTags::Portal")]
    async fn my_request(
        &self,
        auth: SubjectToken,
        id: Path<String>,
    ) -> Result<Json<RequestDetail>, ApiError> {
        let request = self.own(&auth.0.0, &id.0).await?;
        let history = super::history(self.state.db.conn(), &request.id).await?;
        Ok(Json(RequestDetail {
            request: request.into(),
            history: history_view(history, false),
        }))
    }

    /// Download my export package
    ///
    /// Needs both the portal login and the token from the "export ready" email; the package
    /// can be downloaded until it expires.
    #[oai(
        path = "/v1/me/requests/:id/export",
        method = "get",
        tag = "ApiTags::Portal"
    )]
    async fn my_export(
        &self,
        auth: SubjectToken,
        id: Path<String>,
        /// The token from the "export ready" email.
        token: Query<String>,
    ) -> Result<Download, ApiError> {
        let request = self.own(&auth.0.0, &id.0).await?;
        self.download(&request, &token.0).await
    }

    /// File a request without a login
    ///
    /// A 6-digit code is emailed to the address (valid 15 minutes, 5 attempts). The answer is
    /// the same whether or not the address belongs to someone the service knows.
    #[oai(path = "/v1/requests", method = "post", tag = "ApiTags::Public")]
    async fn file_by_email(
        &self,
        req: &HttpRequest,
        body: Json<EmailFiling>,
    ) -> Result<FiledResponse, ApiError> {
        self.state.rate_limiter.check(client_ip(req))?;
        let address = body.0.email.trim().to_string();
        let key = budget::address_key(&address);
        self.state.key_rate_limiter.check(Some(key.clone()))?;
        let filing = body.0;
        let request = filings::by_email(
            &self.state.group,
            &self.state.config,
            key,
            address,
            Intake {
                kind: filing.kind,
                details: filing.details,
                locale: filing.locale,
                jurisdiction: filing.jurisdiction,
            },
            filing.on_behalf_of,
        )
        .await?;
        Ok(FiledResponse::Accepted(Json(Filed {
            id: request.id,
            status: request.status,
            code_expires_in_minutes: intake::CODE_LIFETIME.num_minutes() as u32,
        })))
    }

    /// Verify a request with the emailed code
    #[oai(
        path = "/v1/requests/:id/verify",
        method = "post",
        tag = "ApiTags::Public"
    )]
    async fn verify(
        &self,
        req: &HttpRequest,
        id: Path<String>,
        body: Json<Verification>,
    ) -> Result<Json<RequestView>, ApiError> {
        self.state.rate_limiter.check(client_ip(req))?;
        let attempt =
            filings::verify(&self.state.db, &self.state.config, &id.0, &body.0.code).await?;
        Ok(Json(attempt?.into()))
    }

    /// Send a new code
    ///
    /// At most 3 codes per request, a minute apart.
    #[oai(
        path = "/v1/requests/:id/resend",
        method = "post",
        tag = "ApiTags::Public"
    )]
    async fn resend(
        &self,
        req: &HttpRequest,
        id: Path<String>,
    ) -> Result<ResendResponse, ApiError> {
        self.state.rate_limiter.check(client_ip(req))?;
        filings::resend(&self.state.db, &id.0).await?;
        Ok(ResendResponse::Accepted)
    }

    /// Download an export package without a login
    ///
    /// For requests filed by email: the token from the "export ready" email is the credential.
    /// A package requested in the portal is refused here (401 `sign_in_needed`): it needs the
    /// portal's sign-in as well.
    #[oai(
        path = "/v1/requests/:id/export",
        method = "get",
        tag = "ApiTags::Public"
    )]
    async fn export_by_token(
        &self,
        req: &HttpRequest,
        id: Path<String>,
        /// The token from the "export ready" email.
        token: Query<String>,
    ) -> Result<Download, ApiError> {
        self.state.rate_limiter.check(client_ip(req))?;
        let request = super::get(self.state.db.conn(), &id.0).await?;
        if export::needs_sign_in(&request) {
            return Err(ApiError::unauthorized(
                "this package was requested in the portal: download it signed in, with \
                 GET /v1/me/requests/{id}/export and the emailed token",
            )
            .with_reason("sign_in_needed"));
        }
        self.download(&request, &token.0).await
    }

    /// The request queue
    ///
    /// Soonest deadline first. `overdue` and `due_within` (an ISO 8601 duration such as `P3D`)
    /// consider requests whose deadline is running.
    #[oai(path = "/v1/admin/requests", method = "get", tag = "ApiTags::Admin")]
    #[allow(clippy::too_many_arguments)]
    async fn queue(
        &self,
        auth: ApiKey,
        status: Query<Option<RequestStatus>>,
        #[oai(name = "type")] kind: Query<Option<RequestType>>,
        law: Query<Option<Law>>,
        #[oai(default)] overdue: Query<bool>,
        due_within: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u64>,
        #[oai(default)] offset: Query<u64>,
    ) -> Result<Json<RequestPage>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let today = clock::now().date_naive();
        let due_by = match due_within.0 {
            Some(text) => Some(
                text.parse::<Period>()
                    .ok()
                    .and_then(|p| p.after(today))
                    .ok_or_else(|| {
                        ApiError::validation(vec![FieldError::new(
                            "due_within",
                            "an ISO 8601 duration such as P3D",
                        )])
                    })?,
            ),
            None => None,
        };
        let (items, total) = super::list(
            self.state.db.conn(),
            &Filter {
                status: status.0,
                kind: kind.0,
                law: law.0,
                overdue: overdue.0,
                due_by,
                limit: limit.0,
                offset: offset.0,
                ..Filter::default()
            },
            today,
        )
        .await?;
        let requesters =
            super::requesters(self.state.db.conn(), &self.state.config, &items).await?;
        Ok(Json(RequestPage {
            items: items
                .into_iter()
                .zip(requesters)
                .map(|(request, requester)| ReviewedRequest {
                    request: request.into(),
                    requester: requester.into(),
                })
                .collect(),
            total,
        }))
    }

    /// One request, with its history
    #[oai(
        path = "/v1/admin/requests/:id",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn admin_request(
        &self,
        auth: ApiKey,
        id: Path<String>,
    ) -> Result<Json<ReviewedDetail>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let conn = self.state.db.conn();
        let request = super::get(conn, &id.0).await?;
        let history = super::history(conn, &request.id).await?;
        let requester = super::requesters(conn, &self.state.config, std::slice::from_ref(&request))
            .await?
            .remove(0);
        let details: Details = serde_json::from_str(&request.details).unwrap_or_default();
        let covered_items = match (super::erasure_scope(&details), &request.subject_id) {
            (Some((categories, item_refs)), Some(subject_id))
                if request.kind == RequestType::Erase =>
            {
                let items =
                    crate::retention::items::in_scope(conn, subject_id, &categories, &item_refs)
                        .await?;
                Some(
                    items
                        .into_iter()
                        .map(|i| CoveredItem {
                            item_ref: i.external_ref,
                            category: i.category,
                        })
                        .collect(),
                )
            }
            _ => None,
        };
        Ok(Json(ReviewedDetail {
            request: ReviewedRequest {
                request: request.into(),
                requester: requester.into(),
            },
            history: history_view(history, true),
            covered_items,
        }))
    }

    /// Take a request for review
    #[oai(
        path = "/v1/admin/requests/:id/take",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn take(&self, auth: ApiKey, id: Path<String>) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let request = reviews::take(&self.state.db, &id.0, &auth.0.actor()).await?;
        Ok(Json(request.into()))
    }

    /// Approve a request
    ///
    /// Restriction and objection are carried out at once. Access, export, rectification and
    /// erasure send the main app a signed `fulfilment.requested` job and wait for its answer.
    /// When the change an approval makes is refused (an objection naming a purpose that is
    /// necessary for the service, say), nothing changes but the request's history, which
    /// records why; the request stays open for the reviewer.
    #[oai(
        path = "/v1/admin/requests/:id/approve",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn approve(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: OptionalApproval,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let request = reviews::approve(
            &self.state.db,
            &self.state.config,
            &id.0,
            &auth.0.actor(),
            body.0.note.as_deref(),
        )
        .await?;
        Ok(Json(request.into()))
    }

    /// Reject a request
    ///
    /// The email gives the reason and the remedies of the request's law: a complaint to a
    /// supervisory authority and a judicial remedy (GDPR Arts 12(4), 77, 79), or a lawsuit in a
    /// people's court (PIPL Art 50).
    #[oai(
        path = "/v1/admin/requests/:id/reject",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn reject(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<Reason>,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let request =
            reviews::reject(&self.state.db, &id.0, &body.0.reason, &auth.0.actor()).await?;
        Ok(Json(request.into()))
    }

    /// Extend a GDPR deadline
    ///
    /// Once, by one or two months from the original due date, with a reason that is emailed to
    /// the person.
    #[oai(
        path = "/v1/admin/requests/:id/extend",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn extend(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<Extension>,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let request = reviews::extend(
            &self.state.db,
            &self.state.config,
            &id.0,
            body.0.months,
            &body.0.reason,
            &auth.0.actor(),
        )
        .await?;
        Ok(Json(request.into()))
    }

    /// Complete a request by hand
    ///
    /// For a request being fulfilled, e.g. an erasure that a legal hold turns into a
    /// restriction (outcome `restricted`, with the reason in `note`).
    #[oai(
        path = "/v1/admin/requests/:id/complete",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn complete(
        &self,
        auth: ApiKey,
        id: Path<String>,
        body: Json<Completion>,
    ) -> Result<Json<RequestView>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let request = reviews::complete(
            &self.state.db,
            &self.state.config,
            &id.0,
            body.0.outcome,
            body.0.note,
            &auth.0.actor(),
        )
        .await?;
        Ok(Json(request.into()))
    }

    /// Lift a restriction of processing
    ///
    /// The person is told first (GDPR Art 18(3)): they are emailed the reason and the date,
    /// and the restriction ends `requests.restriction_lift_notice` later (7 days by default),
    /// once the notice has gone out. Until then consent checks still answer `restricted`.
    /// Asking again while a lift is scheduled: 409 `lift_already_scheduled`.
    #[oai(
        path = "/v1/admin/subjects/:external_id/lift-restriction",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn lift_restriction(
        &self,
        auth: ApiKey,
        external_id: Path<String>,
        body: Json<Reason>,
    ) -> Result<Json<Lifted>, ApiError> {
        auth.0.require(Role::Reviewer)?;
        let lifts_at = reviews::lift_restriction(
            &self.state.db,
            &self.state.config,
            &external_id.0,
            &body.0.reason,
            &auth.0.actor(),
        )
        .await?;
        Ok(Json(Lifted {
            restricted: true,
            lifts_at,
        }))
    }
}

fn default_limit() -> u64 {
    50
}
