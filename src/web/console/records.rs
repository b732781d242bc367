//! What the company has declared: the record of processing, purposes, retention rules with
//! their coverage, and policy documents with the draft editor.

use chrono::{DateTime, NaiveDateTime, Utc};
use poem::{
    Body, Request, Response, handler,
    http::{StatusCode, header},
    web::{Data, Path},
};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};

use super::Staff;
use crate::{
    AppState,
    actions::policies,
    auth::Role,
    clock,
    error::{ApiError, FieldError},
    policy::{self, DraftChanges, PolicyStatus, document::Document},
    purpose,
    retention::{self, register},
    web::{FormData, markdown},
};

/// `GET /console/register`: the record of processing activities.
#[handler]
pub async fn register_page(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let lines = register_lines(state, staff.lang.tag()).await?;
    let data = json!({
        "section": "register",
        "lines": lines.iter().map(|l| json!({
            "purpose": l.purpose, "title": l.title, "legal_basis": l.legal_basis.to_value(),
            "categories": l.data_categories, "recipients": l.recipients,
            "purpose_retention": l.purpose_retention, "category_retention": l.category_retention,
            "holders": l.holders,
            "separate": l.separate_consent_reason, "outside_eea": l.outside_eea,
            "outside_china": l.outside_china, "archived": l.archived,
        })).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "register", data, StatusCode::OK))
}

async fn register_lines(state: &AppState, language: &str) -> Result<Vec<register::Line>, ApiError> {
    let conn = state.db.conn();
    let purposes = purpose::list(conn, true).await?;
    let rules = retention::list(conn).await?;
    let systems = crate::system::list(conn).await?;
    Ok(register::lines(&purposes, &rules, &systems, language))
}

/// `GET /console/register.csv`.
#[handler]
pub async fn register_csv(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let lines = register_lines(state, staff.lang.tag()).await?;
    let body = register::csv(&lines).map_err(|e| ApiError::internal(&e))?;
    Ok(Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"record-of-processing-{}.csv\"",
                clock::now().date_naive()
            ),
        )
        .body(body))
}

/// `GET /console/purposes`.
#[handler]
pub async fn purpose_list(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let lang = staff.lang.tag();
    let list = purpose::list(state.db.conn(), true).await?;
    let data = json!({
        "section": "purposes",
        "purposes": list.iter().map(|p| json!({
            "key": p.key,
            "title": p.text(lang).map(|t| t.title.clone()).unwrap_or_default(),
            "legal_basis": p.legal_basis.to_value(),
            "required": p.required,
            "separate": p.separate_consent_reason.map(|r| r.to_value()),
            "direct_marketing": p.direct_marketing,
            "recipients": p.recipients.iter().map(|r| json!({"name": r.name, "role": r.role, "country": r.country})).collect::<Vec<_>>(),
            "categories": p.data_categories,
            "retention": p.retention_period,
            "archived": p.archived_at.is_some(),
        })).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "purposes", data, StatusCode::OK))
}

/// `GET /console/retention`: the rules, and the categories data is held or promised under
/// without one.
#[handler]
pub async fn retention_rules(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let conn = state.db.conn();
    let rules = retention::list(conn).await?;
    let gaps = retention::gaps(conn).await?;
    let lang = staff.lang.tag();
    let data = json!({
        "section": "retention",
        "rules": rules.iter().map(|r| json!({
            "category": r.category,
            "title": retention::category_title(Some(r), &r.category, Some(lang)),
            "period": r.period, "clock_start": r.clock_start, "action": r.action.to_value(),
            "notice_before": r.notice_before, "notify_after": r.notify_after, "legal_hold": r.legal_hold,
        })).collect::<Vec<_>>(),
        "gaps": gaps.iter().map(|g| json!({"category": g.category, "items": g.items, "purposes": g.purposes})).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "retention", data, StatusCode::OK))
}

