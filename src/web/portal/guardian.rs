//! The page a guardian's email links to: the child's purposes, a decision for each (none made
//! in advance), and one button that records them. A used, expired or unknown link has a page of
//! its own that says what to do next.

use poem::{Body, Request, Response, handler, http::StatusCode, web::Data};
use serde_json::{Value, json};

use super::{Visitor, query_param};
use crate::{
    AppState, clock,
    consent::{Decision, PolicyRef},
    error::ApiError,
    guardian::{self, GuardianError},
    policy,
    purpose::{self, LegalBasis},
    subject::Subject,
    web::{FormData, Lang},
};

/// The page for a link that cannot be used, or `None` when the error is of another kind.
fn link_state(state: &AppState, visitor: Visitor, err: &GuardianError) -> Option<Response> {
    let (which, status) = match err {
        GuardianError::UnknownToken => ("unknown", StatusCode::NOT_FOUND),
        GuardianError::Used => ("used", StatusCode::GONE),
        GuardianError::Expired => ("expired", StatusCode::GONE),
        _ => return None,
    };
    Some(visitor.page(
        state,
        "guardian_link",
        json!({"state": {which: true}}),
        status,
    ))
}

/// What the form shows: each consent-based purpose with who receives the data and for how long,
/// the decisions made so far, and the policy document in force for the child.
async fn form_data(
    state: &AppState,
    lang: Lang,
    minor: &Subject,
    token: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
    form: &FormData,
    errors: &[(String, String)],
) -> Result<Value, ApiError> {
    let conn = state.db.conn();
    let document = policy::current(
        conn,
        policy::DEFAULT_KEY,
        minor.jurisdiction.as_deref(),
        Some(lang.tag()),
        clock::now(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("no privacy policy is in force"))?;
    let purposes: Vec<Value> = purpose::list(conn, false)
        .await?
        .iter()
        .filter(|p| p.legal_basis == LegalBasis::Consent)
        .map(|p| {
            let text = p.text(lang.tag());
            let answer = form.get(&format!("decision.{}", p.key));
            json!({
                "key": p.key,
                "title": text.map(|t| t.title.clone()).unwrap_or_else(|| p.key.clone()),
                "description": text.map(|t| t.description.clone()).unwrap_or_default(),
                "required": p.required,
                "separate_reason": p.separate_consent_reason.map(|r| sea_orm::ActiveEnum::to_value(&r)),
                "recipients": p.recipients.iter().map(|r| json!({"name": r.name, "country": r.country})).collect::<Vec<_>>(),
                "retention": p.retention_period,
                "error": errors.iter().find(|(f, _)| *f == format!("decision.{}", p.key)).map(|(_, m)| m),
                "yes": answer == Some("yes"),
                "no": answer == Some("no"),
            })
        })
        .collect();
    Ok(json!({
        "token": token,
        "expires_at": expires_at.to_rfc3339(),
        "policy": {"id": document.id, "key": document.key, "version": document.version, "title": document.title},
        "one_at_a_time": crate::law::child_needs_separate_consent(minor.jurisdiction.as_deref()),
        "purposes": purposes,
        "errors": errors.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>(),
    }))
}

/// `GET /portal/guardian/confirm?token=`.
#[handler]
pub async fn show(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    state.rate_limiter.check(crate::http::client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    let token = query_param(req, "token").unwrap_or_default();
    let (link, minor) = match guardian::peek(state.db.conn(), &token).await {
        Ok(found) => found,
        Err(e) => return link_state(state, visitor, &e).ok_or_else(|| e.into()),
    };
    let data = form_data(
        state,
        visitor.lang,
        &minor,
        &token,
        link.expires_at,
        &FormData::default(),
        &[],
    )
    .await?;
    Ok(visitor.page(state, "guardian", data, StatusCode::OK))
}

/// `POST /portal/guardian/confirm`: records every decision at once, or nothing.
#[handler]
pub async fn confirm(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    state.rate_limiter.check(crate::http::client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    let form = visitor.form(body).await?;
    let token = form.get("token").unwrap_or_default().to_string();
    let (link, minor) = match guardian::peek(state.db.conn(), &token).await {
        Ok(found) => found,
        Err(e) => return link_state(state, visitor, &e).ok_or_else(|| e.into()),
    };
    let lang = visitor.lang;
    let shown = form_data(state, lang, &minor, &token, link.expires_at, &form, &[]).await?;
    let mut decisions = Vec::new();
    let mut errors = Vec::new();
    for p in shown["purposes"].as_array().into_iter().flatten() {
        let key = p["key"].as_str().unwrap_or_default();
        match form.get(&format!("decision.{key}")) {
            Some("yes") => decisions.push(Decision {
                purpose: key.to_string(),
                granted: true,
            }),
            Some("no") => decisions.push(Decision {
                purpose: key.to_string(),
                granted: false,
            }),
            _ => errors.push((
                format!("decision.{key}"),
                state.pages.words(
                    "form_error.decision",
                    lang,
                    &[("title", p["title"].as_str().unwrap_or(key))],
                ),
            )),
        }
    }
    let policy = PolicyRef {
        key: shown["policy"]["key"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        version: shown["policy"]["version"].as_i64().unwrap_or_default() as i32,
        id: form.get("policy").map(str::to_string),
    };
    if errors.is_empty() {
        let (user_agent, ip) = crate::http::client_evidence(req);
        match crate::actions::guardians::confirm(
            &state.db,
            &state.config,
            &token,
            decisions.clone(),
            policy,
            guardian::Evidence { user_agent, ip },
        )
        .await
        {
            Ok(_) => {
                let granted = decisions.iter().filter(|d| d.granted).count();
                let data = json!({"granted": granted, "refused": decisions.len() - granted});
                return Ok(visitor.page(state, "guardian_done", data, StatusCode::OK));
            }
            Err(GuardianError::Refused { purpose, source }) => {
                let reason = ApiError::from(source).reason().map(str::to_string);
                let title = shown["purposes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["key"] == purpose.as_str())
                    .and_then(|p| p["title"].as_str())
                    .unwrap_or(&purpose)
                    .to_string();
                errors.push((
                    format!("decision.{purpose}"),
                    refusal(lang, &title, reason.as_deref()),
                ));
            }
            Err(e) => return link_state(state, visitor, &e).ok_or_else(|| e.into()),
        }
    }
    let data = form_data(state, lang, &minor, &token, link.expires_at, &form, &errors).await?;
    Ok(visitor.page(state, "guardian", data, StatusCode::UNPROCESSABLE_ENTITY))
}

/// Why the ledger refused a guardian's decision, in words the guardian can act on.
fn refusal(lang: Lang, title: &str, reason: Option<&str>) -> String {
    match (lang, reason) {
        (Lang::En, Some("separate_consent")) => format!(
            "“{title}” needs consent on its own under Chinese law: agree to one use at a time. \
             Answer no to the others for now; the app can send a new link for them."
        ),
        (Lang::Zh, Some("separate_consent")) => format!(
            "根据《个人信息保护法》，“{title}”需要单独同意：每次只能同意一项。其他各项请先选择不同意，之后可请应用重新发送链接。"
        ),
        (Lang::En, Some("required_purpose")) => {
            format!("“{title}” is needed for the service to work and cannot be refused.")
        }
        (Lang::Zh, Some("required_purpose")) => {
            format!("“{title}”是提供服务所必需的，不能拒绝。")
        }
        (Lang::En, _) => {
            format!("“{title}” could not be recorded. Nothing was recorded; try again.")
        }
        (Lang::Zh, _) => format!("“{title}”未能记录，所有选择均未保存，请重试。"),
    }
}
