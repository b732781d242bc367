//! Keeping the service running: purge runs (run now, dry run, their reports), the outbox's dead
//! letters, the audit log and its chain check, and API keys for machines.

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
    actions::operations,
    audit,
    auth::{Role, keys},
    error::ApiError,
    notify::outbox,
    retention::purge,
    web::browser::query_param,
};

/// `GET /console/purges`: the latest runs.
#[handler]
pub async fn purge_runs(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let runs = purge::list(state.db.conn(), 30).await?;
    let data = json!({
        "section": "purges",
        "runs": runs.iter().map(|r| json!({
            "id": r.id, "status": r.status.to_value(), "trigger": r.trigger.to_value(),
            "dry_run": r.dry_run, "started_at": r.started_at.to_rfc3339(),
            "examined": r.items_examined, "purged": r.items_purged, "notices": r.notices_queued,
        })).collect::<Vec<_>>(),
    });
    Ok(staff.page(state, "purges", data, StatusCode::OK))
}

/// `POST /console/purges`: run now, for real or as a dry run.
#[handler]
pub async fn run_purge(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let run = crate::actions::purges::launch(
        &state.db,
        &state.config,
        form.get("dry_run").is_some(),
        &staff.actor(),
    )
    .await?;
    Ok(staff.redirect(&format!("/console/purges/{}", run.id)))
}

/// `GET /console/purges/{id}`: a run's report per category and its erasure jobs.
#[handler]
pub async fn purge_run(
    req: &Request,
    Path(id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let conn = state.db.conn();
    let run = purge::get(conn, &id).await?;
    let (pending, acknowledged) = purge::batch_counts(conn, &run.id).await?;
    let report: Value = serde_json::from_str(&run.report).unwrap_or_default();
    let errors: Vec<String> = run
        .errors
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    let data = json!({
        "section": "purges",
        "run": {
            "id": run.id, "status": run.status.to_value(), "trigger": run.trigger.to_value(),
            "dry_run": run.dry_run, "actor": run.actor, "as_of": run.as_of.to_rfc3339(),
            "started_at": run.started_at.to_rfc3339(),
            "finished_at": run.finished_at.map(|t| t.to_rfc3339()),
            "examined": run.items_examined, "purged": run.items_purged, "notices": run.notices_queued,
        },
        "categories": report["categories"].as_array().cloned().unwrap_or_default(),
        "own_data": report["own_data"].as_object().map(|o| o.iter().map(|(k, v)| json!({"what": k, "count": v})).collect::<Vec<_>>()),
        "jobs_pending": pending,
        "jobs_acknowledged": acknowledged,
        "errors": errors,
    });
    Ok(staff.page(state, "purge", data, StatusCode::OK))
}

/// `GET /console/outbox`: dead letters with their last error (never a recipient), then the
/// counts of everything else.
#[handler]
pub async fn dead_letters(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let conn = state.db.conn();
    let filter = outbox::Filter {
        status: Some(outbox::Status::Dead),
        kind: None,
        before_id: query_param(req, "before"),
    };
    let (dead, next) = outbox::list(conn, &filter, 50).await?;
    let counts = outbox::counts(conn).await?;
    let data = json!({
        "section": "outbox",
        "dead": dead.iter().map(|m| json!({
            "id": m.id, "kind": m.kind.to_value(), "topic": m.topic, "attempts": m.attempts,
            "last_error": m.last_error, "created_at": m.created_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "counts": counts.iter().map(|(s, k, n)| json!({"status": s.to_value(), "kind": k.to_value(), "count": n})).collect::<Vec<_>>(),
        "next": next,
    });
    Ok(staff.page(state, "outbox", data, StatusCode::OK))
}

/// `POST /console/outbox/{id}/retry`.
#[handler]
pub async fn retry(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.form(Role::Admin, body).await?;
    operations::retry_message(&state.db, &id, &staff.actor())
        .await?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    Ok(staff.redirect("/console/outbox"))
}

/// `GET /console/audit`: the log, newest first, with filters kept in the URL, and the result of
/// recomputing its chain.
#[handler]
pub async fn audit_log(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let conn = state.db.conn();
    let given = |name: &str| query_param(req, name).filter(|v| !v.is_empty());
    let filter = audit::Filter {
        actor: given("actor"),
        action: given("action"),
        target_type: given("target_type"),
        target_id: given("target_id"),
        since: None,
        until: None,
        before_seq: given("before").and_then(|b| b.parse().ok()),
    };
    let (entries, next) = audit::list(conn, &filter, 50).await?;
    let names = crate::staff::names(conn).await?;
    let verification = audit::verify(conn).await?;
    let data = json!({
        "section": "audit",
        "filter": {"actor": filter.actor, "action": filter.action, "target_type": filter.target_type, "target_id": filter.target_id},
        "entries": entries.iter().map(|e| json!({
            "seq": e.seq, "at": e.occurred_at.to_rfc3339(), "actor": names.get(&e.actor).unwrap_or(&e.actor),
            "action": e.action, "target_type": e.target_type, "target_id": e.target_id, "details": e.details,
        })).collect::<Vec<_>>(),
        "next": next,
        "chain_ok": verification.broken.is_none(),
        "checked": verification.checked,
        "broken_at": verification.broken.map(|(seq, why)| format!("{seq}: {why}")),
    });
    Ok(staff.page(state, "audit", data, StatusCode::OK))
}

/// `GET /console/keys`: API keys for machines (admin).
#[handler]
pub async fn api_keys(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.require(Role::Admin)?;
    let data = keys_data(state, None).await?;
    Ok(staff.page(state, "keys", data, StatusCode::OK))
}

async fn keys_data(state: &AppState, issued: Option<Value>) -> Result<Value, ApiError> {
    let list = keys::list(state.db.conn()).await?;
    Ok(json!({
        "section": "keys",
        "issued": issued,
        "keys": list.iter().map(|k| json!({
            "id": k.id, "name": k.name, "role": k.role.as_str(),
            "created_at": k.created_at.to_rfc3339(),
            "last_used_at": k.last_used_at.map(|t| t.to_rfc3339()),
            "revoked": k.revoked_at.is_some(),
        })).collect::<Vec<_>>(),
    }))
}

/// `POST /console/keys`: a new key, shown once on the page that answers.
#[handler]
pub async fn create_key(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Admin, body).await?;
    let role: Role = form
        .get("role")
        .unwrap_or_default()
        .parse()
        .map_err(|e: String| ApiError::bad_request(e))?;
    let name = form.get("name").unwrap_or("console");
    let issued = operations::create_key(&state.db, role, name, &staff.actor()).await?;
    let shown =
        json!({"id": issued.record.id, "role": role.as_str(), "secret": issued.secret.expose()});
    let data = keys_data(state, Some(shown)).await?;
    Ok(staff.page(state, "keys", data, StatusCode::CREATED))
}

/// `POST /console/keys/{id}/revoke`.
#[handler]
pub async fn revoke_key(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    staff.form(Role::Admin, body).await?;
    operations::revoke_key(&state.db, &state.key_cache, &id, &staff.actor()).await?;
    Ok(staff.redirect("/console/keys"))
}