/// `GET /console/policies`: every document, drafts included, newest version first.
#[handler]
pub async fn policy_list(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let docs = policy::list_all(state.db.conn(), None).await?;
    let data = json!({
        "section": "policies",
        "documents": docs.iter().map(|d| json!({
            "id": d.id, "key": d.key, "version": d.version, "jurisdiction": d.jurisdiction,
            "language": d.language, "authoritative": d.authoritative, "title": d.title,
            "status": d.status.to_value(), "material": d.material,
            "effective_at": d.effective_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "policies", data, StatusCode::OK))
}

/// The editor's fields, from a form or a document.
fn editor(form: &FormData, preview: Option<String>, errors: &[FieldError]) -> Value {
    json!({
        "key": form.get("key").unwrap_or(policy::DEFAULT_KEY),
        "jurisdiction": form.get("jurisdiction").unwrap_or("*"),
        "language": form.get("language").unwrap_or("en"),
        "title": form.get("title"),
        "body": form.get("body"),
        "effective_at": form.get("effective_at"),
        "authoritative": form.get("authoritative").is_some(),
        "material": form.get("material").is_some(),
        "change_summary": form.get("change_summary"),
        "preview": preview,
        "errors": errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
    })
}

/// `GET /console/policies/new`: an empty draft editor.
#[handler]
pub async fn new_draft(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.require(Role::Admin)?;
    let mut data = editor(&FormData::default(), None, &[]);
    data["section"] = "policies".into();
    Ok(staff.page(state, "policy_new", data, StatusCode::OK))
}

/// A `datetime-local` field (UTC), or an RFC 3339 instant.
fn instant(value: Option<&str>) -> Option<DateTime<Utc>> {
    let value = value?;
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// `POST /console/policies`: `preview` renders the Markdown beside the editor; `create` saves the
/// draft.
#[handler]
pub async fn draft(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let body_text = form.get("body").unwrap_or_default().to_string();
    let mut errors = Vec::new();
    for field in ["title", "body", "language"] {
        if form.get(field).is_none() {
            errors.push(FieldError::new(field, "required"));
        }
    }
    let effective_at = instant(form.get("effective_at"));
    if effective_at.is_none() {
        errors.push(FieldError::new(
            "effective_at",
            "a date and time, e.g. 2027-01-01T00:00",
        ));
    }
    if form.get("step") == Some("preview") || !errors.is_empty() {
        let status = if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut data = editor(&form, Some(markdown::to_html(&body_text)), &errors);
        data["section"] = "policies".into();
        return Ok(staff.page(state, "policy_new", data, status));
    }
    let key = form.get("key").unwrap_or(policy::DEFAULT_KEY).to_string();
    let doc = Document {
        version: policy::next_version(state.db.conn(), &key).await?,
        key,
        jurisdiction: form.get("jurisdiction").unwrap_or("*").to_uppercase(),
        language: form.get("language").unwrap_or("en").to_string(),
        authoritative: form.get("authoritative").is_some(),
        title: form.get("title").unwrap_or_default().to_string(),
        effective_at: clock::truncate(effective_at.unwrap_or_else(clock::now)),
        material: form.get("material").is_some(),
        change_summary: form.get("change_summary").map(str::to_string),
        body: body_text,
    };
    let created = match policies::create_draft(&state.db, doc, &staff.actor()).await {
        Ok(created) => created,
        Err(e) => {
            let err = ApiError::from(e);
            let errors = if err.field_errors().is_empty() {
                vec![FieldError::new("body", err.detail().unwrap_or("refused"))]
            } else {
                err.field_errors().to_vec()
            };
            let mut data = editor(&form, None, &errors);
            data["section"] = "policies".into();
            return Ok(staff.page(state, "policy_new", data, StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    Ok(staff.redirect(&format!("/console/policies/{}", created.id)))
}

/// `GET /console/policies/{id}`: one document, rendered, with what may be done to it.
#[handler]
pub async fn policy_page(
    req: &Request,
    Path(id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let data = policy_data(state, &id, &[]).await?;
    Ok(staff.page(state, "policy", data, StatusCode::OK))
}

async fn policy_data(state: &AppState, id: &str, errors: &[FieldError]) -> Result<Value, ApiError> {
    let d = policy::get(state.db.conn(), id).await?;
    let rollout = match (
        d.material && d.status != PolicyStatus::Draft,
        d.reconsent_done_at,
    ) {
        (false, _) => Value::Null,
        (true, Some(done)) => json!({"done_at": done.to_rfc3339()}),
        (true, None) => json!({
            "remaining": crate::consent::reconsent::remaining(state.db.conn(), &d).await?,
        }),
    };
    Ok(json!({
        "rollout": rollout,
        "section": "policies",
        "doc": {
            "id": d.id, "key": d.key, "version": d.version, "jurisdiction": d.jurisdiction,
            "language": d.language, "authoritative": d.authoritative, "title": d.title,
            "status": d.status.to_value(), "material": d.material,
            "change_summary": d.change_summary, "body": d.body,
            "effective_at": d.effective_at.to_rfc3339(),
            "effective_input": d.effective_at.format("%Y-%m-%dT%H:%M").to_string(),
        },
        "html": markdown::to_html(&d.body),
        "is_draft": d.status == PolicyStatus::Draft,
        "is_published": d.status == PolicyStatus::Published,
        "diff_url": (d.version > 1 && d.status != PolicyStatus::Draft).then(|| format!(
            "/portal/policies/{}/diff?from={}&to={}&jurisdiction={}&lang={}",
            d.key, d.version - 1, d.version, d.jurisdiction, d.language
        )),
        "errors": errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
    }))
}

/// `POST /console/policies/{id}/{action}`: `save` (a draft's fields), `publish` (material
/// changes start the re-consent rollout and its emails), `retire`.
#[handler]
pub async fn policy_action(
    req: &Request,
    Path((id, action)): Path<(String, String)>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let actor = staff.actor();
    let outcome = match action.as_str() {
        "save" => {
            let changes = DraftChanges {
                authoritative: Some(form.get("authoritative").is_some()),
                title: form.get("title").map(str::to_string),
                body: form.get("body").map(str::to_string),
                effective_at: instant(form.get("effective_at")).map(clock::truncate),
                material: Some(form.get("material").is_some()),
                change_summary: Some(form.get("change_summary").map(str::to_string)),
            };
            policies::save_draft(&state.db, &id, changes, &actor).await
        }
        "publish" => policies::publish(&state.db, &state.config, &id, &actor).await,
        "retire" => policies::retire(&state.db, &id, &actor).await,
        _ => return Err(ApiError::not_found(format!("no action `{action}`"))),
    };
    if let Err(e) = outcome {
        let err = ApiError::from(e);
        if err.status().is_server_error() {
            return Err(err);
        }
        let errors = [FieldError::new("body", err.detail().unwrap_or("refused"))];
        let data = policy_data(state, &id, &errors).await?;
        return Ok(staff.page(state, "policy", data, StatusCode::UNPROCESSABLE_ENTITY));
    }
    Ok(staff.redirect(&format!("/console/policies/{id}")))
}
