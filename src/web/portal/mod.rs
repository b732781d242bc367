//! The rights portal under `/portal`: where a person sees and changes consents, reads the policy
//! and what changed, files and follows requests and downloads their data; where a guardian
//! decides for a child; where a marketing email's unsubscribe link lands.
//!
//! Each page area is a module with its handlers; they call the same domain functions as the JSON
//! API, so no rule lives here. Every handler starts from a [`Visitor`] (language, session, CSRF)
//! and answers a page; errors become pages in the visitor's language ([`pages_for_errors`]).

mod guardian;
mod home;
mod policy;
mod requests;
mod unsubscribe;

use std::sync::Arc;

use chrono::TimeDelta;
use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get,
    http::{StatusCode, header},
    post,
};
use serde_json::{Value, json};

use super::{FormData, Lang, cookies, cookies::Cookie, csrf};
use crate::{
    AppState,
    auth::session::{self, Lifetimes},
    crypto,
    error::ApiError,
    subject::{self, Subject},
};

/// The session cookie (names a row of `portal_sessions`).
const SESSION_COOKIE: &str = "consentry_portal";
/// The browser's CSRF seed.
const CSRF_COOKIE: &str = "consentry_csrf";
/// The language the visitor chose with the switch.
const LANG_COOKIE: &str = "consentry_lang";
/// Every portal cookie is scoped to the portal.
const COOKIE_PATH: &str = "/portal";

/// The portal's routes, answering pages for every error.
pub fn routes(state: AppState) -> impl Endpoint<Output = Response> {
    let state = Arc::new(state);
    Route::new()
        .at("/", get(home::show))
        .at("/session", get(home::sign_in))
        .at("/signout", post(home::sign_out))
        .at("/consents/:purpose", post(home::decide))
        .at("/history", get(home::history))
        .at("/history/:event/receipt", get(home::download_receipt))
        .at("/policies/:key", get(policy::current))
        .at("/policies/:key/versions/:version", get(policy::version))
        .at("/policies/:key/diff", get(policy::changes))
        .at("/requests", get(requests::index).post(requests::file))
        .at("/requests/new", get(requests::choose))
        .at("/requests/new/:kind", get(requests::details_form))
        .at(
            "/requests/by-email",
            get(requests::by_email_form).post(requests::by_email),
        )
        .at("/requests/:id", get(requests::detail))
        .at(
            "/requests/:id/verify",
            get(requests::code_form).post(requests::verify),
        )
        .at("/requests/:id/resend", post(requests::resend))
        .at("/requests/:id/export", get(requests::export_page))
        .at("/requests/:id/export/file", get(requests::export_file))
        .at(
            "/guardian/confirm",
            get(guardian::show).post(guardian::confirm),
        )
        .at(
            "/unsubscribe",
            get(unsubscribe::show).post(unsubscribe::confirm),
        )
        .around(move |ep, req| pages_for_errors(ep, req, state.clone()))
}

/// The person looking at a page: their language, their session if signed in, and what the
/// page's forms need.
pub struct Visitor {
    pub lang: Lang,
    pub subject: Option<Subject>,
    session: Option<String>,
    csrf_seed: String,
    set_cookies: Vec<String>,
    /// The path and query of this page, for the language switch.
    here: String,
    secure: bool,
}

