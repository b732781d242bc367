//! The overview (what is due, what failed, what the purge did, consents over the last weeks),
//! the request queue, and a request's decision page with its actions.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, TimeDelta};
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
    actions::reviews,
    auth::Role,
    clock,
    consent::ledger,
    error::{ApiError, FieldError},
    law,
    notify::outbox,
    request::{
        self, Filter, Law, Outcome, Request as DsRequest, RequestError, RequestStatus, RequestType,
        Taken, review,
    },
    retention::{items, purge},
    staff, subject,
    web::{Lang, browser::query_param},
};

/// Requests due within this many days get a "due soon" label.
const DUE_SOON_DAYS: i64 = 3;
/// Weeks shown in the consent chart.
const CHART_WEEKS: i64 = 8;

/// What a queue row shows of a request: its deadline in words as well as colour.
fn row(r: &DsRequest, who: &str, today: NaiveDate, names: &HashMap<String, String>) -> Value {
    let days_left = r.due_date.map(|d| (d - today).num_days());
    let running = request::is_open(r) && r.status != RequestStatus::Unverified;
    json!({
        "id": r.id,
        "reference": crate::vocab::reference(&r.id),
        "kind": r.kind.to_value(),
        "status": r.status.to_value(),
        "law": r.law.to_value(),
        "who": who,
        "due_date": r.due_date.map(|d| d.to_string()),
        "overdue": running && days_left.is_some_and(|d| d < 0),
        "days_overdue": days_left.map(|d| -d),
        "due_soon": running && days_left.is_some_and(|d| (0..=DUE_SOON_DAYS).contains(&d)),
        "running": running,
        "days_left": days_left,
        "reviewer": r.reviewer.as_ref().map(|actor| names.get(actor).unwrap_or(actor)),
        "received_at": r.received_at.to_rfc3339(),
    })
}

async fn rows(
    state: &AppState,
    list: &[DsRequest],
    today: NaiveDate,
) -> Result<Vec<Value>, ApiError> {
    let who = request::requesters(state.db.conn(), &state.config, list).await?;
    let names = staff::names(state.db.conn()).await?;
    Ok(list
        .iter()
        .zip(who)
        .map(|(r, w)| {
            let person = w
                .email
                .as_deref()
                .or(w.external_id.as_deref())
                .unwrap_or("—");
            row(r, person, today, &names)
        })
        .collect())
}

/// `GET /console`: the overview.
#[handler]
pub async fn overview(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let conn = state.db.conn();
    let today = clock::now().date_naive();
    let overdue = Filter {
        overdue: true,
        limit: 20,
        ..Filter::default()
    };
    let (late, late_total) = request::list(conn, &overdue, today).await?;
    let soon = Filter {
        due_by: Some(today + TimeDelta::days(DUE_SOON_DAYS)),
        limit: 40,
        ..Filter::default()
    };
    let (due, _) = request::list(conn, &soon, today).await?;
    let due: Vec<DsRequest> = due
        .into_iter()
        .filter(|r| r.due_date.is_some_and(|d| d >= today))
        .collect();
    let dead = outbox::counts(conn)
        .await?
        .iter()
        .filter(|(status, _, _)| *status == outbox::Status::Dead)
        .map(|(_, _, n)| n)
        .sum::<i64>();
    let last_run = purge::list(conn, 1).await?.into_iter().next();
    let chart = consent_chart(state, staff.lang).await?;
    let data = json!({
        "section": "overview",
        "overdue": rows(state, &late, today).await?,
        "overdue_total": late_total,
        "due": rows(state, &due, today).await?,
        "due_total": due.len(),
        "dead_letters": dead,
        "last_run": last_run.map(|r| json!({
            "id": r.id,
            "status": r.status.to_value(),
            "dry_run": r.dry_run,
            "started_at": r.started_at.to_rfc3339(),
        })),
        "chart": chart,
    });
    Ok(staff.page(state, "overview", data, StatusCode::OK))
}

