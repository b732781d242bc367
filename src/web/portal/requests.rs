//! Data-subject requests in the portal: filing each type (signed in, or by email with a code),
//! following them, and downloading an export.
//!
//! Filing is one question per page: the type, then its details, then a check of the answers
//! before anything is filed, then a confirmation with the reference and the due date.

use std::collections::BTreeMap;

use poem::{
    Body, IntoResponse, Request, Response, handler,
    http::StatusCode,
    web::{Data, Path},
};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};

use super::{Visitor, home::request_line, query_param};
use crate::{
    AppState,
    actions::filings,
    error::{ApiError, FieldError},
    http::client_ip,
    purpose,
    request::{
        self, Request as DsRequest, RequestError, RequestType, budget, export,
        intake::{self, Details, Intake},
    },
    vocab::CountryCode,
    web::{FormData, Lang},
};

/// The types a person may file, in the order the portal offers them.
const KINDS: &[&str] = &["access", "export", "rectify", "erase", "restrict", "object"];

fn kind_of(code: &str) -> Result<RequestType, ApiError> {
    KINDS
        .contains(&code)
        .then(|| RequestType::try_from_value(&code.to_string()).ok())
        .flatten()
        .ok_or_else(|| ApiError::not_found(format!("no request type `{code}`")))
}

/// `GET /portal/requests`: the person's requests.
#[handler]
pub async fn index(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let person = visitor.signed_in()?;
    let requests: Vec<Value> = request::of_subject(state.db.conn(), &person.id)
        .await?
        .iter()
        .map(request_line)
        .collect();
    Ok(visitor.page(
        state,
        "requests",
        json!({"requests": requests}),
        StatusCode::OK,
    ))
}

/// `GET /portal/requests/new`: which right the person wants to use.
#[handler]
pub async fn choose(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    visitor.signed_in()?;
    Ok(visitor.page(
        state,
        "request_new",
        json!({"kinds": KINDS}),
        StatusCode::OK,
    ))
}

/// `GET /portal/requests/new/{kind}`: the details of one type.
#[handler]
pub async fn details_form(
    req: &Request,
    Path(kind): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    visitor.signed_in()?;
    kind_of(&kind)?;
    let data = details_data(state, visitor.lang, &kind, &FormData::default(), &[]).await?;
    Ok(visitor.page(state, "request_details", data, StatusCode::OK))
}