impl Visitor {
    /// Reads the cookies and the session. The language is the one chosen with the switch
    /// (`?lang=`, then remembered), else the person's locale, else `Accept-Language`.
    pub async fn load(state: &AppState, req: &Request) -> Result<Self, ApiError> {
        let secure = state.config.portal_url().starts_with("https://");
        let mut set_cookies = Vec::new();
        let session = cookies::get(req, SESSION_COOKIE);
        let subject = match &session {
            Some(token) => {
                match session::subject_of(state.db.conn(), token, lifetimes(state)).await? {
                    Some(id) => subject::by_id(state.db.conn(), &id)
                        .await?
                        .filter(|s| s.erased_at.is_none()),
                    None => None,
                }
            }
            None => None,
        };
        let session = session.filter(|_| subject.is_some());
        let chosen = query_param(req, "lang").and_then(|l| Lang::parse(&l));
        if let Some(lang) = chosen {
            set_cookies.push(
                Cookie {
                    name: LANG_COOKIE,
                    value: lang.tag(),
                    path: COOKIE_PATH,
                    max_age: Some(365 * 24 * 3600),
                    secure,
                    same_site: "Lax",
                }
                .header(),
            );
        }
        let lang = chosen
            .or_else(|| cookies::get(req, LANG_COOKIE).and_then(|l| Lang::parse(&l)))
            .or_else(|| {
                subject
                    .as_ref()
                    .and_then(|s| s.locale.as_deref())
                    .and_then(Lang::parse)
            })
            .or_else(|| accept_language(req))
            .unwrap_or(Lang::En);
        let csrf_seed = match cookies::get(req, CSRF_COOKIE).filter(|s| s.len() == 43) {
            Some(seed) => seed,
            None => {
                let seed = crypto::random_token();
                set_cookies.push(
                    Cookie {
                        name: CSRF_COOKIE,
                        value: &seed,
                        path: COOKIE_PATH,
                        max_age: None,
                        secure,
                        same_site: "Strict",
                    }
                    .header(),
                );
                seed
            }
        };
        let here = req
            .original_uri()
            .path_and_query()
            .map_or_else(|| "/portal".to_string(), |p| p.to_string());
        Ok(Self {
            lang,
            subject,
            session,
            csrf_seed,
            set_cookies,
            here,
            secure,
        })
    }

    /// The signed-in person, or the sign-in page's error.
    pub fn signed_in(&self) -> Result<&Subject, ApiError> {
        self.subject
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("sign in first").with_reason("signed_out"))
    }

    /// The token every form on this page carries.
    pub fn csrf(&self) -> String {
        csrf::token(&self.csrf_seed, self.session.as_deref())
    }

    /// Refuses a form whose token these cookies do not derive.
    pub fn check_csrf(&self, form: &FormData) -> Result<(), ApiError> {
        if csrf::verify(
            &self.csrf_seed,
            self.session.as_deref(),
            form.get("csrf").unwrap_or_default(),
        ) {
            Ok(())
        } else {
            Err(ApiError::forbidden("the form has expired; reload the page").with_reason("csrf"))
        }
    }

    /// Renders `portal/<template>` inside the layout.
    pub fn page(
        self,
        state: &AppState,
        template: &str,
        mut data: Value,
        status: StatusCode,
    ) -> Response {
        if let Some(fields) = data.as_object_mut() {
            // Each field's message again beside the field: `error.<field>`.
            let beside: serde_json::Map<String, Value> = fields
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| Some((e["field"].as_str()?.to_string(), e["message"].clone())))
                .collect();
            fields.insert("error".into(), Value::Object(beside));
            fields.insert("_csrf".into(), self.csrf().into());
            fields.insert("_signed_in".into(), self.subject.is_some().into());
            layout(fields, state, self.lang, &self.here);
        }
        let mut resp = state
            .pages
            .render(&format!("portal/{template}"), self.lang, data, status);
        self.attach_cookies(&mut resp);
        resp
    }

    /// A 303 to `to` (after a form), with any cookies this visit sets.
    pub fn redirect(self, to: &str) -> Response {
        let mut resp = poem::web::Redirect::see_other(to).into_response();
        self.attach_cookies(&mut resp);
        resp
    }

    fn attach_cookies(&self, resp: &mut Response) {
        for cookie in &self.set_cookies {
            if let Ok(value) = header::HeaderValue::from_str(cookie) {
                resp.headers_mut().append(header::SET_COOKIE, value);
            }
        }
    }

    fn set_cookie(&mut self, cookie: Cookie<'_>) {
        self.set_cookies.push(
            Cookie {
                secure: self.secure,
                ..cookie
            }
            .header(),
        );
    }
}

