//! The age gate over HTTP: `POST /v1/age-gate/check` (public, rate-limited, stores nothing),
//! `POST /v1/me/guardian` (a minor names a guardian) and `POST /v1/guardian/confirm` (the
//! guardian's decisions, authenticated by the emailed link's token).

use chrono::NaiveDate;
use poem::Request;
use poem_openapi::{Object, OpenApi, payload::Json};

use super::{AgeBand, AgeEvidence, Law, Outcome, assess};
use crate::{
    AppState,
    api_tags::ApiTags,
    audit::Actor,
    auth::SubjectToken,
    consent::api::{DecisionBody, PolicyShown, RecordedView, decisions},
    error::{ApiError, FieldError},
};
use crate::{actions::guardians, guardian};

pub struct AgeGateApi {
    state: AppState,
}

impl AgeGateApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// Who is asking: a country and either a birth date or a declared age band.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AgeGateQuestion {
    /// ISO 3166-1 alpha-2 country code.
    #[oai(validator(pattern = "^[A-Za-z]{2}$"))]
    country: String,
    birth_date: Option<NaiveDate>,
    age_band: Option<AgeBand>,
}

/// The gate's answer.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AgeGateAnswer {
    /// Whole years on the day of the check (absent for an age band).
    #[oai(skip_serializing_if_is_none)]
    age: Option<u32>,
    /// The age from which the person may consent alone.
    threshold: u32,
    law: Law,
    outcome: Outcome,
}

/// A minor names the parent or guardian to ask.
#[derive(Object)]
struct GuardianRequest {
    #[oai(validator(min_length = 3, max_length = 320))]
    guardian_email: String,
}

/// The guardian has been emailed a link.
#[derive(Object)]
struct GuardianRequested {
    /// When the link stops working.
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// The guardian's decisions, one per purpose.
#[derive(Object)]
struct GuardianConfirmation {
    /// The token from the emailed link.
    #[oai(validator(min_length = 16, max_length = 128))]
    token: String,
    #[oai(validator(min_items = 1, max_items = 50))]
    decisions: Vec<DecisionBody>,
    /// The policy version the guardian was shown.
    #[oai(flatten)]
    policy: PolicyShown,
}

#[OpenApi]
impl AgeGateApi {
    /// Check the age gate
    ///
    /// Whether a person may consent alone, or needs a parent or guardian. Nothing is stored.
    #[oai(path = "/v1/age-gate/check", method = "post", tag = "ApiTags::Public")]
    async fn check(
        &self,
        req: &Request,
        body: Json<AgeGateQuestion>,
    ) -> Result<Json<AgeGateAnswer>, ApiError> {
        self.state.rate_limiter.check(crate::http::client_ip(req))?;
        let evidence = match (body.0.birth_date, body.0.age_band) {
            (Some(date), None) => AgeEvidence::BirthDate(date),
            (None, Some(band)) => AgeEvidence::Band(band),
            _ => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "birth_date",
                    "give either `birth_date` or `age_band`",
                )]));
            }
        };
        let today = chrono::Utc::now().date_naive();
        let answer =
            assess(&self.state.config.age, &body.0.country, evidence, today).ok_or_else(|| {
                ApiError::validation(vec![FieldError::new("birth_date", "lies in the future")])
            })?;
        Ok(Json(AgeGateAnswer {
            age: answer.age,
            threshold: answer.threshold,
            law: answer.law,
            outcome: answer.outcome,
        }))
    }

    /// Ask a guardian to consent
    ///
    /// For a person below the age of digital consent: emails the guardian a single-use link
    /// (valid for 7 days) to decide on each purpose. Asking again sends a new link.
    #[oai(path = "/v1/me/guardian", method = "post", tag = "ApiTags::Portal")]
    async fn request_guardian(
        &self,
        auth: SubjectToken,
        body: Json<GuardianRequest>,
    ) -> Result<Json<GuardianRequested>, ApiError> {
        let expires_at = guardians::request(
            &self.state.db,
            &self.state.config,
            &auth.0.0,
            &body.0.guardian_email,
            &Actor::Subject,
        )
        .await?;
        Ok(Json(GuardianRequested { expires_at }))
    }

    /// Record a guardian's consent
    ///
    /// Authenticated by the token from the guardian's link. The decisions answer whole
    /// questions: the purposes that need no consent of their own together, and each that does
    /// alone (for a child in China, every purpose); the link works until every question is
    /// answered, and the guardian is then emailed a lasting link to change the choices. Each
    /// purpose is recorded as its own decision with actor `guardian`; the minor is then
    /// `minor_guardian_verified`. If any decision is refused, nothing is recorded, the link
    /// still works, and the 422 names the purpose.
    #[oai(
        path = "/v1/guardian/confirm",
        method = "post",
        tag = "ApiTags::Public"
    )]
    async fn confirm_guardian(
        &self,
        req: &Request,
        body: Json<GuardianConfirmation>,
    ) -> Result<Json<Vec<RecordedView>>, ApiError> {
        self.state.rate_limiter.check(crate::http::client_ip(req))?;
        let (user_agent, ip) = crate::http::client_evidence(req);
        let GuardianConfirmation {
            token,
            decisions: list,
            policy,
        } = body.0;
        let answered = guardians::answer(
            &self.state.db,
            &self.state.config,
            &token,
            decisions(list),
            policy.policy_ref(),
            guardian::Evidence { user_agent, ip },
        )
        .await?;
        Ok(Json(
            answered.recorded.into_iter().map(Into::into).collect(),
        ))
    }
}
