//! Sign-in handoff, the home page (consents and requests), decisions, and the ledger.

use poem::{
    Body, Request, Response, handler,
    http::{StatusCode, header},
    web::{Data, Path},
};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};

use super::{Visitor, lifetimes, query_param};
use crate::{
    AppState, clock,
    consent::{self, ConsentActor, Decision, PolicyRef, RecordRequest, ledger},
    error::ApiError,
    http::client_ip,
    policy, purpose,
    purpose::{LegalBasis, Purpose},
    request,
    subject::{self, Subject},
    web::Lang,
};

/// `GET /portal/session?token=`: the main app hands a signed-in person over with a subject
/// token; the answer starts a session and sends them home. The token leaves the address bar
/// with the redirect, and works once and only within five minutes of its `iat`: the link also
/// sits in browser history and proxy logs. A session this browser already had ends, so that
/// a handoff never leaves two people's sessions in one browser.
#[handler]
pub async fn sign_in(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    state.rate_limiter.check(client_ip(req))?;
    let mut visitor = Visitor::load(state, req).await?;
    let tokens = state.subject_tokens.as_ref().ok_or_else(|| {
        ApiError::unauthorized("the portal's sign-in is not configured")
            .with_reason("token_invalid")
    })?;
    let token = query_param(req, "token").unwrap_or_default();
    let (external_id, expires) = tokens
        .verify_handoff(&token, clock::now().timestamp())
        .map_err(|_| {
            ApiError::unauthorized("the sign-in link is invalid or has expired")
                .with_reason("token_invalid")
        })?;
    let started = crate::actions::portal_sessions::hand_off(
        &state.db,
        &token,
        expires,
        &external_id.0,
        visitor.session.as_deref(),
        lifetimes(state),
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "this sign-in link has been used; open the portal from the app again",
        )
        .with_reason("handoff_used")
    })?;
    let max_age = (started.expires_at - clock::now()).num_seconds();
    visitor.set_session(Some(&started.token), max_age);
    Ok(visitor.redirect("/portal"))
}

/// `POST /portal/signout`: ends the session here and in the browser.
#[handler]
pub async fn sign_out(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let mut visitor = Visitor::load(state, req).await?;
    visitor.form(body).await?;
    if let Some(token) = &visitor.session {
        crate::actions::portal_sessions::sign_out(&state.db, token).await?;
    }
    visitor.set_session(None, 0);
    Ok(visitor.redirect("/portal?signed_out=1"))
}

/// `GET /portal`: the person's consents and requests, or how to sign in.
#[handler]
pub async fn show(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let Some(person) = visitor.subject.clone() else {
        return Ok(visitor.page(
            state,
            "signed_out",
            json!({
                "sign_in_url": state.config.portal.sign_in_url,
                "signed_out_now": query_param(req, "signed_out").is_some(),
            }),
            StatusCode::OK,
        ));
    };
    let conn = state.db.conn();
    let lang = visitor.lang;
    let document = policy::current(
        conn,
        policy::DEFAULT_KEY,
        person.jurisdiction.as_deref(),
        Some(lang.tag()),
        clock::now(),
    )
    .await?;
    let current = ledger::current(conn, &person.id).await?;
    let purposes = purpose::list(conn, false).await?;
    let mut asked = Vec::new();
    let mut separate = Vec::new();
    let mut without_consent = Vec::new();
    for p in &purposes {
        let state_of = current.iter().find(|c| c.purpose_key == p.key);
        let view = purpose_view(p, lang, state_of);
        if p.legal_basis != LegalBasis::Consent {
            without_consent.push(view);
        } else if p.separate_consent {
            separate.push(view);
        } else {
            asked.push(view);
        }
    }
    let mut reconsent = Vec::new();
    if let Some(doc) = &document {
        for c in current.iter().filter(|c| c.needs_reconsent) {
            if doc.version > c.policy_version {
                reconsent.push(json!({
                    "purpose": purposes.iter().find(|p| p.key == c.purpose_key)
                        .and_then(|p| p.text(lang.tag())).map(|t| t.title.clone())
                        .unwrap_or_else(|| c.purpose_key.clone()),
                    "summary": doc.change_summary,
                    "diff_url": format!("/portal/policies/{}/diff?from={}&to={}", doc.key, c.policy_version, doc.version),
                }));
            }
        }
    }
    let requests: Vec<Value> = request::of_subject(conn, &person.id)
        .await?
        .into_iter()
        .map(|r| request_line(&r))
        .collect();
    let changed = query_param(req, "changed");
    let data = json!({
        "policy": document.as_ref().map(|d| json!({
            "id": d.id, "key": d.key, "version": d.version, "title": d.title,
        })),
        "asked": asked,
        "separate": separate,
        "without_consent": without_consent,
        "reconsent": reconsent,
        "requests": requests,
        "restricted": person.restricted,
        "guardian_pending": person.age_status == subject::AgeStatus::MinorGuardianPending,
        "changed": changed.and_then(|key| purposes.iter().find(|p| p.key == key))
            .map(|p| json!({
                "title": p.text(lang.tag()).map(|t| t.title.clone()).unwrap_or_default(),
                "granted": query_param(req, "granted").as_deref() == Some("true"),
            })),
    });
    Ok(visitor.page(state, "home", data, StatusCode::OK))
}

