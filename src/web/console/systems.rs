//! The registry of systems in the console: everyone reads it; admins register, change and
//! retire systems. A signing secret made for a system is shown on the page that follows, once.
//! Reviewers act on a request's jobs from the request's page: send one system's job again, or
//! find it not applicable with a reason.

use poem::{
    Body, Request, Response, handler,
    http::StatusCode,
    web::{Data, Path},
};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};

use super::Staff;
use crate::{
    AppState,
    actions::systems,
    auth::Role,
    error::{ApiError, FieldError},
    request::{RequestError, jobs::Job},
    system::{self, SecretChange, System, SystemFields, TYPES},
    web::FormData,
};

/// `GET /console/systems`.
#[handler]
pub async fn list(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let systems = system::list(state.db.conn()).await?;
    let data = json!({
        "section": "systems",
        "systems": systems.iter().map(|s| json!({
            "key": s.key,
            "name": s.name,
            "description": s.description,
            "own_endpoint": s.endpoint.is_some(),
            "types": s.request_types.iter().map(|t| t.to_value()).collect::<Vec<_>>(),
            "categories": s.categories,
            "allowance_days": s.allowance_days,
            "required": s.required,
            "retired": s.retired_at.is_some(),
        })).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "systems", data, StatusCode::OK))
}

/// The form's values: from a system being edited, or from a submitted form.
fn form_data(s: Option<&System>, form: &FormData, errors: &[FieldError]) -> Value {
    let submitted = form.get("name").is_some();
    let pick =
        |name: &str, fallback: Option<String>| form.get(name).map(str::to_string).or(fallback);
    let types: Vec<Value> = TYPES
        .iter()
        .map(|t| {
            let value = t.to_value();
            let checked = if submitted {
                form.get(&format!("type_{value}")).is_some()
            } else {
                s.is_none_or(|s| s.request_types.contains(t))
            };
            json!({"value": value, "checked": checked})
        })
        .collect();
    json!({
        "section": "systems",
        "editing": s.is_some(),
        "key": pick("key", s.map(|s| s.key.clone())),
        "name": pick("name", s.map(|s| s.name.clone())),
        "description": pick("description", s.map(|s| s.description.clone())),
        "endpoint": pick("endpoint", s.and_then(|s| s.endpoint.clone())),
        "types": types,
        "categories": pick("categories", s.map(|s| s.categories.join(", "))),
        "allowance_days": pick("allowance_days", s.map(|s| s.allowance_days.to_string())).unwrap_or_else(|| "7".into()),
        "required": if submitted { form.get("required").is_some() } else { s.is_none_or(|s| s.required) },
        "has_secret": s.is_some_and(|s| s.has_secret),
        "errors": super::errors_json(errors),
    })
}

fn fields(form: &FormData) -> SystemFields {
    SystemFields {
        name: form.get("name").unwrap_or_default().to_string(),
        description: form.get("description").unwrap_or_default().to_string(),
        endpoint: form
            .get("endpoint")
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string),
        request_types: TYPES
            .iter()
            .copied()
            .filter(|t| form.get(&format!("type_{}", t.to_value())).is_some())
            .collect(),
        categories: form
            .get("categories")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect(),
        // Not a number: refused by the domain's range check with its message.
        allowance_days: form
            .get("allowance_days")
            .and_then(|d| d.trim().parse().ok())
            .unwrap_or(0),
        required: form.get("required").is_some(),
    }
}

/// `GET /console/systems/new` and `/console/systems/{key}/edit`.
#[handler]
pub async fn editor(
    req: &Request,
    key: Option<Path<String>>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.require(Role::Admin)?;
    let existing = match key {
        Some(Path(key)) => Some(system::get(state.db.conn(), &key).await?),
        None => None,
    };
    let data = form_data(existing.as_ref(), &FormData::default(), &[]);
    Ok(staff.page(state, "system", data, StatusCode::OK))
}

