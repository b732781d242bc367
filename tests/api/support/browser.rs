//! A browser without JavaScript, as the page tests use it: cookies kept between requests,
//! redirects looked at rather than followed, forms posted with the token the page gave.

use std::{collections::BTreeMap, sync::Mutex};

use reqwest::{StatusCode, header};

use super::{TestApp, subject_token};

/// A page as the browser got it.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: header::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    /// The CSRF token of the page's forms.
    pub(crate) fn csrf(&self) -> String {
        self.field("csrf")
            .expect("the page has a form with a CSRF token")
    }

    /// The value of the hidden field `name`, if the page has one.
    pub(crate) fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        Some(self.body[start..].split('"').next()?.to_string())
    }

    pub(crate) fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a redirect")
    }

    /// The request id a filing redirected to (`/portal/requests/{id}?filed=1`).
    pub(crate) fn request_id(&self) -> String {
        let rest = self.location().trim_start_matches("/portal/requests/");
        rest.split('?').next().unwrap().to_string()
    }

    pub(crate) fn is_html(&self) -> bool {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
    }

    #[track_caller]
    pub(crate) fn shows(&self, text: &str) {
        assert!(
            self.body.contains(text),
            "the page ({}) does not show {text:?}:\n{}",
            self.status,
            self.body
        );
    }
}

/// A browser: one cookie jar, no redirects followed, an `Accept-Language` of its own.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
    language: &'static str,
    /// The address a trusted proxy reports for this browser (`X-Forwarded-For`).
    address: Option<&'static str>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        Self::speaking(app, "en-GB,en;q=0.9")
    }

    pub(crate) fn speaking(app: &'a TestApp, language: &'static str) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::default(),
            language,
            address: None,
        }
    }

    /// A browser behind the app's trusted proxy, which reports it as `address`.
    pub(crate) fn at(app: &'a TestApp, address: &'static str) -> Self {
        Self {
            address: Some(address),
            ..Self::new(app)
        }
    }

    /// Sets a cookie as another site (or the browser's owner) might.
    pub(crate) fn plant_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&self, mut request: reqwest::RequestBuilder) -> Page {
        if let Some(address) = self.address {
            request = request.header("x-forwarded-for", address);
        }
        let resp = request
            .header(header::COOKIE, self.cookie_header())
            .header(header::ACCEPT_LANGUAGE, self.language)
            .send()
            .await
            .unwrap();
        {
            let mut jar = self.cookies.lock().unwrap();
            for set in resp.headers().get_all(header::SET_COOKIE) {
                let set = set.to_str().unwrap();
                let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
                let (name, value) = pair.split_once('=').unwrap();
                if attributes.contains("Max-Age=0") {
                    jar.remove(name);
                } else {
                    jar.insert(name.to_string(), value.to_string());
                }
            }
        }
        Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(self.app.url(path))).await
    }

    /// Posts a form as it is, with no token added.
    pub(crate) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.client.post(self.app.url(path)).form(fields))
            .await
    }

    /// Posts a form from `page`, with the page's CSRF token.
    pub(crate) async fn submit(&self, page: &Page, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = page.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    /// The main app's handoff: the session starts and the person lands at home.
    pub(crate) async fn sign_in(&self, who: &str) -> Page {
        let handoff = self
            .get(&format!("/portal/session?token={}", subject_token(who)))
            .await;
        assert_eq!(handoff.status, StatusCode::SEE_OTHER, "{}", handoff.body);
        assert_eq!(handoff.location(), "/portal");
        self.get("/portal").await
    }

    pub(crate) fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().contains_key(name)
    }
}
