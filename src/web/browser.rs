//! What every page needs from the browser that asks for it, in the portal and the console
//! alike: the language (`?lang=` switch, remembered; else the person's own; else
//! `Accept-Language`), the CSRF seed and token, cookies to set, and the page's own address for
//! the language switch. Each area has its own cookies, scoped to its path.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{StatusCode, header},
};
use serde_json::{Value, json};

use super::{FormData, Lang, cookies, cookies::Cookie, csrf};
use crate::{AppState, error::ApiError};

/// The portal or the console: where its pages live and what its cookies are called.
#[derive(Debug)]
pub struct Area {
    /// Template folder and URL path segment: `portal`, `console`.
    pub name: &'static str,
    pub path: &'static str,
    pub session_cookie: &'static str,
    pub(crate) csrf_cookie: &'static str,
    lang_cookie: &'static str,
}

pub const PORTAL: Area = Area {
    name: "portal",
    path: "/portal",
    session_cookie: "consentry_portal",
    csrf_cookie: "consentry_csrf",
    lang_cookie: "consentry_lang",
};

pub const CONSOLE: Area = Area {
    name: "console",
    path: "/console",
    session_cookie: "consentry_console",
    csrf_cookie: "consentry_console_csrf",
    lang_cookie: "consentry_console_lang",
};

/// One request's browser.
pub struct Browser {
    pub lang: Lang,
    area: &'static Area,
    /// The session cookie, once the caller has found it names a live session.
    pub(crate) session: Option<String>,
    csrf_seed: String,
    set_cookies: Vec<String>,
    here: String,
    secure: bool,
    page_key: Arc<[u8; 32]>,
}

impl Browser {
    /// The area's session cookie, not yet checked.
    pub fn session_cookie(state: &AppState, req: &Request, area: &Area) -> Option<String> {
        cookies::get(req, area.session_cookie, serves_https(state))
    }

    /// Reads the cookies. `session` is the session cookie when it names a live session;
    /// `own_language` the signed-in person's.
    pub fn new(
        state: &AppState,
        req: &Request,
        area: &'static Area,
        session: Option<String>,
        own_language: Option<Lang>,
    ) -> Self {
        let secure = serves_https(state);
        let mut set_cookies = Vec::new();
        let chosen = query_param(req, "lang").and_then(|l| Lang::parse(&l));
        if let Some(lang) = chosen {
            set_cookies.push(
                Cookie {
                    name: area.lang_cookie,
                    value: lang.tag(),
                    path: area.path,
                    max_age: Some(365 * 24 * 3600),
                    secure,
                    same_site: "Lax",
                }
                .header(),
            );
        }
        let lang = chosen
            .or_else(|| remembered_language(req, area, secure))
            .or(own_language)
            .or_else(|| accept_language(req))
            .unwrap_or(Lang::En);
        let issued = cookies::get(req, area.csrf_cookie, secure)
            .filter(|seed| csrf::is_issued(&state.page_key, seed));
        let csrf_seed = match issued {
            Some(seed) => seed,
            None => {
                let seed = csrf::issue_seed(&state.page_key);
                set_cookies.push(csrf_cookie(area, &seed, secure));
                seed
            }
        };
        let here = req
            .original_uri()
            .path_and_query()
            .map_or_else(|| area.path.to_string(), |p| p.to_string());
        Self {
            lang,
            area,
            session,
            csrf_seed,
            set_cookies,
            here,
            secure,
            page_key: state.page_key.clone(),
        }
    }

    /// The token every form on this page carries.
    pub fn csrf(&self) -> String {
        csrf::token(&self.csrf_seed)
    }

    /// Reads a submitted form. Its CSRF token was checked by the area's guard
    /// ([`csrf::guard`]) before the handler ran.
    pub async fn form(&self, body: poem::Body) -> Result<FormData, ApiError> {
        FormData::read(body).await
    }

    /// Sets the area's session cookie (`None` deletes it) for `max_age` seconds. Signing in
    /// also replaces the CSRF seed, so that no token from before the sign-in works after it.
    pub fn set_session(&mut self, token: Option<&str>, max_age: i64) {
        if token.is_some() {
            self.csrf_seed = csrf::issue_seed(&self.page_key);
            self.set_cookies
                .push(csrf_cookie(self.area, &self.csrf_seed, self.secure));
        }
        self.set_cookies.push(
            Cookie {
                name: self.area.session_cookie,
                value: token.unwrap_or_default(),
                path: self.area.path,
                max_age: Some(if token.is_some() { max_age } else { 0 }),
                secure: self.secure,
                same_site: "Lax",
            }
            .header(),
        );
    }

    /// Renders `<area>/<template>` inside the layout; `extra` adds to what every page gets.
    pub fn render(
        self,
        state: &AppState,
        template: &str,
        mut data: Value,
        status: StatusCode,
        signed_in: bool,
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
            fields.insert("_signed_in".into(), signed_in.into());
            layout(fields, state, self.area, self.lang, &self.here);
        }
        let mut resp = state.pages.render(
            &format!("{}/{template}", self.area.name),
            self.lang,
            data,
            status,
        );
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
}

/// What the layout of every page needs: the area, the operator's name and logo, and the
/// language switch back to this page in the other language.
fn layout(
    fields: &mut serde_json::Map<String, Value>,
    state: &AppState,
    area: &Area,
    lang: Lang,
    here: &str,
) {
    let other = lang.other();
    fields.insert(format!("_{}", area.name), true.into());
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

/// The `Set-Cookie` of an area's CSRF seed: for this browser session, sent only from our own
/// pages.
fn csrf_cookie(area: &Area, seed: &str, secure: bool) -> String {
    Cookie {
        name: area.csrf_cookie,
        value: seed,
        path: area.path,
        max_age: None,
        secure,
        same_site: "Strict",
    }
    .header()
}

fn remembered_language(req: &Request, area: &Area, secure: bool) -> Option<Lang> {
    cookies::get(req, area.lang_cookie, secure).and_then(|l| Lang::parse(&l))
}

/// Whether the pages are served over https (the portal's configured URL says so): then cookies
/// are `Secure` and `__Host-`, and browsers are told to keep to https.
pub fn serves_https(state: &AppState) -> bool {
    state.config.portal_url().starts_with("https://")
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
pub(crate) fn with_query_param(here: &str, name: &str, value: &str) -> String {
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
    "budget_spent",
    "token_invalid",
    "handoff_used",
    "export_gone",
    "sign_in_needed",
    "forbidden_role",
];

/// Turns every error under an area into a page in the visitor's language (from the switch or
/// `Accept-Language`; the session is not read again for an error). In the console, a visitor
/// who is not signed in is sent to the sign-in page instead.
pub async fn pages_for_errors<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    state: Arc<AppState>,
    area: &'static Area,
) -> poem::Result<Response> {
    let lang = query_param(&req, "lang")
        .and_then(|l| Lang::parse(&l))
        .or_else(|| remembered_language(&req, area, serves_https(&state)))
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
    if area.name == "console" && reason.as_deref() == Some("signed_out") {
        return Ok(poem::web::Redirect::see_other("/console/signin").into_response());
    }
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), error = %err, area = area.name, "a page failed");
    }
    let shown = match status.as_u16() {
        400 | 401 | 403 | 404 | 409 | 410 | 413 | 422 | 429 => status.as_u16(),
        _ => 500,
    };
    let reason = reason.as_deref().filter(|r| EXPLAINED.contains(r));
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
        layout(fields, &state, area, lang, &here);
    }
    Ok(state
        .pages
        .render(&format!("{}/error", area.name), lang, data, status))
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