/// What the home page shows of one purpose.
fn purpose_view(
    p: &Purpose,
    lang: Lang,
    current: Option<&consent::model::consents::Model>,
) -> Value {
    let text = p.text(lang.tag());
    json!({
        "key": p.key,
        "title": text.map(|t| t.title.clone()).unwrap_or_else(|| p.key.clone()),
        "description": text.map(|t| t.description.clone()).unwrap_or_default(),
        "legal_basis": p.legal_basis.to_value(),
        "required": p.required,
        "separate_reason": p.separate_consent_reason.map(|r| r.to_value()),
        "recipients": p.recipients.iter().map(|r| json!({
            "name": r.name, "role": r.role, "country": r.country,
        })).collect::<Vec<_>>(),
        "retention": p.retention_period,
        // The button: a grant waiting for fresh consent offers to give it again.
        "granted": current.is_some_and(|c| c.status == consent::model::ConsentStatus::Granted && !c.needs_reconsent),
        // Whether the decision counts now, by the same rule as the consent check: a grant
        // waiting for fresh consent still counts until the new version takes effect.
        "counts": current.is_some_and(|c| c.counts(clock::now())),
        "reconsent_due_at": current.and_then(|c| c.reconsent_due_at).map(|d| d.to_rfc3339()),
        "status": current.map(|c| c.status.to_value()),
        "needs_reconsent": current.is_some_and(|c| c.needs_reconsent),
        "decided_at": current.map(|c| c.updated_at.to_rfc3339()),
    })
}

/// One of the person's requests in a list.
pub(super) fn request_line(r: &request::Request) -> Value {
    json!({
        "id": r.id,
        "kind": r.kind.to_value(),
        "status": r.status.to_value(),
        "law": r.law.to_value(),
        "received_at": r.received_at.to_rfc3339(),
        "due_date": r.due_date.map(|d| d.to_string()),
        "open": request::is_open(r),
    })
}

/// `POST /portal/consents/{purpose}`: grants or withdraws one purpose, against the policy
/// document the page showed. Granting and withdrawing are the same form with the same button.
#[handler]
pub async fn decide(
    req: &Request,
    Path(purpose_key): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let form = visitor.form(body).await?;
    let person = visitor.signed_in()?.clone();
    let granted = match form.get("granted") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(ApiError::bad_request("choose to give or withdraw consent")),
    };
    let conn = state.db.conn();
    let policy_id = form.get("policy").unwrap_or_default();
    let shown = policy::get(conn, policy_id)
        .await
        .map_err(|_| ApiError::bad_request("the policy shown is unknown; reload the page"))?;
    record(
        state,
        req,
        &person,
        visitor.lang,
        &purpose_key,
        granted,
        &shown,
    )
    .await?;
    Ok(visitor.redirect(&format!(
        "/portal?changed={}&granted={granted}",
        crate::web::urlencode(&purpose_key)
    )))
}

async fn record(
    state: &AppState,
    req: &Request,
    person: &Subject,
    lang: Lang,
    purpose_key: &str,
    granted: bool,
    shown: &policy::Policy,
) -> Result<(), ApiError> {
    let (user_agent, ip) = crate::http::client_evidence(req);
    consent::record_alone(
        &state.decisions,
        RecordRequest {
            external_id: person.external_id.clone(),
            decisions: vec![Decision {
                purpose: purpose_key.to_string(),
                granted,
            }],
            policy: PolicyRef {
                key: shown.key.clone(),
                version: shown.version,
                id: Some(shown.id.clone()),
            },
            actor: ConsentActor::Subject,
            channel: "portal".into(),
            language: Some(lang.tag().into()),
            jurisdiction: None,
            user_agent,
            ip,
            occurred_at: None,
            reason: None,
            audited_by: None,
        },
    )
    .await?;
    Ok(())
}

/// `GET /portal/history`: the person's ledger, newest first, and whether its chain holds.
#[handler]
pub async fn history(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    const PAGE: u64 = 50;
    let visitor = Visitor::load(state, req).await?;
    let person = visitor.signed_in()?.clone();
    let conn = state.db.conn();
    let before = query_param(req, "before").and_then(|b| b.parse::<i64>().ok());
    let events = ledger::history(conn, &person.id, before, PAGE).await?;
    let chain = ledger::verify(conn, &person).await?;
    let purposes = purpose::list(conn, true).await?;
    let lang = visitor.lang;
    let next = (events.len() as u64 == PAGE)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let data = json!({
        "events": events.iter().map(|e| json!({
            "id": e.id,
            "purpose": purposes.iter().find(|p| p.key == e.purpose_key)
                .and_then(|p| p.text(lang.tag())).map(|t| t.title.clone())
                .unwrap_or_else(|| e.purpose_key.clone()),
            "action": e.action.to_value(),
            "actor": e.actor.to_value(),
            "channel": e.channel,
            "occurred_at": e.occurred_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "chain_ok": chain.ok,
        "checked": chain.checked,
        "next_before": next,
    });
    Ok(visitor.page(state, "history", data, StatusCode::OK))
}

/// `GET /portal/history/{event}/receipt`: the receipt of one event, as a JSON file to keep.
#[handler]
pub async fn download_receipt(
    req: &Request,
    Path(event_id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    use poem_openapi::types::ToJSON;

    let visitor = Visitor::load(state, req).await?;
    let person = visitor.signed_in()?;
    let receipt = crate::actions::receipts::of_event(
        state.db.conn(),
        &state.config,
        &person.external_id,
        &event_id,
    )
    .await?;
    let body = serde_json::to_vec_pretty(&receipt.to_json().unwrap_or_default())
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Response::builder()
        .content_type("application/json")
        .header(
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"consent-receipt-{}.json\"",
                receipt.receipt_id
            ),
        )
        .body(body))
}
