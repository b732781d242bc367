//! The consent script for the main app's pages, served from here or copied to the operator's own
//! domain: `/sdk/consentry.js` and its stylesheet (both cached for a week, with an ETag),
//! `/sdk/demo` (a shop page whose analytics wait for consent, under a nonce-only CSP), and
//! `/.well-known/gpc.json`, which says that Global Privacy Control is honoured.

use std::path::Path;

use poem::{
    IntoResponse, Request, Response, handler,
    http::{StatusCode, header},
    web::Data,
};

use crate::{
    AppState, crypto,
    words::{TemplateError, read},
};

/// The gzipped script may be at most this big (checked by a test).
pub const SCRIPT_BUDGET_BYTES: usize = 15 * 1024;

/// The script, its stylesheet and the demo page, read at start-up.
pub struct Sdk {
    pub script: String,
    pub style: String,
    demo: String,
    script_etag: String,
    style_etag: String,
}

impl Sdk {
    /// Reads `templates/sdk/`.
    pub fn load(templates: &Path) -> Result<Self, TemplateError> {
        let dir = templates.join("sdk");
        let code = read(&dir.join("consentry.js"))?;
        let sheet = read(&dir.join("consentry.css"))?;
        let page = read(&dir.join("demo.html"))?;
        let etag = |text: &str| format!("\"{}\"", &crypto::sha256_hex(text.as_bytes())[..16]);
        Ok(Self {
            script_etag: etag(&code),
            style_etag: etag(&sheet),
            script: code,
            style: sheet,
            demo: page,
        })
    }
}

/// A file of the script, cached by browsers and CDNs for a week, revalidated by its ETag.
fn asset(req: &Request, body: &str, etag: &str, content_type: &str) -> Response {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let builder = Response::builder()
        .header(header::CACHE_CONTROL, "public, max-age=604800")
        .header(header::ETAG, etag)
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .header("Cross-Origin-Resource-Policy", "cross-origin");
    if fresh {
        builder.status(StatusCode::NOT_MODIFIED).finish()
    } else {
        builder.content_type(content_type).body(body.to_string())
    }
}

/// `GET /sdk/consentry.js`.
#[handler]
pub fn script(req: &Request, Data(state): Data<&AppState>) -> Response {
    let sdk = &state.sdk;
    asset(
        req,
        &sdk.script,
        &sdk.script_etag,
        "text/javascript; charset=utf-8",
    )
}

/// `GET /sdk/consentry.css`.
#[handler]
pub fn style(req: &Request, Data(state): Data<&AppState>) -> Response {
    let sdk = &state.sdk;
    asset(req, &sdk.style, &sdk.style_etag, "text/css; charset=utf-8")
}

/// `GET /sdk/demo`: a shop page as an operator would write it, under a CSP that allows only
/// scripts and styles carrying this response's nonce.
#[handler]
pub fn demo(Data(state): Data<&AppState>) -> Response {
    let nonce = crypto::random_token();
    let csp = format!(
        "default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .header("Content-Security-Policy", csp)
        .header(header::CACHE_CONTROL, "no-store")
        .body(state.sdk.demo.replace("{{nonce}}", &nonce))
}

/// `GET /.well-known/gpc.json` (the GPC specification's support resource).
#[handler]
pub fn gpc() -> impl IntoResponse {
    Response::builder()
        .content_type("application/json")
        .header(header::CACHE_CONTROL, "public, max-age=86400")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .body(r#"{"gpc": true, "lastUpdate": "2026-12-04"}"#)
}