/// What the layout of every page needs: the operator's name and logo, and the language switch
/// back to this page in the other language.
fn layout(fields: &mut serde_json::Map<String, Value>, state: &AppState, lang: Lang, here: &str) {
    let other = lang.other();
    fields.insert(
        "_operator".into(),
        state.config.controller.name.clone().into(),
    );
    fields.insert(
        "_logo".into(),
        state
            .config
            .portal
            .logo_url
            .clone()
            .map_or(Value::Null, Value::from),
    );
    fields.insert(
        "_switch_url".into(),
        with_query_param(here, "lang", other.tag()).into(),
    );
    fields.insert("_switch_lang".into(), other.tag().into());
    fields.insert(
        "_switch_label".into(),
        match other {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
        .into(),
    );
}

fn lifetimes(state: &AppState) -> Lifetimes {
    Lifetimes {
        absolute: TimeDelta::minutes(state.config.portal.session_minutes.into()),
        idle: TimeDelta::minutes(state.config.portal.idle_minutes.into()),
    }
}

fn accept_language(req: &Request) -> Option<Lang> {
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
}

/// One query parameter, decoded.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `path?query` with `name` set to `value` (replacing an earlier value).
fn with_query_param(here: &str, name: &str, value: &str) -> String {
    let (path, query) = here.split_once('?').unwrap_or((here, ""));
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k != name {
            out.append_pair(&k, &v);
        }
    }
    out.append_pair(name, value);
    format!("{path}?{}", out.finish())
}

/// Reasons that have words of their own on the error page (`reason.<code>` in
/// `messages.json`); other errors show the words for their status.
const EXPLAINED: &[&str] = &[
    "signed_out",
    "csrf",
    "guardian_required",
    "restricted",
    "separate_consent",
    "required_purpose",
    "rate_limited",
    "token_invalid",
    "export_gone",
    "sign_in_needed",
];

/// Turns every error under `/portal` into a page in the visitor's language (from the switch
/// or `Accept-Language`; the session is not read again for an error).
async fn pages_for_errors<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    state: Arc<AppState>,
) -> poem::Result<Response> {
    let lang = query_param(&req, "lang")
        .and_then(|l| Lang::parse(&l))
        .or_else(|| cookies::get(&req, LANG_COOKIE).and_then(|l| Lang::parse(&l)))
        .or_else(|| accept_language(&req))
        .unwrap_or(Lang::En);
    let here = req.original_uri().path().to_string();
    let err = match ep.call(req).await {
        Ok(resp) => return Ok(resp.into_response()),
        Err(err) => err,
    };
    let status = err.status();
    let (reason, detail) = match err.downcast_ref::<ApiError>() {
        Some(api) => (
            api.reason().map(str::to_string),
            api.detail().map(str::to_string),
        ),
        None => (None, None),
    };
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), error = %err, "a portal page failed");
    }
    Ok(error_page(
        &state,
        lang,
        &here,
        status,
        reason.as_deref(),
        detail.as_deref(),
    ))
}

/// The error page: a title and a sentence for the status or reason, and what to do next.
fn error_page(
    state: &AppState,
    lang: Lang,
    here: &str,
    status: StatusCode,
    reason: Option<&str>,
    detail: Option<&str>,
) -> Response {
    let shown = match status.as_u16() {
        400 | 401 | 403 | 404 | 409 | 410 | 413 | 422 | 429 => status.as_u16(),
        _ => 500,
    };
    let reason = reason.filter(|r| EXPLAINED.contains(r));
    let mut data = json!({
            "status": shown,
            "title_key": format!("error.{shown}.title"),
            "text_key": reason.map_or_else(|| format!("error.{shown}.text"), |r| format!("reason.{r}")),
            // The service's own words, for a reason we have none for; never shown for 5xx.
            "detail": (shown != 500 && reason.is_none()).then_some(detail).flatten(),
            "signed_out": reason == Some("signed_out"),
            "sign_in_url": state.config.portal.sign_in_url,
    });
    if let Some(fields) = data.as_object_mut() {
        layout(fields, state, lang, here);
    }
    state.pages.render("portal/error", lang, data, status)
}

/// Reads a form and checks its CSRF token.
pub async fn checked_form(visitor: &Visitor, body: poem::Body) -> Result<FormData, ApiError> {
    let form = FormData::read(body).await?;
    visitor.check_csrf(&form)?;
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_switch_keeps_the_rest_of_the_link() {
        assert_eq!(
            with_query_param(
                "/portal/guardian/confirm?token=abc&lang=en",
                "lang",
                "zh-CN"
            ),
            "/portal/guardian/confirm?token=abc&lang=zh-CN"
        );
        assert_eq!(with_query_param("/portal", "lang", "en"), "/portal?lang=en");
    }
}
