//! A guardian's pages. The consent link from the email asks one question at a time (the
//! purposes that need no consent of their own together, then each that does alone), names the
//! service and the child, and works until every question is answered; nothing is chosen in
//! advance and nothing is recorded that the guardian did not answer. The lasting link sent
//! afterwards shows the child's choices, each with one button to give or withdraw it.
//! A used, expired or unknown link has a page of its own that says what to do next.

use poem::{Body, Request, Response, handler, http::StatusCode, web::Data};
use serde_json::{Value, json};

use super::{Visitor, query_param};
use crate::{
    AppState, actions, clock,
    consent::{Decision, PolicyRef, ledger},
    error::ApiError,
    guardian::{self, GuardianError},
    law, policy,
    purpose::Purpose,
    subject::{self, Subject},
    web::{FormData, Lang},
};

/// The page for a link that cannot be used, or `None` when the error is of another kind.
fn link_state(
    state: &AppState,
    visitor: Visitor,
    err: &GuardianError,
    kind: &str,
) -> Option<Response> {
    let (which, status) = match err {
        GuardianError::UnknownToken => ("unknown", StatusCode::NOT_FOUND),
        GuardianError::Used => ("used", StatusCode::GONE),
        GuardianError::Expired => ("expired", StatusCode::GONE),
        _ => return None,
    };
    Some(visitor.page(
        state,
        "guardian_link",
        json!({"state": {which: true}, "manage": kind == guardian::MANAGE,
               "contact": state.config.controller.contact_email}),
        status,
    ))
}

/// The policy document in force for the child, in the page's language.
async fn document(
    state: &AppState,
    minor: &Subject,
    lang: Lang,
) -> Result<policy::Policy, ApiError> {
    policy::current(
        state.db.conn(),
        policy::DEFAULT_KEY,
        minor.jurisdiction.as_deref(),
        Some(lang.tag()),
        clock::now(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("no privacy policy is in force"))
}

/// One purpose as a parent reads it: its words for a parent (or the child's description, said
/// to be what the child is told), who receives the data and for how long, and the separate
/// consent's legal ground only where the child's law has one.
fn purpose_view(p: &Purpose, minor: &Subject, lang: Lang) -> Value {
    let text = p.text(lang.tag());
    let under_pipl = law::child_needs_separate_consent(minor.jurisdiction.as_deref());
    json!({
        "key": p.key,
        "title": text.map(|t| t.title.clone()).unwrap_or_else(|| p.key.clone()),
        "for_parent": text.and_then(|t| t.guardian.clone()),
        "description": text.map(|t| t.description.clone()).unwrap_or_default(),
        "required": p.required,
        "separate_reason": p.separate_consent_reason
            .filter(|_| under_pipl)
            .map(|r| sea_orm::ActiveEnum::to_value(&r)),
        "recipients": p.recipients.iter().map(|r| json!({"name": r.name, "country": r.country})).collect::<Vec<_>>(),
        "retention": p.retention_period,
    })
}

/// Who the page is about and who asks.
fn names(state: &AppState, minor: &Subject) -> Value {
    json!({"service": state.config.controller.name, "child": subject::named(minor)})
}

/// The question page: the link's next question, its place among all, the answers given and
/// the errors of a refused submission.
async fn question_data(
    state: &AppState,
    lang: Lang,
    minor: &Subject,
    token: &str,
    link: &guardian::entity::Model,
    form: &FormData,
    errors: &[(String, String)],
) -> Result<Option<Value>, ApiError> {
    let purposes = guardian::asked(state.db.conn()).await?;
    let all = guardian::questions(&purposes, minor);
    // With no purpose to ask about, the page only asks the guardian to confirm.
    let question = match guardian::next_question(&purposes, minor, link) {
        Some(question) => question,
        None if all.is_empty() => Vec::new(),
        None => return Ok(None),
    };
    let number = all.iter().position(|q| *q == question).unwrap_or(0) + 1;
    let document = document(state, minor, lang).await?;
    let shown: Vec<Value> = question
        .iter()
        .map(|p| {
            let mut view = purpose_view(p, minor, lang);
            let answer = form.get(&format!("decision.{}", p.key));
            let field = format!("decision.{}", p.key);
            view["error"] = errors
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, m)| m.clone())
                .into();
            view["yes"] = (answer == Some("yes")).into();
            view["no"] = (answer == Some("no")).into();
            view
        })
        .collect();
    Ok(Some(json!({
        "token": token,
        "who": names(state, minor),
        "expires_at": link.expires_at.to_rfc3339(),
        "policy": {"id": document.id, "key": document.key, "version": document.version, "title": document.title},
        "number": number,
        "total": all.len(),
        "several": all.len() > 1,
        "alone": question.len() == 1 && all.len() > 1,
        "purposes": shown,
        "errors": errors.iter().map(|(f, m)| json!({"field": f, "message": m})).collect::<Vec<_>>(),
    })))
}

