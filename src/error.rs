//! The one place where errors become HTTP responses: RFC 9457 `application/problem+json`.
//!
//! Domain services return their own `thiserror` enums; each has a `From` impl here that picks
//! the status and the wording a client may see. Errors raised by the framework before a handler
//! runs (unknown route, wrong method, malformed JSON, a body over the limit, a missing
//! credential) are rewritten by [`problem_from_poem_error`], so no client ever sees a plain-text
//! error. A 5xx never carries internal text: the cause is logged under the request id, which the
//! problem repeats.

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{
    ApiResponse, Object,
    registry::{MetaMediaType, MetaResponse, MetaResponses, Registry},
    types::Type,
};
use sea_orm::{DbErr, SqlErr};
use serde::Serialize;

use crate::{
    consent::ConsentError, guardian::GuardianError, law::ExtensionRefused, policy::PolicyError,
    purpose::PurposeError, request::RequestError, retention::RetentionError,
};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Problem {
    /// A URI reference naming the kind of problem; `about:blank` when the status says it all.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, written for the client developer.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A machine-readable reason for refusals that clients act on (e.g. `guardian_required`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Field-level validation errors (422).
    #[oai(default, skip_serializing_if_is_empty)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id, also sent as the `x-request-id` header, to quote in a support request.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Object, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name, dotted for nested fields; `body` when the whole document is at fault.
    pub field: String,
    /// Why the value was refused.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error answered to a client. Handlers return `Result<_, ApiError>`; domain errors convert
/// into it with `?`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    detail: Option<String>,
    reason: Option<String>,
    errors: Vec<FieldError>,
    /// Seconds to wait before retrying, sent as `Retry-After` (429).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: Some(detail.into()),
            reason: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 422 with one entry per invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: Some("the request has invalid fields".into()),
            reason: None,
            errors,
            retry_after: None,
        }
    }

    /// A 500 whose cause is logged, never returned.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: None,
            reason: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 503 for a dependency that is down (the database), with the cause logged.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            detail: Some("a dependency of the service is unavailable".into()),
            reason: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 429, with how long to wait.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        Self {
            retry_after: Some(retry_after_seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this address; try again later",
            )
        }
    }

    /// Adds a machine-readable reason code.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable reason, for pages that explain it in the visitor's language.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }

    fn problem(&self) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            reason: self.reason.clone(),
            errors: self.errors.clone(),
            request_id: crate::http::current_request_id(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = Response::builder()
            .status(self.status)
            .content_type(PROBLEM_JSON);
        if let Some(seconds) = self.retry_after {
            response = response.header(poem::http::header::RETRY_AFTER, seconds);
        }
        response.body(body)
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

/// The statuses every operation documents, so that clients (and schema fuzzers) find each
/// error they can meet in the spec.
const DOCUMENTED: &[(u16, &str)] = &[
    (
        400,
        "Malformed request: unparseable JSON, a bad parameter or header.",
    ),
    (401, "Missing, unknown, expired or revoked credentials."),
    (
        403,
        "Valid credentials whose role may not perform this operation.",
    ),
    (404, "The resource or route does not exist."),
    (
        409,
        "The request conflicts with the current state of the resource.",
    ),
    (413, "The request body is larger than the configured limit."),
    (
        415,
        "The body is not `application/json` (or the `Content-Type` header is missing).",
    ),
    (
        422,
        "The request is well-formed but breaks a rule; `errors` lists the fields.",
    ),
    (410, "The resource existed but has expired or been deleted."),
    (429, "Too many requests; retry later."),
    (
        500,
        "Internal error; the cause is logged under the request id.",
    ),
    (503, "A dependency such as the database is unavailable."),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_JSON,
                        schema: Problem::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::conflict("a resource with the same identity already exists")
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                Self::conflict("the resource is referenced by or refers to another resource")
            }
            _ => match err {
                DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::unavailable(&err),
                other => Self::internal(&other),
            },
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(err: PolicyError) -> Self {
        match err {
            PolicyError::NotFound => Self::not_found(err.to_string()),
            PolicyError::NotDraft(_) | PolicyError::NotPublished => {
                Self::conflict(err.to_string()).with_reason("policy_state")
            }
            PolicyError::Immutable { .. } => {
                Self::conflict(err.to_string()).with_reason("policy_immutable")
            }
            PolicyError::NotNewer { .. } | PolicyError::Exists => Self::conflict(err.to_string()),
            PolicyError::Invalid(errors) => Self::validation(errors),
            PolicyError::File { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
            }
            PolicyError::Db(e) => e.into(),
        }
    }
}