/// Current consents per purpose, and grants and withdrawals per week for the last weeks: a table
/// and, beside it, a small inline SVG of the same numbers.
async fn consent_chart(state: &AppState, lang: Lang) -> Result<Value, ApiError> {
    let conn = state.db.conn();
    let now = clock::now();
    let monday = now.date_naive() - TimeDelta::days(now.weekday().num_days_from_monday().into());
    let first = monday - TimeDelta::weeks(CHART_WEEKS - 1);
    let weekly = ledger::weekly(conn, first).await?;
    let current = ledger::stats(conn).await?;
    let titles = crate::purpose::titles(conn, lang.tag()).await?;
    let mut purposes: Vec<String> = current.iter().map(|s| s.purpose.clone()).collect();
    purposes.extend(weekly.iter().map(|w| w.purpose.clone()));
    purposes.sort();
    purposes.dedup();
    let weeks: Vec<NaiveDate> = (0..CHART_WEEKS)
        .map(|i| first + TimeDelta::weeks(i))
        .collect();
    let lines: Vec<Value> = purposes
        .iter()
        .map(|p| {
            let granted: i64 = current
                .iter()
                .filter(|s| &s.purpose == p && s.status == crate::consent::ConsentStatus::Granted)
                .map(|s| s.count)
                .sum();
            let per_week: Vec<(i64, i64)> = weeks
                .iter()
                .map(|w| {
                    weekly
                        .iter()
                        .find(|x| &x.purpose == p && x.week == *w)
                        .map_or((0, 0), |x| (x.grants, x.withdrawals))
                })
                .collect();
            json!({
                "purpose": titles.get(p).unwrap_or(p),
                "granted": granted,
                "weeks": per_week.iter().map(|(g, w)| json!({"grants": g, "withdrawals": w})).collect::<Vec<_>>(),
                "svg": bars(&state.pages, &per_week, lang),
            })
        })
        .collect();
    Ok(json!({
        "weeks": weeks.iter().map(|w| crate::web::page::day(*w, lang)).collect::<Vec<_>>(),
        "lines": lines,
    }))
}

/// Grants (up) and withdrawals (down) per week as bars, with a text alternative.
fn bars(pages: &crate::web::Pages, weeks: &[(i64, i64)], lang: Lang) -> String {
    let peak = weeks
        .iter()
        .map(|(g, w)| (*g).max(*w))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (width, half, bar) = (16 * weeks.len(), 24.0, 10);
    let mut svg = String::new();
    for (i, (g, w)) in weeks.iter().enumerate() {
        let x = i * 16 + 3;
        let up = (*g as f64 / peak * half).round();
        let down = (*w as f64 / peak * half).round();
        svg.push_str(&format!(
            r##"<rect x="{x}" y="{}" width="{bar}" height="{up}" fill="#1a7f37"/><rect x="{x}" y="{half}" width="{bar}" height="{down}" fill="#b3261e"/>"##,
            half - up
        ));
    }
    let grants: i64 = weeks.iter().map(|(g, _)| g).sum();
    let withdrawals: i64 = weeks.iter().map(|(_, w)| w).sum();
    let label = pages.words(
        "console.chart_label",
        lang,
        &[
            ("grants", &grants.to_string()),
            ("withdrawals", &withdrawals.to_string()),
            ("weeks", &weeks.len().to_string()),
        ],
    );
    format!(
        r##"<svg role="img" aria-label="{label}" width="{width}" height="48" viewBox="0 0 {width} 48"><line x1="0" y1="{half}" x2="{width}" y2="{half}" stroke="#59636e"/>{svg}</svg>"##
    )
}