/// What the details form of `kind` shows: the purposes one may object to, the answers given so
/// far, and the errors to correct.
async fn details_data(
    state: &AppState,
    lang: Lang,
    kind: &str,
    form: &FormData,
    errors: &[(String, String)],
) -> Result<Value, ApiError> {
    let chosen = form.all("purpose");
    let purposes: Vec<Value> = if kind == "object" {
        purpose::list(state.db.conn(), false)
            .await?
            .iter()
            .filter(|p| !p.required)
            .map(|p| {
                json!({
                    "key": p.key,
                    "title": p.text(lang.tag()).map(|t| t.title.clone()).unwrap_or_else(|| p.key.clone()),
                    "checked": chosen.contains(&p.key),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(json!({
        "kind": kind,
        "is": {kind: true},
        "purposes": purposes,
        "note": form.get("note"),
        "change_email": form.get("change.email"),
        "change_name": form.get("change.name"),
        "other_field": form.get("other_field"),
        "other_value": form.get("other_value"),
        "errors": errors.iter().map(|(field, message)| json!({"field": field, "message": message})).collect::<Vec<_>>(),
    }))
}

/// The details a form describes, as the API takes them.
fn details_from(kind: RequestType, form: &FormData) -> Details {
    let mut filed = Details {
        note: form.get("note").map(str::to_string),
        ..Details::default()
    };
    match kind {
        RequestType::Rectify => {
            let mut changes = BTreeMap::new();
            for (field, value) in form.with_prefix("change.") {
                changes.insert(field.to_string(), value.to_string());
            }
            if let (Some(field), Some(value)) = (form.get("other_field"), form.get("other_value")) {
                changes.insert(field.to_string(), value.to_string());
            }
            filed.changes = Some(changes);
        }
        RequestType::Object => filed.purposes = Some(form.all("purpose")),
        _ => {}
    }
    filed
}

/// The intake's refusals as the form shows them: a missing list in words the person can act
/// on, in their language; anything else as the intake says it.
fn field_errors(state: &AppState, errors: &[FieldError], lang: Lang) -> Vec<(String, String)> {
    errors
        .iter()
        .map(|e| {
            let field = e.field.trim_start_matches("details.").to_string();
            let message = match field.as_str() {
                "changes" => state.pages.words("form_error.changes", lang, &[]),
                "purposes" if e.message.starts_with("an objection") => {
                    state.pages.words("form_error.purposes", lang, &[])
                }
                _ => e.message.clone(),
            };
            (field, message)
        })
        .collect()
}

/// `POST /portal/requests`: `step=check` shows the answers back; `step=file` files the request
/// (the portal's sign-in counts as identity verification, as in the API) and shows the
/// confirmation.
#[handler]
pub async fn file(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let form = visitor.form(body).await?;
    let person = visitor.signed_in()?.clone();
    let code = form.get("kind").unwrap_or_default().to_string();
    let kind = kind_of(&code)?;
    let intake = Intake {
        kind,
        details: details_from(kind, &form),
        locale: Some(visitor.lang.tag().into()),
        jurisdiction: None,
    };
    if form.get("step") != Some("file") {
        if let Err(e) = intake::validate(state.db.conn(), &intake).await {
            let RequestError::Invalid(list) = e else {
                return Err(e.into());
            };
            let errors = field_errors(state, &list, visitor.lang);
            let data = details_data(state, visitor.lang, &code, &form, &errors).await?;
            return Ok(visitor.page(
                state,
                "request_details",
                data,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
        let details = &intake.details;
        let purposes = purpose::list(state.db.conn(), false).await?;
        let objected: Vec<String> = details
            .purposes
            .iter()
            .flatten()
            .map(|k| {
                purposes
                    .iter()
                    .find(|p| &p.key == k)
                    .and_then(|p| p.text(visitor.lang.tag()))
                    .map_or_else(|| k.clone(), |t| t.title.clone())
            })
            .collect();
        let data = json!({
            "kind": code,
            "note": details.note,
            "changes": details.changes.iter().flatten().map(|(k, v)| json!({"field": k, "value": v})).collect::<Vec<_>>(),
            "objected": objected,
            "purposes": details.purposes,
            "change_email": form.get("change.email"),
            "change_name": form.get("change.name"),
            "other_field": form.get("other_field"),
            "other_value": form.get("other_value"),
        });
        return Ok(visitor.page(state, "request_check", data, StatusCode::OK));
    }
    let filed = filings::signed_in(&state.db, &state.config, &person.external_id, intake).await;
    let filed = match filed {
        Ok(filed) => filed,
        Err(RequestError::Invalid(errors)) => {
            let errors = field_errors(state, &errors, visitor.lang);
            let data = details_data(state, visitor.lang, &code, &form, &errors).await?;
            return Ok(visitor.page(
                state,
                "request_details",
                data,
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
        Err(e) => return Err(ApiError::from(e)),
    };
    Ok(visitor.redirect(&format!("/portal/requests/{}?filed=1", filed.id)))
}

/// `GET /portal/requests/{id}`: one of the person's requests with its history.
#[handler]
pub async fn detail(
    req: &Request,
    Path(id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let person = visitor.signed_in()?;
    let conn = state.db.conn();
    let found = own(conn, &person.id, &id).await?;
    let history = request::history(conn, &found.id).await?;
    let package = export::ready(conn, &found.id).await?;
    let data = json!({
        "request": request_line(&found),
        "package": package.map(|p| json!({"sent_at": p.created_at.to_rfc3339(), "expires_at": p.expires_at.to_rfc3339()})),
        "reference": crate::vocab::reference(&found.id),
        "filed": query_param(req, "filed").is_some(),
        "outcome": found.outcome.map(|o| o.to_value()),
        "history": history.iter().map(|e| json!({
            "status": e.to_status.to_value(),
            "at": e.occurred_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
    });
    Ok(visitor.page(state, "request", data, StatusCode::OK))
}

/// The person's own request, or 404 (another person's request is as unknown as a missing one).
async fn own(
    conn: &impl sea_orm::ConnectionTrait,
    subject_id: &str,
    id: &str,
) -> Result<DsRequest, ApiError> {
    let found = request::get(conn, id).await?;
    if found.subject_id.as_deref() != Some(subject_id) {
        return Err(RequestError::NotFound.into());
    }
    Ok(found)
}

/// `GET /portal/requests/by-email`: filing without an account.
#[handler]
pub async fn by_email_form(
    req: &Request,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let data = by_email_data(&FormData::default(), &[]);
    Ok(visitor.page(state, "by_email", data, StatusCode::OK))
}

fn by_email_data(form: &FormData, errors: &[(String, String)]) -> Value {
    let kind = form.get("kind").unwrap_or_default();
    json!({
        "kinds": KINDS.iter().map(|k| json!({"code": k, "checked": *k == kind})).collect::<Vec<_>>(),
        "email": form.get("email"),
        "note": form.get("note"),
        "other": form.get("jurisdiction") == Some("other"),
        "countries": crate::web::page::COUNTRIES.iter().map(|(code, _, _)| json!({
            "code": code, "selected": form.get("jurisdiction") == Some(code),
        })).collect::<Vec<_>>(),
        "errors": errors.iter().map(|(field, message)| json!({"field": field, "message": message})).collect::<Vec<_>>(),
    })
}

/// `POST /portal/requests/by-email`: files the request and sends the code; the next page asks
/// for it. The answer is the same whether or not the address is known.
#[handler]
pub async fn by_email(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    state.rate_limiter.check(client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    let form = visitor.form(body).await?;
    let lang = visitor.lang;
    let say = |key: &str| state.pages.words(key, lang, &[]);
    let mut errors = Vec::new();
    let address = form.get("email").unwrap_or_default().to_string();
    if address.is_empty() {
        errors.push(("email".into(), say("form_error.email_missing")));
    }
    let kind = match form.get("kind").map(kind_of) {
        Some(Ok(kind)) => Some(kind),
        _ => {
            errors.push(("kind".into(), say("form_error.kind")));
            None
        }
    };
    // Nothing is chosen for the person: where they live decides the law, so they say it, or
    // say it is somewhere else.
    let country = match form.get("jurisdiction").unwrap_or_default() {
        "" => {
            errors.push(("jurisdiction".into(), say("form_error.country")));
            None
        }
        "other" => None,
        text => {
            let parsed = CountryCode::parse(text);
            if parsed.is_none() {
                errors.push(("jurisdiction".into(), say("form_error.country")));
            }
            parsed
        }
    };
    let (Some(kind), true) = (kind, errors.is_empty()) else {
        return Ok(visitor.page(
            state,
            "by_email",
            by_email_data(&form, &errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    state
        .key_rate_limiter
        .check(Some(budget::address_key(&address)))?;
    let filed = filings::by_email(
        &state.group,
        &state.config,
        budget::address_key(&address),
        address,
        Intake {
            kind,
            details: Details {
                note: form.get("note").map(str::to_string),
                ..Details::default()
            },
            locale: Some(lang.tag().into()),
            jurisdiction: country,
        },
        None,
    )
    .await;
    let filed = match filed {
        Ok(filed) => filed,
        Err(RequestError::Invalid(list)) => {
            let errors: Vec<(String, String)> = list
                .iter()
                .map(|e| {
                    let message = if e.field == "email" {
                        say("form_error.email_invalid")
                    } else {
                        e.message.clone()
                    };
                    (e.field.trim_start_matches("details.").to_string(), message)
                })
                .collect();
            return Ok(visitor.page(
                state,
                "by_email",
                by_email_data(&form, &errors),
                StatusCode::UNPROCESSABLE_ENTITY,
            ));
        }
        Err(e) => return Err(ApiError::from(e)),
    };
    Ok(visitor.redirect(&format!("/portal/requests/{}/verify", filed.id)))
}

/// `GET /portal/requests/{id}/verify`: where the emailed code is entered.
#[handler]
pub async fn code_form(
    req: &Request,
    Path(id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let found = request::get(state.db.conn(), &id).await?;
    if found.status != request::RequestStatus::Unverified {
        return Ok(verified_page(state, visitor, &found, StatusCode::OK));
    }
    let data = json!({"id": id, "minutes": intake::CODE_LIFETIME.num_minutes(), "resent": query_param(req, "resent").is_some()});
    Ok(visitor.page(state, "code", data, StatusCode::OK))
}

fn verified_page(
    state: &AppState,
    visitor: Visitor,
    found: &DsRequest,
    status: StatusCode,
) -> Response {
    let data = json!({
        "request": request_line(found),
        "reference": crate::vocab::reference(&found.id),
        "closed": found.closed_at.is_some() && found.verified_at.is_none(),
    });
    visitor.page(state, "verified", data, status)
}

/// `POST /portal/requests/{id}/verify`: checks the code. A wrong code is counted even though
/// the page answers with an error.
#[handler]
pub async fn verify(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    state.rate_limiter.check(client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    let form = visitor.form(body).await?;
    let code = form.get("code").unwrap_or_default().replace(' ', "");
    let attempt = filings::verify(&state.db, &state.config, &id, &code).await?;
    let lang = visitor.lang;
    let message = match attempt {
        Ok(found) => return Ok(verified_page(state, visitor, &found, StatusCode::OK)),
        Err(RequestError::WrongCode { left }) => {
            state
                .pages
                .words("form_error.code_wrong", lang, &[("n", &left.to_string())])
        }
        Err(RequestError::CodeExpired) => state.pages.words("form_error.code_expired", lang, &[]),
        Err(e) => return Err(ApiError::from(e)),
    };
    let data = json!({
        "id": id,
        "minutes": intake::CODE_LIFETIME.num_minutes(),
        "errors": [{"field": "code", "message": message}],
    });
    Ok(visitor.page(state, "code", data, StatusCode::UNPROCESSABLE_ENTITY))
}

/// `POST /portal/requests/{id}/resend`: a new code (at most 3, a minute apart).
#[handler]
pub async fn resend(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    state.rate_limiter.check(client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    visitor.form(body).await?;
    filings::resend(&state.db, &id).await?;
    Ok(visitor.redirect(&format!("/portal/requests/{id}/verify?resent=1")))
}

/// Checks who may open `found`'s export and the token; the package row if both hold.
async fn export_access(
    state: &AppState,
    visitor: &Visitor,
    found: &DsRequest,
    token: &str,
) -> Result<request::model::exports::Model, ApiError> {
    if export::needs_sign_in(found) {
        let person = visitor.signed_in().map_err(|_| {
            ApiError::unauthorized("sign in, then open the link again")
                .with_reason("sign_in_needed")
        })?;
        if found.subject_id.as_deref() != Some(person.id.as_str()) {
            return Err(RequestError::NotFound.into());
        }
    }
    export::peek(state.db.conn(), &found.id, token)
        .await
        .map_err(|e| match e {
            RequestError::ExportGone => ApiError::from(e).with_reason("export_gone"),
            other => other.into(),
        })
}

/// What an export link opens: the visitor, the request, the link's token and the package, once
/// [`export_access`] allows it.
struct OpenedExport {
    visitor: Visitor,
    request: DsRequest,
    token: String,
    package: request::model::exports::Model,
}

async fn open_export(state: &AppState, req: &Request, id: &str) -> Result<OpenedExport, ApiError> {
    state.rate_limiter.check(client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    let token = query_param(req, "token").unwrap_or_default();
    let request = request::get(state.db.conn(), id).await?;
    let package = export_access(state, &visitor, &request, &token).await?;
    Ok(OpenedExport {
        visitor,
        request,
        token,
        package,
    })
}

/// `GET /portal/requests/{id}/export?token=`: the page the "export ready" email links to.
#[handler]
pub async fn export_page(
    req: &Request,
    Path(id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let OpenedExport {
        visitor,
        request: found,
        token,
        package,
    } = open_export(state, req, &id).await?;
    let data = json!({
        "request": request_line(&found),
        "expires_at": package.expires_at.to_rfc3339(),
        "size_kb": (package.size + 1023) / 1024,
        "zip": package.media_type == "application/zip",
        "file_url": format!("/portal/requests/{id}/export/file?token={}", crate::web::urlencode(&token)),
    });
    Ok(visitor.page(state, "export", data, StatusCode::OK))
}

/// `GET /portal/requests/{id}/export/file?token=`: the package itself.
#[handler]
pub async fn export_file(
    req: &Request,
    Path(id): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let opened = open_export(state, req, &id).await?;
    let attachment = request::api::package(state, &opened.request, &opened.token).await?;
    Ok(attachment.into_response())
}
