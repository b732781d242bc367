//! The consent script's API: the experience a visitor is shown, their decisions, and the main
//! app joining a visitor's choices to the person who signed in. The first two are public (any
//! page of the operator's sites calls them, across origins) and rate-limited per client.

use poem::Request;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{Experience, ExperienceError};
use crate::{
    AppState,
    actions::banner::{self, Browser, Method},
    api_tags::ApiTags,
    auth::{ApiKey, Role},
    consent::Decision,
    error::{ApiError, FieldError},
    vocab::CountryCode,
    web::Lang,
};

pub struct ExperienceApi {
    state: AppState,
}

impl ExperienceApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// The experience, cacheable per country and language.
#[derive(ApiResponse)]
enum ExperienceResponse {
    #[oai(status = 200)]
    Ok(
        Json<Experience>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Vary")] String,
    ),
}

/// One purpose decided.
#[derive(Object)]
struct VisitorDecision {
    #[oai(validator(min_length = 1, max_length = 64))]
    purpose: String,
    granted: bool,
}

/// A visitor's decisions, against the experience they were shown.
#[derive(Object)]
struct VisitorDecisions {
    /// The visitor's random id, kept in the script's first-party cookie.
    #[oai(validator(min_length = 16, max_length = 64, pattern = "^[A-Za-z0-9_-]+$"))]
    visitor: String,
    /// The `revision` of the experience shown.
    #[oai(validator(min_length = 1, max_length = 64))]
    revision: String,
    /// The country the experience was for, if any.
    jurisdiction: Option<CountryCode>,
    /// The language it was shown in.
    #[oai(validator(max_length = 16))]
    lang: Option<String>,
    #[oai(validator(min_items = 1, max_items = 50))]
    decisions: Vec<VisitorDecision>,
    /// `banner` (the visitor chose) or `gpc` (the browser's Global Privacy Control signal).
    #[oai(default = "default_method")]
    method: String,
}

fn default_method() -> String {
    "banner".into()
}

/// What was recorded.
#[derive(Object)]
struct VisitorRecorded {
    /// Decisions that changed the record (repeating the current state records nothing).
    recorded: u32,
    revision: String,
}

/// A visitor who signed in.
#[derive(Object)]
struct VisitorLink {
    #[oai(validator(min_length = 16, max_length = 64, pattern = "^[A-Za-z0-9_-]+$"))]
    visitor: String,
}

/// What linking joined.
#[derive(Object)]
struct VisitorLinked {
    /// Choices recorded in the person's ledger.
    joined: u32,
}

impl ExperienceApi {
    /// The visitor's country: the page's word, else the header a CDN sets, else the operator's
    /// default, else none (the policy for everywhere else).
    fn country(&self, req: &Request, given: Option<CountryCode>) -> Option<CountryCode> {
        let banner = &self.state.config.banner;
        given
            .or_else(|| {
                banner
                    .country_header
                    .as_deref()
                    .and_then(|h| req.headers().get(h))
                    .and_then(|v| v.to_str().ok())
                    .and_then(CountryCode::parse)
            })
            .or_else(|| banner.default_country.clone())
    }

    async fn experience(
        &self,
        country: Option<&CountryCode>,
        lang: Lang,
    ) -> Result<Experience, ApiError> {
        let pages = self.state.pages.clone();
        super::build(
            self.state.db.conn(),
            &self.state.config,
            country.map(CountryCode::as_str),
            lang.tag(),
            |key| pages.words(key, lang, &[]),
            |iso| crate::web::page::period_words(iso, lang),
        )
        .await
        .map_err(|e| match e {
            ExperienceError::NoPolicy => {
                ApiError::conflict(e.to_string()).with_reason("policy_not_published")
            }
            ExperienceError::Db(e) => e.into(),
        })
    }
}