impl From<PurposeError> for ApiError {
    fn from(err: PurposeError) -> Self {
        match err {
            PurposeError::NotFound => Self::not_found(err.to_string()),
            PurposeError::Exists | PurposeError::HasConsents => Self::conflict(err.to_string()),
            PurposeError::Invalid(errors) => Self::validation(errors),
            PurposeError::Db(e) => e.into(),
        }
    }
}

impl From<ConsentError> for ApiError {
    fn from(err: ConsentError) -> Self {
        match err {
            ConsentError::Invalid(errors) => Self::validation(errors),
            ConsentError::Refused { reason, detail } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail).with_reason(reason)
            }
            ConsentError::RequiredPurpose(_) => {
                Self::conflict(err.to_string()).with_reason("required_purpose")
            }
            ConsentError::SubjectNotFound | ConsentError::EventNotFound => {
                Self::not_found(err.to_string())
            }
            ConsentError::Db(e) => e.into(),
        }
    }
}

impl From<crate::staff::StaffError> for ApiError {
    fn from(err: crate::staff::StaffError) -> Self {
        use crate::staff::StaffError;
        match err {
            StaffError::InvalidEmail(_) => {
                Self::validation(vec![FieldError::new("email", err.to_string())])
            }
            StaffError::WeakPassword(_) => {
                Self::validation(vec![FieldError::new("password", err.to_string())])
            }
            StaffError::ServiceRole => {
                Self::validation(vec![FieldError::new("role", err.to_string())])
            }
            StaffError::Exists => Self::conflict(err.to_string()).with_reason("exists"),
            StaffError::Enrolled => Self::conflict(err.to_string()),
            StaffError::NotFound => Self::not_found(err.to_string()),
            StaffError::BadCredentials | StaffError::BadCode => Self::unauthorized(err.to_string()),
            StaffError::Locked(_) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, err.to_string()).with_reason("locked")
            }
            StaffError::BadSetupLink => {
                Self::not_found(err.to_string()).with_reason("token_invalid")
            }
            StaffError::Key(cause) => Self::internal(&cause),
            StaffError::Db(e) => e.into(),
        }
    }
}

impl From<GuardianError> for ApiError {
    fn from(err: GuardianError) -> Self {
        match err {
            GuardianError::InvalidEmail => {
                Self::validation(vec![FieldError::new("guardian_email", err.to_string())])
            }
            GuardianError::NotNeeded => {
                Self::conflict(err.to_string()).with_reason("guardian_not_needed")
            }
            GuardianError::UnknownToken => Self::not_found(err.to_string()),
            GuardianError::Expired => Self::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
                .with_reason("token_expired"),
            GuardianError::Used => Self::conflict(err.to_string()).with_reason("token_used"),
            GuardianError::Unanswered(_) => {
                Self::validation(vec![FieldError::new("decisions", err.to_string())])
            }
            GuardianError::Refused { purpose, source } => {
                let inner = Self::from(source);
                Self {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    detail: Some(format!(
                        "`{purpose}`: {}; nothing was recorded",
                        inner.detail.unwrap_or_default()
                    )),
                    reason: inner.reason.or_else(|| Some("invalid".into())),
                    errors: inner.errors,
                    retry_after: None,
                }
            }
            GuardianError::Db(e) => e.into(),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        let detail = err.to_string();
        let unprocessable = |reason: &str| {
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail.clone()).with_reason(reason)
        };
        match err {
            RequestError::NotFound => Self::not_found(detail),
            RequestError::Invalid(errors) => Self::validation(errors),
            RequestError::Transition { .. } => {
                Self::conflict(detail).with_reason("illegal_transition")
            }
            RequestError::WrongCode { .. } => unprocessable("code_invalid"),
            RequestError::CodeExpired => unprocessable("code_expired"),
            RequestError::Closed => Self::conflict(detail).with_reason("request_closed"),
            RequestError::ResendLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, detail)
            },
            RequestError::BudgetSpent { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, detail).with_reason("budget_spent")
            },
            RequestError::AlreadyExtended => Self::conflict(detail).with_reason("already_extended"),
            RequestError::NotRestricted => Self::conflict(detail).with_reason("not_restricted"),
            RequestError::NextOfKinNotCovered => unprocessable("next_of_kin_not_covered"),
            RequestError::LiftScheduled => {
                Self::conflict(detail).with_reason("lift_already_scheduled")
            }
            RequestError::Extension(refused) => unprocessable(match refused {
                ExtensionRefused::NotUnderThisLaw => "extension_not_allowed",
                ExtensionRefused::TooLong => "extension_too_long",
                ExtensionRefused::TooLate { .. } => "extension_too_late",
            }),
            RequestError::ExportGone => Self::new(StatusCode::GONE, detail),
            RequestError::JobSettled => Self::conflict(detail).with_reason("job_settled"),
            RequestError::System(e) => e.into(),
            RequestError::Export(cause) | RequestError::Key(cause) => Self::internal(&cause),
            RequestError::Consent(e) => e.into(),
            RequestError::Db(e) => e.into(),
        }
    }
}

