//! The one CSRF check of every form on the pages, as middleware on the portal and the console:
//! every `POST` is checked before any handler runs, so a form cannot forget it.
//!
//! Each browser gets a `consentry_csrf` cookie (HttpOnly, SameSite=Strict) holding a random seed
//! and the service's HMAC of it: a seed the service did not issue (planted by a sibling
//! subdomain, say, which can set cookies for ours) is replaced, not trusted. The seed is
//! replaced at every sign-in, so a token from before a sign-in does not work after it. Every form
//! carries a token derived from that seed. A POST is accepted only when its token matches what
//! the cookie it came with derives (compared in constant time). A page on another site can make
//! the browser send the cookie but cannot read it, so it cannot write the token. The one POST
//! without a token is RFC 8058's one-click unsubscribe (the body `List-Unsubscribe=One-Click`,
//! sent by a mail provider with no cookies), which the signed link alone authorises.

use std::sync::Arc;

use poem::{Endpoint, IntoResponse, Request, Response, http::Method};

use super::{
    browser::{Area, PORTAL, serves_https},
    cookies,
};
use crate::{AppState, crypto, error::ApiError};

/// A new seed: 256 random bits and their HMAC under the service's key.
pub fn issue_seed(key: &[u8; 32]) -> String {
    let random = crypto::random_token();
    let mac = seed_mac(key, &random);
    format!("{random}.{mac}")
}

/// Whether a seed from a cookie is one this service issued.
pub fn is_issued(key: &[u8; 32], seed: &str) -> bool {
    seed.split_once('.').is_some_and(|(random, mac)| {
        random.len() == 43
            && crypto::constant_time_eq(seed_mac(key, random).as_bytes(), mac.as_bytes())
    })
}

fn seed_mac(key: &[u8; 32], random: &str) -> String {
    crypto::hmac_hex(key, format!("consentry-csrf-seed\0{random}").as_bytes())
}

/// The form token for a browser's CSRF seed.
pub fn token(seed: &str) -> String {
    crypto::sha256_hex(format!("consentry-csrf\0{seed}").as_bytes())
}

/// Whether a submitted token is the one this seed derives.
pub fn verify(seed: &str, submitted: &str) -> bool {
    crypto::constant_time_eq(token(seed).as_bytes(), submitted.as_bytes())
}

/// The middleware: refuses a `POST` under `area` whose form lacks the token of the browser's
/// (service-issued) seed with a 403 that the area's error pages explain, before the handler
/// runs; the handler gets the body as it came.
pub async fn guard<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    state: Arc<AppState>,
    area: &'static Area,
) -> poem::Result<Response> {
    if req.method() == Method::POST {
        let body = req
            .take_body()
            .into_bytes()
            .await
            .map_err(|e| ApiError::bad_request(format!("could not read the form: {e}")))?;
        if !is_one_click_unsubscribe(&req, area, &body) {
            let submitted = url::form_urlencoded::parse(&body)
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let seed = cookies::get(&req, area.csrf_cookie, serves_https(&state))
                .filter(|seed| is_issued(&state.page_key, seed));
            if !seed.is_some_and(|seed| verify(&seed, submitted.trim())) {
                return Err(ApiError::forbidden("the form has expired; reload the page")
                    .with_reason("csrf")
                    .into());
            }
        }
        req.set_body(body);
    }
    Ok(ep.call(req).await?.into_response())
}

/// RFC 8058's one-click request, on the unsubscribe link's own path.
fn is_one_click_unsubscribe(req: &Request, area: &Area, body: &[u8]) -> bool {
    area.name == PORTAL.name
        && req.uri().path().ends_with("/unsubscribe")
        && url::form_urlencoded::parse(body)
            .any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_seeds_the_service_issued_are_taken() {
        let key = [3u8; 32];
        let seed = issue_seed(&key);
        assert!(is_issued(&key, &seed));
        assert!(!is_issued(&[4u8; 32], &seed));
        assert!(
            !is_issued(&key, &crypto::random_token()),
            "a bare random seed"
        );
        let (random, _) = seed.split_once('.').unwrap();
        assert!(!is_issued(&key, &format!("{random}.{}", "0".repeat(64))));
    }

    #[test]
    fn tokens_are_bound_to_the_browsers_seed() {
        let t = token("seed");
        assert!(verify("seed", &t));
        assert!(!verify("other", &t));
        assert!(!verify("seed", ""));
    }
}