/// A guardian's link as a page opens it: the visitor, the form they sent (empty for a `GET`),
/// the token, the link's row and the minor it is for.
struct Opened {
    visitor: Visitor,
    form: FormData,
    token: String,
    link: guardian::entity::Model,
    minor: Subject,
}

/// Opens the link of `kind` named by the query (`GET`) or the form (`POST`), rate-limited per
/// client; a link that cannot be used answers with the page that says why.
async fn open(
    state: &AppState,
    req: &Request,
    body: Option<Body>,
    kind: &str,
) -> Result<Result<Opened, Response>, ApiError> {
    state.rate_limiter.check(crate::http::client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    let (form, token) = match body {
        Some(body) => {
            let form = visitor.form(body).await?;
            let token = form.get("token").unwrap_or_default().to_string();
            (form, token)
        }
        None => (
            FormData::default(),
            query_param(req, "token").unwrap_or_default(),
        ),
    };
    match guardian::peek(state.db.conn(), &token, kind).await {
        Ok((link, minor)) => Ok(Ok(Opened {
            visitor,
            form,
            token,
            link,
            minor,
        })),
        Err(e) => link_state(state, visitor, &e, kind)
            .map(Err)
            .ok_or_else(|| e.into()),
    }
}

/// `GET /portal/guardian/confirm?token=`: the link's next question.
#[handler]
pub async fn show(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let Opened {
        visitor,
        token,
        link,
        minor,
        ..
    } = match open(state, req, None, guardian::CONSENT).await? {
        Ok(opened) => opened,
        Err(page) => return Ok(page),
    };
    let lang = visitor.lang;
    match question_data(
        state,
        lang,
        &minor,
        &token,
        &link,
        &FormData::default(),
        &[],
    )
    .await?
    {
        Some(data) => Ok(visitor.page(state, "guardian", data, StatusCode::OK)),
        None => link_state(state, visitor, &GuardianError::Used, guardian::CONSENT)
            .ok_or_else(|| GuardianError::Used.into()),
    }
}

/// `POST /portal/guardian/confirm`: records the answers to the question shown, then shows the
/// next one, or the end once all are answered.
#[handler]
pub async fn confirm(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let Opened {
        visitor,
        form,
        token,
        link,
        minor,
    } = match open(state, req, Some(body), guardian::CONSENT).await? {
        Ok(opened) => opened,
        Err(page) => return Ok(page),
    };
    let lang = visitor.lang;
    let Some(shown) = question_data(state, lang, &minor, &token, &link, &form, &[]).await? else {
        return link_state(state, visitor, &GuardianError::Used, guardian::CONSENT)
            .ok_or_else(|| GuardianError::Used.into());
    };
    let mut decisions = Vec::new();
    let mut errors = Vec::new();
    for p in shown["purposes"].as_array().into_iter().flatten() {
        let key = p["key"].as_str().unwrap_or_default();
        match form.get(&format!("decision.{key}")) {
            Some(answer @ ("yes" | "no")) => decisions.push(Decision {
                purpose: key.to_string(),
                granted: answer == "yes",
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
        let evidence = guardian::Evidence { user_agent, ip };
        match actions::guardians::answer(
            &state.db,
            &state.config,
            &token,
            decisions,
            policy,
            evidence,
        )
        .await
        {
            Ok(answered) if answered.left > 0 => {
                return Ok(visitor.redirect(&format!(
                    "/portal/guardian/confirm?token={}&answered={}",
                    crate::web::urlencode(&token),
                    shown["number"]
                )));
            }
            Ok(_) => {
                let data = json!({"who": names(state, &minor),
                                  "contact": state.config.controller.contact_email});
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
                    refusal(state, lang, &title, reason.as_deref()),
                ));
            }
            Err(e) => {
                return link_state(state, visitor, &e, guardian::CONSENT).ok_or_else(|| e.into());
            }
        }
    }
    let data = question_data(state, lang, &minor, &token, &link, &form, &errors)
        .await?
        .unwrap_or_default();
    Ok(visitor.page(state, "guardian", data, StatusCode::UNPROCESSABLE_ENTITY))
}

/// Why the ledger refused a guardian's decision, in words the guardian can act on.
fn refusal(state: &AppState, lang: Lang, title: &str, reason: Option<&str>) -> String {
    let key = match reason {
        Some("required_purpose") => "guardian.refused_required",
        _ => "guardian.refused",
    };
    state.pages.words(key, lang, &[("title", title)])
}

/// `GET /portal/guardian/choices?token=`: the lasting link: the child's choices, each with one
/// button to give or withdraw it.
#[handler]
pub async fn choices(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let Opened {
        visitor,
        token,
        minor,
        ..
    } = match open(state, req, None, guardian::MANAGE).await? {
        Ok(opened) => opened,
        Err(page) => return Ok(page),
    };
    let changed = query_param(req, "changed");
    let data = choices_data(state, visitor.lang, &minor, &token, changed.as_deref()).await?;
    Ok(visitor.page(state, "guardian_choices", data, StatusCode::OK))
}

async fn choices_data(
    state: &AppState,
    lang: Lang,
    minor: &Subject,
    token: &str,
    changed: Option<&str>,
) -> Result<Value, ApiError> {
    let conn = state.db.conn();
    let current = ledger::current(conn, &minor.id).await?;
    let document = document(state, minor, lang).await?;
    let purposes: Vec<Value> = guardian::asked(conn)
        .await?
        .iter()
        .map(|p| {
            let mut view = purpose_view(p, minor, lang);
            let granted = current.iter().any(|c| {
                c.purpose_key == p.key && c.status == crate::consent::ConsentStatus::Granted
            });
            view["granted"] = granted.into();
            view["changed"] = (changed == Some(p.key.as_str())).into();
            view
        })
        .collect();
    Ok(json!({
        "token": token,
        "who": names(state, minor),
        "policy": {"id": document.id, "version": document.version},
        "purposes": purposes,
        "contact": state.config.controller.contact_email,
    }))
}

/// `POST /portal/guardian/choices`: gives or withdraws one purpose, then shows the choices
/// again with that one marked.
#[handler]
pub async fn change(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let Opened {
        visitor,
        form,
        token,
        minor,
        ..
    } = match open(state, req, Some(body), guardian::MANAGE).await? {
        Ok(opened) => opened,
        Err(page) => return Ok(page),
    };
    let purpose = form.get("purpose").unwrap_or_default().to_string();
    let decision = Decision {
        purpose: purpose.clone(),
        granted: form.get("decision") == Some("grant"),
    };
    let document = document(state, &minor, visitor.lang).await?;
    let policy = PolicyRef {
        key: document.key.clone(),
        version: document.version,
        id: Some(document.id.clone()),
    };
    let (user_agent, ip) = crate::http::client_evidence(req);
    let evidence = guardian::Evidence { user_agent, ip };
    match actions::guardians::change(&state.db, &state.config, &token, decision, policy, evidence)
        .await
    {
        Ok(_) => Ok(visitor.redirect(&format!(
            "/portal/guardian/choices?token={}&changed={}",
            crate::web::urlencode(&token),
            crate::web::urlencode(&purpose)
        ))),
        Err(GuardianError::Refused { source, .. }) => Err(ApiError::from(source)),
        Err(e) => link_state(state, visitor, &e, guardian::MANAGE).ok_or_else(|| e.into()),
    }
}