impl From<crate::system::SystemError> for ApiError {
    fn from(err: crate::system::SystemError) -> Self {
        use crate::system::SystemError;
        match err {
            SystemError::NotFound => Self::not_found(err.to_string()),
            SystemError::Exists => Self::conflict(err.to_string()).with_reason("exists"),
            SystemError::Retired => Self::conflict(err.to_string()).with_reason("system_retired"),
            SystemError::Invalid(errors) => Self::validation(errors),
            SystemError::Key(cause) => Self::internal(&cause),
            SystemError::Db(e) => e.into(),
        }
    }
}

impl From<RetentionError> for ApiError {
    fn from(err: RetentionError) -> Self {
        match err {
            RetentionError::NotFound(_) => Self::not_found(err.to_string()),
            RetentionError::Exists | RetentionError::Busy | RetentionError::Purging => {
                Self::conflict(err.to_string())
            }
            RetentionError::OwnData(_) => Self::internal(&err),
            RetentionError::Invalid(errors) => Self::validation(errors),
            RetentionError::Db(e) => e.into(),
        }
    }
}

/// Rewrites any error that reached the router's edge as problem+json.
///
/// Our own [`ApiError`] passes through. Framework errors keep their status; a payload that is not
/// JSON at all is a 400, a JSON payload that does not fit the schema is a 422 with the field named.
pub fn problem_from_poem_error(err: poem::Error) -> ApiError {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.clone();
    }
    if let Some(parse) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
        return payload_error(&parse.reason);
    }
    if err.is::<poem_openapi::error::AuthorizationError>() {
        return ApiError::unauthorized("missing or malformed `Authorization: Bearer` credentials");
    }
    let status = err.status();
    if status.is_server_error() {
        return ApiError::internal(&err);
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "no such route".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that method".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than allowed".to_string(),
        _ => err.to_string(),
    };
    ApiError::new(status, detail)
}

/// poem-openapi reports both syntax errors and schema mismatches as a payload error; only the
/// message tells them apart. Syntax errors come from serde_json and end with the position
/// (`... at line 1 column 2`); schema mismatches name the field as ``field `name` `` when they
/// can.
pub fn payload_error(reason: &str) -> ApiError {
    if is_json_syntax_error(reason) {
        return ApiError::bad_request(format!("the body is not valid JSON: {reason}"));
    }
    let field = field_named_in(reason).unwrap_or("body");
    ApiError::validation(vec![FieldError::new(field, reason)])
}

/// The field a poem-openapi parse error names (``... field `name` ...``), if any.
pub fn field_named_in(reason: &str) -> Option<&str> {
    reason
        .rsplit_once("field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name)
}

/// Whether `reason` ends like serde_json's syntax errors: ` at line <n> column <m>`.
fn is_json_syntax_error(reason: &str) -> bool {
    let Some((head, column)) = reason.rsplit_once(" column ") else {
        return false;
    };
    let Some((_, line)) = head.rsplit_once(" at line ") else {
        return false;
    };
    !line.is_empty()
        && !column.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && column.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_bad_requests() {
        let err = payload_error("key must be a string at line 1 column 2");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        let err = payload_error("EOF while parsing a value at line 1 column 0");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn schema_errors_name_the_field() {
        let err = payload_error(
            r#"failed to parse "CreateKey": field `name` verification failed. minLength(1)"#,
        );
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.errors[0].field, "name");
        let err = payload_error(
            r#"Expected input type "Role", found "x". (occurred while parsing "CreateKey")"#,
        );
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.errors[0].field, "body");
    }

    #[test]
    fn problems_hide_internal_causes() {
        let err = ApiError::internal(&"disk on fire at /var/lib/secret");
        let problem = err.problem();
        assert_eq!(problem.status, 500);
        assert!(problem.detail.is_none());
    }
}
