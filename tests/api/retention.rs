//! Retention rules: validation, roles, each item's purge date, and the coverage report.

use chrono::{DateTime, Months, Utc};
use consentry::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestApp, json, problem, purpose_body, spawn_app};

async fn rule(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    app.request(method, &format!("/v1/admin/retention-rules{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The purge date of a subject's item, as the admin view shows it.
async fn purge_after(app: &TestApp, viewer: &str, who: &str, item: &str) -> Option<DateTime<Utc>> {
    let view = app.read(&format!("/v1/admin/subjects/{who}"), viewer).await;
    let found = view["data_items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item_ref"] == item)
        .unwrap()
        .clone();
    found["purge_after"].as_str().map(|s| s.parse().unwrap())
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn rules_are_validated_and_only_admins_change_them() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    let service = app.key(Role::Service).await;
    let bad = problem(
        rule(
            &app,
            &admin,
            Method::POST,
            "",
            json!({"category": "photos", "period": "30 days", "action": "shred"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["period", "action"]);
    problem(
        rule(
            &app,
            &admin,
            Method::POST,
            "",
            json!({"category": "photos", "period": "PT12H"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for key in [&viewer, &service] {
        problem(
            rule(
                &app,
                key,
                Method::POST,
                "",
                json!({"category": "photos", "period": "P30D"}),
            )
            .await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let created = json(
        rule(
            &app,
            &admin,
            Method::POST,
            "",
            json!({"category": "photos", "period": "P30D", "notice_before": "P7D"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["clock_start"], "created");
    assert_eq!(created["action"], "delete");
    problem(
        rule(
            &app,
            &admin,
            Method::POST,
            "",
            json!({"category": "photos", "period": "P1Y"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    let listed = json(
        rule(&app, &viewer, Method::GET, "", Value::Null).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    problem(
        rule(&app, &viewer, Method::GET, "/unknown", Value::Null).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let deleted = rule(&app, &admin, Method::DELETE, "/photos", Value::Null).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn each_item_is_dated_by_its_rule_and_redated_when_the_rule_changes() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    for (item, category) in [("img-1", "generated_images"), ("ds-1", "training_data")] {
        json(
            app.send_event(
                "data.recorded",
                json!({"external_id": "u1", "item_ref": item, "category": category,
                       "created_at": "2026-01-10T08:00:00Z"}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    assert_eq!(
        purge_after(&app, &viewer, "u1", "img-1").await,
        None,
        "no rule, no date"
    );

    json(
        rule(
            &app,
            &admin,
            Method::POST,
            "",
            json!({"category": "generated_images", "period": "P90D"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        purge_after(&app, &viewer, "u1", "img-1").await,
        Some(at("2026-04-10T08:00:00Z"))
    );
    // Shortening the rule applies to what is already held, and is audited.
    json(
        rule(
            &app,
            &admin,
            Method::PUT,
            "/generated_images",
            json!({"period": "P30D"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        purge_after(&app, &viewer, "u1", "img-1").await,
        Some(at("2026-02-09T08:00:00Z"))
    );
    let audit = app
        .read("/v1/admin/audit?action=retention_rule.updated", &viewer)
        .await;
    assert!(audit.to_string().contains("P90D") && audit.to_string().contains("P30D"));

    // An event-started clock: nothing until the event arrives.
    json(
        rule(&app, &admin, Method::POST, "", json!({"category": "training_data", "period": "P3M", "clock_start": "training_completed"})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(purge_after(&app, &viewer, "u1", "ds-1").await, None);
    json(
        app.send_event(
            "data.recorded",
            json!({"external_id": "u1", "item_ref": "ds-1", "category": "training_data",
                   "clock_event": "training_completed"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let due = purge_after(&app, &viewer, "u1", "ds-1")
        .await
        .expect("dated by the event");
    let started = Utc::now();
    let expected = started.checked_add_months(Months::new(3)).unwrap();
    assert!(
        (due - expected).num_seconds().abs() < 120,
        "{due} vs {expected}"
    );

    // Deleting a rule undates its items.
    rule(
        &app,
        &admin,
        Method::DELETE,
        "/generated_images",
        Value::Null,
    )
    .await;
    assert_eq!(purge_after(&app, &viewer, "u1", "img-1").await, None);
}

#[tokio::test]
async fn categories_without_a_rule_are_reported_as_gaps() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    app.create_purposes(&admin, &[purpose_body("photo_tagging")])
        .await;
    json(
        app.send_event(
            "data.recorded",
            json!({"external_id": "u2", "item_ref": "log-1", "category": "server_logs"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let coverage = || async {
        app.read("/v1/admin/retention-rules/coverage", &viewer)
            .await
    };
    let gaps = coverage().await;
    assert_eq!(
        gaps,
        json!([
            {"category": "photos", "items": 0, "purposes": ["photo_tagging"]},
            {"category": "server_logs", "items": 1, "purposes": []},
        ])
    );
    for (category, period) in [("photos", "P1Y"), ("server_logs", "P3M")] {
        json(
            rule(
                &app,
                &admin,
                Method::POST,
                "",
                json!({"category": category, "period": period}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    assert_eq!(coverage().await, json!([]));
}
