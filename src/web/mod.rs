//! Pages for people, served beside the JSON API: the rights portal under `/portal` and the
//! privacy team's console under `/console`.
//!
//! Rendered on the server with Handlebars (templates under `templates/`), one stylesheet, no
//! script: every flow works with JavaScript off. Page handlers call the same domain functions as
//! the API handlers. Every response under these paths carries a strict Content-Security-Policy,
//! refuses framing and is not cached; every form carries a CSRF token ([`csrf`]); every error
//! is a page in the visitor's language.

pub mod browser;
mod console;
pub mod cookies;
pub mod csrf;
mod form;
mod markdown;
pub mod page;
pub mod portal;
pub mod sdk;

use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler,
    http::{HeaderValue, header},
    web::Data,
};

pub use form::FormData;
pub use page::{Lang, Pages};

use crate::AppState;

/// The page areas with templates of their own.
pub const AREAS: &[&str] = &["portal", "console"];

/// Adds `/portal`, `/console`, the stylesheet and `/` (which sends people to the portal) to
/// `route`, each
/// with the browser protections.
pub fn mount(route: Route, state: &AppState) -> Route {
    let policy: Arc<str> = content_security_policy(state).into();
    let https = browser::serves_https(state);
    let protected = move |ep| {
        let policy = policy.clone();
        EndpointExt::around(ep, move |ep, req| protect(ep, req, policy.clone(), https))
    };
    route
        .nest("/portal", protected(portal::routes(state.clone()).boxed()))
        .nest(
            "/console",
            protected(console::routes(state.clone()).boxed()),
        )
        .at("/assets/consentry.css", protected(get(stylesheet).boxed()))
        .at("/sdk/consentry.js", get(sdk::script))
        .at("/sdk/consentry.css", get(sdk::style))
        .at("/sdk/demo", get(sdk::demo))
        .at("/.well-known/gpc.json", get(sdk::gpc))
        .at("/", get(to_portal))
}

/// A value for a URL's path segment or query.
pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[handler]
fn to_portal() -> poem::web::Redirect {
    poem::web::Redirect::see_other("/portal")
}

/// The Content-Security-Policy of every page: our stylesheet and images, forms to ourselves,
/// no script, no framing, no plugins. A configured logo's origin is allowed for images.
fn content_security_policy(state: &AppState) -> String {
    let logo = state
        .config
        .portal
        .logo_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:{logo}; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

async fn protect<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    policy: Arc<str>,
    https: bool,
) -> poem::Result<Response> {
    let mut resp = ep.call(req).await?.into_response();
    let headers = resp.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Links carry single-use tokens: never hand them to another site.
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if https {
        // Cookies are `Secure` already; this keeps the browser off plain http altogether.
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[handler]
fn stylesheet(Data(state): Data<&AppState>) -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(state.stylesheet.to_string())
}
