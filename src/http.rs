//! The HTTP edge: the OpenAPI service, the documentation routes and the middleware every request
//! passes through (request id, body limit, panic guard, problem+json for every error).

use std::{net::IpAddr, sync::Arc, time::Instant};

use poem::{
    Endpoint, EndpointExt, IntoResponse, PathPattern, Request, Response, Route,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::CatchPanic,
};
use poem_openapi::{OpenApiService, payload::Payload};

use crate::{
    AppState, age, audit, auth, consent, error::ApiError, error::problem_from_poem_error, health,
    hooks, notify, policy, purpose, request, retention, subject,
};

/// Header carrying the request id in both directions.
pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    static CURRENT_REQUEST_ID: Arc<str>;
}

/// The id of the request being served, for error bodies and logs.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// The client's IP address, for rate limits, sign-in locks and consent evidence: the peer's,
/// unless the peer is one of `trusted_proxies`; then the nearest address in the configured
/// `trusted_proxy_header` that is not a trusted proxy, read right to left (each proxy appends
/// the address it saw, so entries left of the first untrusted hop were written by the client).
/// No other header is read: a client cannot choose its own address.
pub fn client_ip(req: &poem::Request) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    let Some(state) = req.data::<AppState>() else {
        return Some(peer);
    };
    Some(forwarded_client(
        peer,
        &state.config.trusted_proxies,
        &state.config.trusted_proxy_header,
        req.headers(),
    ))
}