/// `POST /console/systems` (a new system) and `/console/systems/{key}` (its new fields).
#[handler]
pub async fn save(
    req: &Request,
    key: Option<Path<String>>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let existing = match &key {
        Some(Path(key)) => Some(system::get(state.db.conn(), key).await?),
        None => None,
    };
    let target = key
        .map(|Path(k)| k)
        .or_else(|| form.get("key").map(str::to_string))
        .unwrap_or_default();
    let saved = match &existing {
        Some(_) => {
            let change = if form.get("rotate_secret").is_some() {
                SecretChange::Rotate
            } else {
                SecretChange::Keep
            };
            let fields = fields(&form);
            systems::update(
                &state.db,
                &state.config,
                &target,
                fields,
                change,
                &staff.actor(),
            )
            .await
        }
        None => {
            let fields = fields(&form);
            systems::create(
                &state.db,
                &state.config,
                &target,
                fields,
                None,
                &staff.actor(),
            )
            .await
        }
    };
    match saved {
        Ok((saved, Some(secret))) => {
            let data = json!({"section": "systems", "name": saved.name, "key": saved.key, "secret": secret});
            Ok(staff.page(state, "system_secret", data, StatusCode::OK))
        }
        Ok((_, None)) => Ok(staff.redirect("/console/systems")),
        Err(e) => {
            let errors = super::refusal(e.into(), "key")?;
            let data = form_data(existing.as_ref(), &form, &errors);
            Ok(staff.page(state, "system", data, StatusCode::UNPROCESSABLE_ENTITY))
        }
    }
}

/// `POST /console/systems/{key}/retire`.
#[handler]
pub async fn retire(
    req: &Request,
    Path(key): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.form(Role::Admin, body).await?;
    systems::retire(&state.db, &key, &staff.actor()).await?;
    Ok(staff.redirect("/console/systems"))
}

/// A request's jobs as its page shows them.
pub fn jobs_view(jobs: &[Job]) -> Vec<Value> {
    let now = crate::clock::now();
    jobs.iter()
        .map(|j| {
            let status = j.status();
            let evidence = j.evidence();
            json!({
                "id": j.row.id,
                "name": j.system_name,
                "required": j.required,
                "status": status.to_value(),
                "restricted": j.row.outcome == Some(crate::request::Outcome::Restricted),
                "label": match status.to_value().as_str() {
                    "done" => "completed",
                    "failed" => "overdue",
                    "not_applicable" => "withdrawn",
                    _ => "pending",
                },
                "due_at": j.row.due_at.map(|d| d.to_rfc3339()),
                "overdue": j.is_overdue(now),
                "acknowledged_at": j.row.acknowledged_at.map(|d| d.to_rfc3339()),
                "completed_at": j.row.completed_at.map(|d| d.to_rfc3339()),
                "counts": evidence.counts,
                "reference": evidence.reference,
                "note": j.row.note,
                "decided_by": j.row.decided_by,
                "open": !j.row.status.is_settled(),
            })
        })
        .collect()
}

/// `POST /console/requests/{id}/jobs/{job}/{action}`: `retry` one system's job, or find it
/// `not-applicable` with a reason. Reviewers only; audited with the member of staff as actor.
#[handler]
pub async fn act_on_job(
    req: &Request,
    Path((id, job, action)): Path<(String, String, String)>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Reviewer, body).await?;
    let actor = staff.actor();
    let belongs = crate::request::jobs::of_request(state.db.conn(), &id)
        .await?
        .iter()
        .any(|j| j.row.id == job);
    if !belongs {
        return Err(ApiError::not_found("no such job for this request"));
    }
    let result = match action.as_str() {
        "retry" => systems::retry_job(&state.db, &job, &actor).await,
        "not-applicable" => match form.get("reason").map(str::trim).filter(|r| r.len() >= 3) {
            Some(reason) => {
                systems::job_not_applicable(&state.db, &state.config, &job, reason, &actor).await
            }
            None => Err(RequestError::Invalid(vec![FieldError::new(
                "not_applicable_reason",
                "say why this system has nothing to do for this request",
            )])),
        },
        _ => return Err(ApiError::not_found(format!("no action `{action}`"))),
    };
    if let Err(RequestError::Invalid(errors)) = &result {
        let data = super::requests::detail_data(state, &id, errors, staff.lang).await?;
        return Ok(staff.page(state, "request", data, StatusCode::UNPROCESSABLE_ENTITY));
    }
    result?;
    Ok(staff.redirect(&format!("/console/requests/{id}#systems")))
}