/// The page's language: `lang`, else the browser's `Accept-Language`, else English.
fn language(req: &Request, lang: Option<&str>) -> Lang {
    lang.and_then(Lang::parse)
        .or_else(|| {
            req.headers()
                .get(poem::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(Lang::En)
}

#[OpenApi]
impl ExperienceApi {
    /// What a visitor is asked
    ///
    /// The purposes the consent banner asks about (legal basis consent, active), their texts,
    /// recipients and retention, the policy version in force, the banner's words, and a
    /// `revision` that changes whenever any of them does. The country comes from
    /// `jurisdiction`, else the header named by `banner.country_header`, else
    /// `banner.default_country`; the language from `lang`, else `Accept-Language`. Public and
    /// cacheable for five minutes, varying by those headers.
    #[oai(path = "/v1/experience", method = "get", tag = "ApiTags::Public")]
    async fn get(
        &self,
        req: &Request,
        jurisdiction: Query<Option<CountryCode>>,
        #[oai(validator(max_length = 16))] lang: Query<Option<String>>,
    ) -> Result<ExperienceResponse, ApiError> {
        self.state.rate_limiter.check(crate::http::client_ip(req))?;
        let country = self.country(req, jurisdiction.0);
        let experience = self
            .experience(country.as_ref(), language(req, lang.0.as_deref()))
            .await?;
        let vary = match &self.state.config.banner.country_header {
            Some(header) => format!("Accept-Language, {header}"),
            None => "Accept-Language".into(),
        };
        Ok(ExperienceResponse::Ok(
            Json(experience),
            "public, max-age=300".into(),
            vary,
        ))
    }

    /// Record a visitor's decisions
    ///
    /// Recorded through the consent ledger's rules as the consent of an anonymous visitor (the
    /// random id from the script's cookie), with the experience's revision, the SHA-256 of the
    /// texts shown, channel `banner` (or `gpc` for a Global Privacy Control signal), the user
    /// agent and the IP address as `consent.ip_evidence` says. The revision must be the one
    /// served now (409 `experience_changed` otherwise: the script shows the new one); purposes
    /// outside the experience are refused.
    #[oai(
        path = "/v1/experience/decisions",
        method = "post",
        tag = "ApiTags::Public"
    )]
    async fn decide(
        &self,
        req: &Request,
        body: Json<VisitorDecisions>,
    ) -> Result<Json<VisitorRecorded>, ApiError> {
        self.state.rate_limiter.check(crate::http::client_ip(req))?;
        let body = body.0;
        let method = match body.method.as_str() {
            "banner" => Method::Banner,
            "gpc" => Method::Gpc,
            _ => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "method",
                    "`banner` or `gpc`",
                )]));
            }
        };
        let country = self.country(req, body.jurisdiction);
        let shown = self
            .experience(country.as_ref(), language(req, body.lang.as_deref()))
            .await?;
        if !crate::crypto::constant_time_eq(shown.revision.as_bytes(), body.revision.as_bytes()) {
            return Err(ApiError::conflict(
                "the experience changed since it was shown; show the new one",
            )
            .with_reason("experience_changed"));
        }
        let asked = |key: &str| {
            shown
                .purposes
                .iter()
                .any(|p| p.key == key && (method == Method::Banner || p.gpc_opt_out))
        };
        let errors: Vec<FieldError> = body
            .decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| !asked(&d.purpose) || (method == Method::Gpc && d.granted))
            .map(|(i, _)| {
                FieldError::new(
                    format!("decisions.{i}.purpose"),
                    "not a purpose this visitor is asked about (or granted through a GPC signal)",
                )
            })
            .collect();
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
        let (user_agent, ip) = crate::http::client_evidence(req);
        let decisions = body
            .decisions
            .into_iter()
            .map(|d| Decision {
                purpose: d.purpose,
                granted: d.granted,
            })
            .collect();
        let recorded = banner::record(
            &self.state.decisions,
            &body.visitor,
            &shown,
            decisions,
            method,
            Browser { user_agent, ip },
        )
        .await?;
        Ok(Json(VisitorRecorded {
            recorded: recorded.iter().filter(|r| r.event_id.is_some()).count() as u32,
            revision: shown.revision,
        }))
    }

    /// Join a visitor's choices to a person
    ///
    /// When a person signs in on a browser where they chose in the banner, the main app sends
    /// the visitor id from the `consentry` cookie: each current choice of the visitor is
    /// recorded in the person's ledger as it was made (policy version, time, channel), naming the
    /// visitor's event as its source. Repeating it records nothing new.
    #[oai(
        path = "/v1/subjects/:external_id/visitors",
        method = "post",
        tag = "ApiTags::Service"
    )]
    async fn link(
        &self,
        auth: ApiKey,
        #[oai(validator(min_length = 1, max_length = 255))] external_id: Path<String>,
        body: Json<VisitorLink>,
    ) -> Result<Json<VisitorLinked>, ApiError> {
        auth.0.require(Role::Service)?;
        if external_id.0.starts_with(super::VISITOR_PREFIX) {
            return Err(ApiError::validation(vec![FieldError::new(
                "external_id",
                "a person's id, not a visitor's",
            )]));
        }
        let joined = banner::link(
            &self.state.db,
            &self.state.config,
            &external_id.0,
            &body.0.visitor,
        )
        .await?;
        Ok(Json(VisitorLinked {
            joined: joined.iter().filter(|r| r.event_id.is_some()).count() as u32,
        }))
    }
}