fn forwarded_client(
    peer: IpAddr,
    trusted: &[ipnet::IpNet],
    header: &str,
    headers: &poem::http::HeaderMap,
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = forwarded_hops(headers, header);
    hops.iter()
        .rev()
        .find(|hop| !is_trusted(hop))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// The client addresses the configured header reports, farthest first: `for=` of each element
/// when it is `Forwarded` (RFC 7239), else a comma-separated list of addresses. An entry that
/// does not parse ends the list there: nothing left of it can be told apart from what the
/// client wrote.
fn forwarded_hops(headers: &poem::http::HeaderMap, header: &str) -> Vec<IpAddr> {
    let entries: Vec<String> = headers
        .get_all(header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .collect();
    let rfc7239 = header.eq_ignore_ascii_case("forwarded");
    let parsed: Vec<Option<IpAddr>> = entries
        .iter()
        .map(|entry| {
            if rfc7239 {
                entry.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("for").then(|| parse_node(v))?
                })
            } else {
                parse_node(entry)
            }
        })
        .collect();
    // Keep the trustworthy tail: from the last unparseable entry onwards, exclusive.
    let start = parsed
        .iter()
        .rposition(Option::is_none)
        .map_or(0, |i| i + 1);
    parsed[start..].iter().flatten().copied().collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`.
fn parse_node(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.rsplit_once(':').and_then(|(host, _)| host.parse().ok())
}

/// The user agent and IP address of a request, kept as evidence of a consent decision.
pub fn client_evidence(req: &Request) -> (Option<String>, Option<IpAddr>) {
    let user_agent = req
        .headers()
        .get(poem::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let ip = client_ip(req);
    (user_agent, ip)
}

/// The OpenAPI service with every API the three clients use.
pub fn api_service(state: &AppState) -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    OpenApiService::new(
        (
            health::HealthApi::new(state.clone()),
            auth::api::KeysApi::new(state.clone()),
            audit::api::AuditApi::new(state.clone()),
            notify::api::OutboxApi::new(state.clone()),
            policy::api::PoliciesApi::new(state.clone()),
            purpose::api::PurposesApi::new(state.clone()),
            consent::api::ConsentApi::new(state.clone()),
            age::api::AgeGateApi::new(state.clone()),
            subject::api::SubjectApi::new(state.clone()),
            hooks::api::HooksApi::new(state.clone()),
            request::api::RequestsApi::new(state.clone()),
            retention::api::RetentionApi::new(state.clone()),
            crate::system::api::SystemsApi::new(state.clone()),
            crate::experience::api::ExperienceApi::new(state.clone()),
        ),
        "Consentry",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Privacy compliance and consent management: policy versions, the consent ledger, \
         data-subject requests, the age gate and retention purges, under GDPR and PIPL. \
         Errors are RFC 9457 `application/problem+json`.",
    )
}

/// The whole HTTP application: API, spec, docs and middleware.
pub fn app(state: AppState) -> impl Endpoint<Output = Response> + 'static {
    let api = api_service(&state);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let max_body = state.config.max_body_bytes;
    let metrics = state.metrics.clone();
    let mut route = Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs);
    if state.config.metrics.enabled {
        route = route.at("/metrics", poem::get(crate::metrics::endpoint));
    }
    crate::web::mount(route, &state)
        .data(state)
        .with(
            CatchPanic::new()
                .with_handler(|_| ApiError::internal(&"handler panicked").into_response()),
        )
        .around(move |ep, req| limit_body(ep, req, max_body))
        .catch_all_error(|err| async move {
            // The route template, for the metrics, survives the error's conversion.
            let pattern = err.data::<PathPattern>().cloned();
            let mut resp = problem_from_poem_error(err).into_response();
            if let Some(pattern) = pattern {
                resp.set_data(pattern);
            }
            resp
        })
        .around(open_to_every_site)
        .around(move |ep, req| request_scope(ep, req, metrics.clone()))
}

/// The consent script's endpoints answer pages of any of the operator's sites: `GET` and
/// `POST` from any origin, without credentials (the visitor id travels in the body), and the
/// preflight of the JSON `POST`. Every other path keeps the browser's same-origin rule.
async fn open_to_every_site<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    use poem::http::{Method, header};
    if !req.uri().path().starts_with("/v1/experience") {
        return ep.call(req).await.map(IntoResponse::into_response);
    }
    let mut resp = if req.method() == Method::OPTIONS {
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type")
            .header(header::ACCESS_CONTROL_MAX_AGE, "86400")
            .finish()
    } else {
        ep.call(req).await?.into_response()
    };
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    Ok(resp)
}

/// Refuses bodies over the limit with 413 before any handler reads them: by the declared length
/// when there is one, and by counting when the body is chunked. Every body within the limit is
/// read here, before the handler, so that a handler refusing a request early (a 401 before the
/// body) leaves the connection clean for a keep-alive client's next request.
async fn limit_body<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    max: usize,
) -> poem::Result<Response> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(too_large().into());
    }
    let bodiless = declared == Some(0)
        || (declared.is_none() && (req.method() == Method::GET || req.method() == Method::HEAD));
    if !bodiless {
        let body = req
            .take_body()
            .into_bytes_limit(max)
            .await
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => too_large(),
                other => ApiError::bad_request(format!("could not read the body: {other}")),
            })?;
        req.set_body(body);
    }
    Ok(ep.call(req).await?.into_response())
}

/// Gives each request an id (the caller's, if it is a plausible id, else a new one), runs it
/// inside a tracing span carrying that id, and logs one line per request. Query strings are not
/// logged: they may carry personal data.
async fn request_scope<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    metrics: Arc<crate::metrics::Metrics>,
) -> poem::Result<Response> {
    let id: Arc<str> = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plausible_request_id(v))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().to_string()));
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();
    let method = req.method().clone();
    let fut = CURRENT_REQUEST_ID.scope(id.clone(), async move {
        let mut resp = ep.call(req).await?.into_response();
        if let Ok(value) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID, value);
        }
        Ok::<_, poem::Error>(resp)
    });
    let resp = tracing::Instrument::instrument(fut, span.clone()).await?;
    let route = resp
        .data::<PathPattern>()
        .map_or("unmatched", |p| p.0.as_ref());
    metrics.observe_http(
        route,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    span.in_scope(|| {
        tracing::info!(
            status = resp.status().as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "served"
        )
    });
    Ok(resp)
}

/// Accepts ids of up to 64 characters from `[A-Za-z0-9._-]`, so that a caller cannot inject
/// text into our logs.
fn is_plausible_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut headers = poem::http::HeaderMap::new();
        // The client wrote the first entry; nginx appended the address it saw.
        headers.insert(
            "x-forwarded-for",
            "192.0.2.66, 203.0.113.9, 10.9.9.9".parse().unwrap(),
        );
        let xff = "x-forwarded-for";
        assert_eq!(
            forwarded_client(proxy, &trusted, xff, &headers),
            ip("203.0.113.9")
        );
        assert_eq!(
            forwarded_client(stranger, &trusted, xff, &headers),
            stranger
        );
        // A `Forwarded` header the client wrote is not read when the proxies use X-Forwarded-For.
        headers.insert("forwarded", "for=192.0.2.1".parse().unwrap());
        assert_eq!(
            forwarded_client(proxy, &trusted, xff, &headers),
            ip("203.0.113.9")
        );
        headers.insert(
            "forwarded",
            r#"for=192.0.2.1, for="[2001:db8::7]:4711";proto=https, for=10.2.2.2"#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            forwarded_client(proxy, &trusted, "forwarded", &headers),
            ip("2001:db8::7")
        );
        // Garbage left of the proxies' entries hides nothing the proxies appended.
        headers.insert("x-forwarded-for", "junk, 203.0.113.10".parse().unwrap());
        assert_eq!(
            forwarded_client(proxy, &trusted, xff, &headers),
            ip("203.0.113.10")
        );
    }

    #[test]
    fn request_ids_from_callers_are_checked() {
        assert!(is_plausible_request_id("3f0c-abc_1.2"));
        assert!(!is_plausible_request_id("evil\nline"));
        assert!(!is_plausible_request_id(&"a".repeat(65)));
        assert!(!is_plausible_request_id(""));
    }
}

/// A body kept as its exact bytes for a Standard Webhooks signature check (the signature
/// covers the bytes, not their parse), documented in the OpenAPI as the JSON schema `T`.
pub struct Signed<T>(Vec<u8>, std::marker::PhantomData<T>);

impl<T> Signed<T> {
    /// The bytes as received.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<T: poem_openapi::types::Type + Send> Payload for Signed<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type.starts_with("application/json")
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        T::register(registry);
    }
}

impl<T: poem_openapi::types::Type + Send> poem_openapi::payload::ParsePayload for Signed<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(
        _request: &poem::Request,
        body: &mut poem::RequestBody,
    ) -> poem::Result<Self> {
        Ok(Self(
            body.take()?.into_vec().await?,
            std::marker::PhantomData,
        ))
    }
}

poem_openapi::impl_apirequest_for_payload!(Signed<T>, T: poem_openapi::types::Type + Send);
