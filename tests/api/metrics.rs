//! `GET /metrics`: the figures after a known sequence of calls, labels free of personal data,
//! and the token that guards it when set.

use chrono::Utc;
use consentry::{audit::Actor, auth::Role, retention::purge};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, json, purpose_body, spawn_app_with, subject_token};

async fn scrape(app: &TestApp) -> String {
    let resp = app.get("/metrics").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    resp.text().await.unwrap()
}

/// The value of the series `name{labels}` exactly as written, e.g. `x{a="b"}`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_what_happened_and_name_no_one() {
    // Mail goes to a closed port and gets one attempt: the code email becomes a dead letter.
    let closed = crate::support::free_port();
    let app = spawn_app_with(move |c| {
        c.smtp_url = Some(consentry::config::Secret::new(format!(
            "smtp://127.0.0.1:{closed}"
        )));
        c.mail.tls = Some(consentry::config::SmtpTls::None);
        c.outbox.max_attempts = 1;
    })
    .await;
    let admin = app.key(Role::Admin).await;
    let service = app.key(Role::Service).await;
    app.create_purposes(&admin, &[purpose_body("analytics")])
        .await;
    let check = || {
        app.get("/v1/subjects/u-metrics/consents/analytics")
            .bearer_auth(&service)
            .send()
    };
    json(check().await.unwrap(), StatusCode::OK).await;
    for granted in [true, false] {
        let resp = app
            .request(reqwest::Method::PUT, "/v1/me/consents/analytics")
            .bearer_auth(subject_token("u-metrics"))
            .json(&json!({"granted": granted, "policy_version": 2}))
            .send()
            .await
            .unwrap();
        json(resp, StatusCode::OK).await;
    }
    json(check().await.unwrap(), StatusCode::OK).await;
    let filed = app
        .post("/v1/requests")
        .json(
            &json!({"email": "secret-person@example.com", "type": "access", "jurisdiction": "DE"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(filed.status(), StatusCode::ACCEPTED);
    app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    let run = purge::start(
        &app.state.db,
        &app.state.config,
        false,
        Utc::now(),
        &Actor::Cli,
    )
    .await
    .unwrap();
    consentry::actions::purges::execute(&app.state.db, &app.state.config, run)
        .await
        .unwrap();

    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            r#"consentry_consent_checks_total{reason="no_consent"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"consentry_consent_checks_total{reason="withdrawn"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "consentry_consent_events_stored"), 2.0);
    // Two decisions and one filing, one after another: three commits of one unit each.
    assert_eq!(value(&text, "consentry_group_commit_units_total"), 3.0);
    assert_eq!(value(&text, "consentry_group_commits_total"), 3.0);
    assert_eq!(value(&text, "consentry_consent_sets_refused_total"), 0.0);
    // Two checks, one after the other: two queries of one check each.
    assert_eq!(value(&text, "consentry_consent_check_reads_total"), 2.0);
    assert_eq!(
        value(&text, "consentry_consent_check_read_checks_total"),
        2.0
    );
    assert_eq!(
        value(
            &text,
            r#"consentry_requests_open{status="unverified",law="gdpr"}"#
        ),
        1.0
    );
    assert_eq!(value(&text, "consentry_requests_overdue"), 0.0);
    assert_eq!(
        value(
            &text,
            r#"consentry_outbox_messages{status="dead",kind="email",priority="urgent"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&text, "consentry_outbox_oldest_pending_age_seconds"),
        0.0
    );
    assert_eq!(
        value(
            &text,
            r#"consentry_purge_runs{status="completed",dry_run="false"}"#
        ),
        1.0
    );
    assert!(value(&text, "consentry_purge_last_success_timestamp_seconds") > 1.7e9);
    let checks = r#"consentry_http_request_duration_seconds_count{route="/v1/subjects/:param0/consents/:param1",method="GET",status="200"}"#;
    assert_eq!(value(&text, checks), 2.0);
    assert!(text.contains(r#"consentry_build_info{version=""#));
    for private in ["u-metrics", "secret-person", "@example.com"] {
        assert!(!text.contains(private), "{private} in the metrics");
    }
}

#[tokio::test]
async fn a_metrics_token_is_required_once_set() {
    let app = spawn_app_with(|c| {
        c.metrics.token = Some(consentry::config::Secret::new("scrape-token-0123456789"))
    })
    .await;
    let bare = app.get("/metrics").send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let wrong = app
        .get("/metrics")
        .bearer_auth("scrape-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = app
        .get("/metrics")
        .bearer_auth("scrape-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let off = spawn_app_with(|c| c.metrics.enabled = false).await;
    assert_eq!(
        off.get("/metrics").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}
