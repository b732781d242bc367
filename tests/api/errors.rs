//! Every error a client can meet is problem+json with the right status, and a refused request
//! changes nothing.

use consentry::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{json, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn liveness_and_readiness_answer_ok() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let body = json(app.get(path).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(body["status"], "ok");
    }
}

#[tokio::test]
async fn readiness_is_a_503_problem_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.state.db.clone().close().await.unwrap();
    let live = app.get("/health/live").send().await.unwrap();
    assert_eq!(
        live.status(),
        StatusCode::OK,
        "liveness does not depend on the database"
    );
    problem(
        app.get("/health/ready").send().await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    problem(
        app.get("/no/such/route").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = spawn_app().await;
    problem(
        app.request(Method::DELETE, "/health/live")
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
}

#[tokio::test]
async fn malformed_json_is_a_400_problem_and_creates_nothing() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let resp = app
        .post("/v1/admin/keys")
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::BAD_REQUEST).await;
    let keys = app.read("/v1/admin/keys", &admin).await;
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "only the admin key exists"
    );
}

#[tokio::test]
async fn a_schema_violation_is_a_422_problem_naming_the_field() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let resp = app
        .post("/v1/admin/keys")
        .bearer_auth(&admin)
        .json(&json!({ "name": "", "role": "admin" }))
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "name", "{body}");

    let resp = app
        .post("/v1/admin/keys")
        .bearer_auth(&admin)
        .json(&json!({ "name": "x", "role": "superuser" }))
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;

    let resp = app
        .post("/v1/admin/keys")
        .bearer_auth(&admin)
        .json(&json!({ "name": "   ", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["errors"][0]["field"], "name", "{body}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let admin = app.key(Role::Admin).await;
    let big = json!({ "name": "x".repeat(2048), "role": "admin" });
    let resp = app
        .post("/v1/admin/keys")
        .bearer_auth(&admin)
        .json(&big)
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_413_problem() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let admin = app.key(Role::Admin).await;
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = "a".repeat(1500);
    let request = format!(
        "POST /v1/admin/keys HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {admin}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
         {:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
}

/// However the body is framed (many small chunks, sent with pauses), a body over the limit is a
/// 413 and never reaches the JSON parser cut short.
#[tokio::test]
async fn a_body_sent_in_small_chunks_over_the_limit_is_always_a_413() {
    let app = spawn_app_with(|c| c.max_body_bytes = 1024).await;
    let admin = app.key(Role::Admin).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let body = format!("{{\"key\": \"{}\"}}", "k".repeat(3000));
    for round in 0..12 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/admin/purposes HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {admin}\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        for piece in body.as_bytes().chunks(97) {
            let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            // The server may answer and close before the whole body is sent.
            if stream.write_all(&chunk).await.is_err() {
                break;
            }
            if round % 3 == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "round {round}: {response}"
        );
    }
    let purposes = app
        .get("/v1/admin/purposes")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(json(purposes, StatusCode::OK).await, json!([]));
}

#[tokio::test]
async fn the_request_id_is_echoed_when_plausible_and_replaced_when_not() {
    let app = spawn_app().await;
    let resp = app
        .get("/health/live")
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-123");
    let resp = app
        .get("/health/live")
        .header("x-request-id", "has spaces <and> markup")
        .send()
        .await
        .unwrap();
    assert_ne!(resp.headers()["x-request-id"], "has spaces <and> markup");
}

#[tokio::test]
async fn the_openapi_document_and_the_docs_are_served() {
    let app = spawn_app().await;
    let spec = json(
        app.get("/openapi.json").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/v1/admin/audit"]["get"].is_object());
    let responses = &spec["paths"]["/v1/admin/keys"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "413", "422"] {
        assert!(responses[status].is_object(), "{status} is documented");
    }
    let docs = app.get("/docs").send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().to_lowercase().contains("<html"));
}

/// A POST refused before its handler needs the body (a wrong key) leaves the connection usable:
/// a keep-alive client's next request on it is answered.
#[tokio::test]
async fn a_connection_stays_usable_after_an_early_refusal() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = "x".repeat(64 * 1024);
    let refused = format!(
        "POST /v1/consents/check HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer csk_wrong_key\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let next = format!("GET /health/live HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(refused.as_bytes()).await.unwrap();
    stream.write_all(next.as_bytes()).await.unwrap();
    let mut answers = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut answers),
    )
    .await
    .expect("the server answers both")
    .unwrap();
    assert!(answers.starts_with("HTTP/1.1 401"), "{answers}");
    assert_eq!(answers.matches("HTTP/1.1 ").count(), 2, "{answers}");
    assert!(answers.contains("HTTP/1.1 200"), "{answers}");
}

/// Behind a trusted proxy, each client has its own rate-limit bucket, named by the proxy's
/// `X-Forwarded-For`; the header counts for nothing from anyone else.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_counted_apart() {
    let app = spawn_app_with(|c| {
        c.rate_limit.per_minute = 2;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let ask = |client: &'static str| {
        app.post("/v1/age-gate/check")
            .header("x-forwarded-for", client)
            .json(&json!({"birth_date": "1990-01-01", "country": "DE"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(ask("203.0.113.1").await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(
        ask("203.0.113.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(ask("203.0.113.2").await.unwrap().status(), StatusCode::OK);

    // Without the setting, the header is ignored and everyone shares the peer's bucket.
    let direct = spawn_app_with(|c| c.rate_limit.per_minute = 2).await;
    let ask = |client: &'static str| {
        direct
            .post("/v1/age-gate/check")
            .header("x-forwarded-for", client)
            .json(&json!({"birth_date": "1990-01-01", "country": "DE"}))
            .send()
    };
    ask("203.0.113.1").await.unwrap();
    ask("203.0.113.2").await.unwrap();
    assert_eq!(
        ask("203.0.113.3").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Behind nginx, which appends the address it saw to `X-Forwarded-For`, a client that writes a
/// `Forwarded` header of its own, or puts addresses of its own first in `X-Forwarded-For`, is
/// still the one client the proxy saw.
#[tokio::test]
async fn headers_a_client_writes_itself_do_not_change_its_address() {
    let app = spawn_app_with(|c| {
        c.rate_limit.per_minute = 30;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let mut accepted = 0;
    for i in 0..45 {
        let resp = app
            .post("/v1/age-gate/check")
            .header("forwarded", format!("for=198.51.100.{i}"))
            .header("x-forwarded-for", format!("192.0.2.{i}, 203.0.113.1"))
            .json(&json!({"birth_date": "1990-01-01", "country": "DE"}))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 30, "one client, one limit");
}