/// `GET /console/requests`: the queue, soonest deadline first, with filters kept in the URL.
#[handler]
pub async fn queue(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    const PAGE: u64 = 50;
    let staff = Staff::load(state, req).await?;
    let today = clock::now().date_naive();
    let parse = |name: &str| query_param(req, name).filter(|v| !v.is_empty());
    let page: u64 = parse("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let me = staff.actor().to_string();
    let taken = match parse("taken").as_deref() {
        Some("nobody") => Some(Taken::Nobody),
        Some("me") => Some(Taken::By(me.clone())),
        _ => None,
    };
    // Open requests unless asked otherwise: finished ones are history, not work.
    let status = parse("status");
    let filter = Filter {
        running: status.is_none(),
        taken: taken.clone(),
        status: status
            .as_deref()
            .and_then(|s| RequestStatus::try_from_value(&s.to_string()).ok()),
        kind: parse("type").and_then(|s| RequestType::try_from_value(&s).ok()),
        law: parse("law").and_then(|s| Law::try_from_value(&s).ok()),
        overdue: parse("overdue").is_some(),
        due_by: parse("due_within")
            .and_then(|d| d.parse::<i64>().ok())
            .map(|d| today + TimeDelta::days(d)),
        limit: PAGE,
        offset: page * PAGE,
    };
    let (list, total) = request::list(state.db.conn(), &filter, today).await?;
    let count = |taken: Taken| {
        let filter = Filter {
            running: true,
            taken: Some(taken),
            ..Filter::default()
        };
        async move { request::count(state.db.conn(), &filter, today).await }
    };
    let waiting = count(Taken::Nobody).await?;
    let mine = count(Taken::By(me)).await?;
    let option = |values: &[&str], chosen: Option<String>| -> Vec<Value> {
        values
            .iter()
            .map(|v| json!({"value": v, "selected": chosen.as_deref() == Some(*v)}))
            .collect()
    };
    let data = json!({
        "section": "requests",
        "requests": rows(state, &list, today).await?,
        "total": total,
        "statuses": option(&["all", "unverified", "verified", "in_review", "approved", "fulfilling", "completed", "rejected", "cancelled"], status.clone()),
        "waiting": waiting,
        "mine": mine,
        "taken": option(&["nobody", "me"], parse("taken")),
        "types": option(&["access", "export", "rectify", "erase", "restrict", "object"], parse("type")),
        "laws": option(&["gdpr", "pipl"], parse("law")),
        "overdue": filter.overdue,
        "next": ((page + 1) * PAGE < total).then(|| {
            let here = req.original_uri().path_and_query().map_or("/console/requests", |p| p.as_str());
            crate::web::browser::with_query_param(here, "page", &(page + 1).to_string())
        }),
    });
    Ok(staff.page(state, "queue", data, StatusCode::OK))
}

/// `GET /console/requests/{id}`: everything needed to decide on one screen.
#[handler]
pub async fn detail(
    req: &Request,
    Path(id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let data = detail_data(state, &id, &[], staff.lang).await?;
    Ok(staff.page(state, "request", data, StatusCode::OK))
}

pub(super) async fn detail_data(
    state: &AppState,
    id: &str,
    errors: &[FieldError],
    lang: Lang,
) -> Result<Value, ApiError> {
    let conn = state.db.conn();
    let titles = crate::purpose::titles(conn, lang.tag()).await?;
    let today = clock::now().date_naive();
    let r = request::get(conn, id).await?;
    let history = request::history(conn, &r.id).await?;
    let who = request::requesters(conn, &state.config, std::slice::from_ref(&r))
        .await?
        .remove(0);
    let person = match &r.subject_id {
        Some(subject_id) => subject::by_id(conn, subject_id).await?,
        None => None,
    };
    let (consents, categories) = match &person {
        Some(p) => (
            ledger::current(conn, &p.id).await?,
            items::held_by_category(conn, &p.id).await?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let names = staff::names(conn).await?;
    let limit = law::extended_due_date(
        &state.config.requests,
        r.law,
        r.received_at.date_naive(),
        today,
        2,
    );
    let next = request::review::next_steps(&r);
    let details = serde_json::from_str::<Value>(&r.details).unwrap_or_default();
    let jobs = request::jobs::of_request(conn, &r.id).await?;
    Ok(json!({
        "section": "requests",
        "request": row(&r, who.email.as_deref().or(who.external_id.as_deref()).unwrap_or("—"), today, &names),
        "details": details,
        "objected": details["purposes"].as_array().into_iter().flatten().filter_map(Value::as_str)
            .map(|k| titles.get(k).map_or(k, String::as_str)).collect::<Vec<_>>(),
        "email": who.email,
        "external_id": who.external_id,
        "on_behalf_of": r.on_behalf_of.map(|o| o.to_value()),
        "locale": r.locale,
        "jurisdiction": r.jurisdiction,
        "decision_reason": r.decision_reason,
        "extension_reason": r.extension_reason,
        "outcome": r.outcome.map(|o| o.to_value()),
        "person": person.as_ref().map(|p| json!({
            "external_id": p.external_id,
            "age_status": p.age_status.to_value(),
            "restricted": p.restricted,
            "jurisdiction": p.jurisdiction,
        })),
        "consents": consents.iter().map(|c| json!({"title": titles.get(&c.purpose_key).unwrap_or(&c.purpose_key), "status": c.status.to_value(), "needs_reconsent": c.needs_reconsent})).collect::<Vec<_>>(),
        "categories": categories.iter().map(|(c, n)| json!({"category": c, "items": n})).collect::<Vec<_>>(),
        "history": history.iter().map(|e| json!({
            "status": e.to_status.to_value(),
            "actor": names.get(&e.actor).unwrap_or(&e.actor),
            "note": e.note,
            "at": e.occurred_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "jobs": super::systems::jobs_view(&jobs),
        "jobs_required": jobs.iter().filter(|j| j.required).count(),
        "jobs_waiting": jobs.iter().filter(|j| j.required && !j.row.status.is_settled()).count(),
        "fulfilling": r.status == request::RequestStatus::Fulfilling,
        "can_act": next.take || next.approve || next.reject || next.extend || next.complete,
        "can_take": next.take,
        "can_decide": next.approve,
        "can_reject": next.reject,
        "can_complete": next.complete,
        "can_extend": next.extend,
        "extension_limit": limit.as_ref().ok().map(|d| d.to_string()),
        "extension_refused": limit.as_ref().err().map(|e| e.message_key()),
        "extension_refused_date": match limit.as_ref().err() {
            Some(crate::law::ExtensionRefused::TooLate { first_month }) => Some(first_month.to_string()),
            _ => None,
        },
        "errors": errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
    }))
}

/// `POST /console/requests/{id}/{action}`: take, approve, reject (previewed first), extend,
/// complete. Each needs the reviewer role and is audited with the member of staff as actor.
#[handler]
pub async fn act(
    req: &Request,
    Path((id, action)): Path<(String, String)>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let staff = Staff::load(state, req).await?;
    let form = staff.form(Role::Reviewer, body).await?;
    let actor = staff.actor();
    let reason = form.get("reason").map(str::to_string);
    let missing_reason = || {
        vec![FieldError::new(
            "reason",
            "write the reason; the person will read it",
        )]
    };
    let result = match action.as_str() {
        "take" => reviews::take(&state.db, &id, &actor).await,
        "approve" => {
            if form.get("confirm").is_none() {
                let config = state.config.clone();
                return preview(
                    state,
                    staff,
                    &id,
                    "approve_preview",
                    |r| review::completion(r, &config),
                    json!({"note": form.get("note")}),
                )
                .await;
            }
            reviews::approve(&state.db, &state.config, &id, &actor, form.get("note")).await
        }
        "reject" => {
            let Some(reason) = reason else {
                let data = detail_data(state, &id, &missing_reason(), staff.lang).await?;
                return Ok(staff.page(state, "request", data, StatusCode::UNPROCESSABLE_ENTITY));
            };
            if form.get("confirm").is_none() {
                return preview(
                    state,
                    staff,
                    &id,
                    "reject_preview",
                    |r| review::rejection(r, &reason),
                    json!({"reason": reason}),
                )
                .await;
            }
            reviews::reject(&state.db, &id, &reason, &actor).await
        }
        "extend" => {
            let Some(reason) = reason else {
                let data = detail_data(state, &id, &missing_reason(), staff.lang).await?;
                return Ok(staff.page(state, "request", data, StatusCode::UNPROCESSABLE_ENTITY));
            };
            let months = form.get("months").and_then(|m| m.parse().ok()).unwrap_or(1);
            reviews::extend(&state.db, &state.config, &id, months, &reason, &actor).await
        }
        "complete" => {
            let outcome = match form.get("outcome") {
                Some("restricted") => Outcome::Restricted,
                _ => Outcome::Completed,
            };
            let note = form.get("note").map(str::to_string);
            reviews::complete(&state.db, &state.config, &id, outcome, note, &actor).await
        }
        _ => return Err(ApiError::not_found(format!("no action `{action}`"))),
    };
    if let Err(RequestError::Invalid(errors)) = &result {
        let data = detail_data(state, &id, errors, staff.lang).await?;
        return Ok(staff.page(state, "request", data, StatusCode::UNPROCESSABLE_ENTITY));
    }
    result?;
    Ok(staff.redirect(&format!("/console/requests/{id}")))
}

/// The rejection email as the person will read it, in their language with their law's
/// remedies, and the button that sends it.
/// What a decision will email the person, in their language, before the reviewer makes it:
/// once an approved request is carried out (`approve_preview`), or the rejection with its
/// reason and remedies (`reject_preview`). `fields` are the form's values to send on.
async fn preview(
    state: &AppState,
    staff: Staff,
    id: &str,
    template: &str,
    email: impl FnOnce(&DsRequest) -> crate::notify::email::EmailContent,
    fields: Value,
) -> Result<Response, ApiError> {
    let r = request::get(state.db.conn(), id).await?;
    let locale = r.locale.clone().unwrap_or_else(|| "en".into());
    let rendered = state
        .dispatcher
        .preview(&email(&r), &locale)
        .map_err(|e| ApiError::internal(&e))?;
    let mut data = json!({
        "section": "requests",
        "id": id,
        "kind": r.kind.to_value(),
        "to": r.email,
        "language": crate::notify::templates::language_for(&locale),
        "subject": rendered.subject,
        "text": rendered.text,
    });
    if let (Some(data), Value::Object(fields)) = (data.as_object_mut(), fields) {
        data.extend(fields);
    }
    Ok(staff.page(state, template, data, StatusCode::OK))
}
