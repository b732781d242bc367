//! Looking a person up (by the main app's id or an email address) and everything held about
//! them: profile, age status, consents and the ledger's check, requests, data items with their
//! legal holds.

use poem::{
    Body, Request, Response, handler,
    http::StatusCode,
    web::{Data, Path},
};
use sea_orm::ActiveEnum;
use serde_json::json;

use super::Staff;
use crate::{
    AppState,
    auth::Role,
    consent::ledger,
    error::{ApiError, FieldError},
    request,
    retention::items,
    subject,
    web::{Lang, browser::query_param, urlencode},
};

/// Items shown per page.
const ITEMS_PAGE: u64 = 50;

/// `GET /console/subjects?q=`: one match opens the profile; several are listed.
#[handler]
pub async fn search(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let q = query_param(req, "q").unwrap_or_default().trim().to_string();
    let conn = state.db.conn();
    let mut found = Vec::new();
    if !q.is_empty() {
        found.extend(subject::find(conn, &q).await?);
        if q.contains('@') {
            found.extend(subject::with_email(conn, &q).await?);
        }
    }
    found.retain(|s| s.erased_at.is_none());
    if let [one] = found.as_slice() {
        return Ok(staff.redirect(&format!(
            "/console/subjects/{}",
            urlencode(&one.external_id)
        )));
    }
    let data = json!({
        "section": "subjects",
        "q": q,
        "searched": !q.is_empty(),
        "found": found.iter().map(|s| json!({"external_id": s.external_id, "jurisdiction": s.jurisdiction})).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "subjects", data, StatusCode::OK))
}

/// `GET /console/subjects/{external_id}`.
#[handler]
pub async fn profile(
    req: &Request,
    Path(external_id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let after = query_param(req, "after");
    let data = profile_data(state, &external_id, after.as_deref(), &[], staff.lang).await?;
    Ok(staff.page(state, "subject", data, StatusCode::OK))
}

async fn profile_data(
    state: &AppState,
    external_id: &str,
    after: Option<&str>,
    errors: &[FieldError],
    lang: Lang,
) -> Result<serde_json::Value, ApiError> {
    let conn = state.db.conn();
    let titles = crate::purpose::titles(conn, lang.tag()).await?;
    let person = subject::find(conn, external_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such person"))?;
    let consents = ledger::current(conn, &person.id).await?;
    let chain = ledger::verify(conn, &person).await?;
    let events = ledger::history(conn, &person.id, None, 20).await?;
    let requests = request::of_subject(conn, &person.id).await?;
    let (shown, next) = items::page_of_subject(conn, &person.id, after, ITEMS_PAGE).await?;
    let total = items::count_of_subject(conn, &person.id).await?;
    Ok(json!({
        "section": "subjects",
        "person": {
            "external_id": person.external_id,
            "email": person.email,
            "locale": person.locale,
            "jurisdiction": person.jurisdiction,
            "birth_date": person.birth_date.map(|d| d.to_string()),
            "age_status": person.age_status.to_value(),
            "guardian_email": person.guardian_email,
            "restricted": person.restricted,
            "created_at": person.created_at.to_rfc3339(),
        },
        "consents": consents.iter().map(|c| json!({
            "title": titles.get(&c.purpose_key).unwrap_or(&c.purpose_key), "status": c.status.to_value(), "version": c.policy_version,
            "needs_reconsent": c.needs_reconsent, "updated_at": c.updated_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "chain_ok": chain.ok,
        "checked": chain.checked,
        "events": events.iter().map(|e| json!({
            "title": titles.get(&e.purpose_key).unwrap_or(&e.purpose_key), "action": e.action.to_value(), "actor": e.actor.to_value(),
            "channel": e.channel, "at": e.occurred_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "requests": requests.iter().map(|r| json!({
            "id": r.id, "kind": r.kind.to_value(), "status": r.status.to_value(),
            "due_date": r.due_date.map(|d| d.to_string()),
        })).collect::<Vec<_>>(),
        "items": shown.iter().map(|i| json!({
            "item_ref": i.external_ref, "category": i.category, "legal_hold": i.legal_hold,
            "purge_after": i.purge_after.map(|t| t.to_rfc3339()),
            "erased": i.erased_at.is_some(),
        })).collect::<Vec<_>>(),
        "items_total": total,
        "next_after": next,
        "errors": errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
    }))
}

/// `POST /console/subjects/{external_id}/holds`: sets or releases one item's legal hold, with
/// the reason the audit log keeps.
#[handler]
pub async fn hold(
    req: &Request,
    Path(external_id): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let Some(reason) = form.get("reason") else {
        let errors = [FieldError::new(
            "reason",
            "write why; the audit log keeps it",
        )];
        let data = profile_data(state, &external_id, None, &errors, staff.lang).await?;
        return Ok(staff.page(state, "subject", data, StatusCode::UNPROCESSABLE_ENTITY));
    };
    let item = form.get("item").unwrap_or_default();
    let held = form.get("held") == Some("true");
    crate::actions::retention_rules::set_hold(
        &state.db,
        &external_id,
        item,
        held,
        reason,
        &staff.actor(),
    )
    .await?;
    Ok(staff.redirect(&format!("/console/subjects/{}", urlencode(&external_id))))
}

/// `POST /console/subjects/{external_id}/lift`: lifts a restriction of processing, after the
/// person is told (GDPR Art 18(3)).
#[handler]
pub async fn lift(
    req: &Request,
    Path(external_id): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Reviewer, body).await?;
    let Some(reason) = form.get("reason") else {
        let errors = [FieldError::new("reason", "write why; the person is told")];
        let data = profile_data(state, &external_id, None, &errors, staff.lang).await?;
        return Ok(staff.page(state, "subject", data, StatusCode::UNPROCESSABLE_ENTITY));
    };
    crate::actions::reviews::lift_restriction(
        &state.db,
        &state.config,
        &external_id,
        reason,
        &staff.actor(),
    )
    .await?;
    Ok(staff.redirect(&format!("/console/subjects/{}", urlencode(&external_id))))
}
