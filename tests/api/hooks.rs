//! Signed events from the main app: verification, replay, validation, and what each event
//! type records.

use consentry::{auth::Role, hooks::entity as receipts};
use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::support::{
    TestApp, WEBHOOK_SECRET, event_body, json, problem, purpose_body, spawn_app, spawn_app_with,
    webhook_headers,
};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn upserted(external_id: &str) -> Value {
    json!({
        "external_id": external_id,
        "email": "ada@example.com",
        "locale": "en",
        "jurisdiction": "DE",
        "birth_date": "1990-05-17",
    })
}

async fn receipt_count(app: &TestApp) -> u64 {
    receipts::Entity::find()
        .count(app.state.db.conn())
        .await
        .unwrap()
}

async fn admin_view(app: &TestApp, viewer: &str, external_id: &str) -> reqwest::Response {
    app.get(&format!("/v1/admin/subjects/{external_id}"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_signed_event_is_applied_once_and_a_replay_gets_the_first_answer() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;
    let body = event_body("subject.upserted", upserted("ada"));
    let headers = webhook_headers(WEBHOOK_SECRET, "msg_first", now(), &body);

    let first = json(
        app.post_event_raw(headers.clone(), body.clone()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(first["result"]["age_status"], "adult");
    let record = json(admin_view(&app, &viewer, "ada").await, StatusCode::OK).await;
    assert_eq!(record["profile"]["email"], "ada@example.com");
    assert_eq!(record["profile"]["jurisdiction"], "DE");
    assert_eq!(record["profile"]["birth_date"], "1990-05-17");

    // The same id again, even with other data and a fresh signature: the first answer, nothing
    // applied.
    let changed = event_body(
        "subject.upserted",
        json!({"external_id": "ada", "email": "other@example.com"}),
    );
    let again = webhook_headers(WEBHOOK_SECRET, "msg_first", now(), &changed);
    let replay = json(app.post_event_raw(again, changed).await, StatusCode::OK).await;
    assert_eq!(replay, first);
    let record = json(admin_view(&app, &viewer, "ada").await, StatusCode::OK).await;
    assert_eq!(record["profile"]["email"], "ada@example.com");
    assert_eq!(receipt_count(&app).await, 1);
}

#[tokio::test]
async fn bad_missing_and_stale_signatures_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;
    let body = event_body("subject.upserted", upserted("mallory"));

    let mut forged = webhook_headers(WEBHOOK_SECRET, "msg_1", now(), &body);
    forged.insert(
        "webhook-signature",
        format!("v1,{}", "A".repeat(44)).parse().unwrap(),
    );
    problem(
        app.post_event_raw(forged, body.clone()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let other_secret = "whsec_b3RoZXItc2VjcmV0LW5vdC1jb25maWd1cmVkLTAxMjM0NQ==";
    let wrong_key = webhook_headers(other_secret, "msg_2", now(), &body);
    problem(
        app.post_event_raw(wrong_key, body.clone()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let stale = webhook_headers(WEBHOOK_SECRET, "msg_3", now() - 301, &body);
    problem(
        app.post_event_raw(stale, body.clone()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let future = webhook_headers(WEBHOOK_SECRET, "msg_4", now() + 301, &body);
    problem(
        app.post_event_raw(future, body.clone()).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Signed over other bytes than those sent.
    let tampered = webhook_headers(WEBHOOK_SECRET, "msg_5", now(), &body);
    let other_body = event_body("subject.upserted", upserted("eve"));
    problem(
        app.post_event_raw(tampered, other_body).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let unsigned = app
        .post("/v1/hooks/events")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    problem(unsigned, StatusCode::UNAUTHORIZED).await;

    problem(
        admin_view(&app, &viewer, "mallory").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(receipt_count(&app).await, 0);
}

#[tokio::test]
async fn every_configured_secret_verifies_so_that_secrets_can_be_rotated() {
    let old = "whsec_b2xkLXNlY3JldC1iZWluZy1yb3RhdGVkLW91dC0wMTIzNA==";
    let new = "whsec_bmV3LXNlY3JldC1iZWluZy1yb3RhdGVkLWluLTAxMjM0NTY=";
    let app = spawn_app_with(|c| {
        c.webhook_secret = Some(consentry::config::Secret::new(format!("{new},{old}")));
    })
    .await;
    for (i, secret) in [old, new].into_iter().enumerate() {
        let body = event_body("subject.upserted", upserted(&format!("r-{i}")));
        let headers = webhook_headers(secret, &format!("msg_rot_{i}"), now(), &body);
        json(app.post_event_raw(headers, body).await, StatusCode::OK).await;
    }
    let body = event_body("subject.upserted", upserted("r-x"));
    let headers = webhook_headers(WEBHOOK_SECRET, "msg_rot_x", now(), &body);
    problem(
        app.post_event_raw(headers, body).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn unknown_types_and_invalid_data_are_422_and_write_nothing() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;

    let unknown = problem(
        app.send_event("subject.teleported", upserted("u-1")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(unknown["errors"][0]["field"], "type");

    let missing = problem(
        app.send_event("subject.upserted", json!({"email": "x@example.com"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        missing.to_string().contains("external_id"),
        "the missing field is named: {missing}"
    );

    let mut bad = upserted("u-1");
    bad["email"] = json!("not-an-address");
    bad["guardian_email"] = json!("nor-this");
    let invalid = problem(
        app.send_event("subject.upserted", bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = invalid["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["data.email", "data.guardian_email"]);

    let mut bad_date = upserted("u-1");
    bad_date["birth_date"] = json!("17/05/1990");
    problem(
        app.send_event("subject.upserted", bad_date).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // A body that is not JSON at all, correctly signed.
    let junk = b"{not json".to_vec();
    let headers = webhook_headers(WEBHOOK_SECRET, "msg_junk", now(), &junk);
    problem(
        app.post_event_raw(headers, junk).await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    problem(
        admin_view(&app, &viewer, "u-1").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(receipt_count(&app).await, 0);

    // A refused id is not remembered: the corrected event under the same id is applied.
    let body = event_body("subject.teleported", upserted("u-2"));
    let headers = webhook_headers(WEBHOOK_SECRET, "msg_retry", now(), &body);
    problem(
        app.post_event_raw(headers, body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let body = event_body("subject.upserted", upserted("u-2"));
    let headers = webhook_headers(WEBHOOK_SECRET, "msg_retry", now(), &body);
    json(app.post_event_raw(headers, body).await, StatusCode::OK).await;
}

#[tokio::test]
async fn data_items_are_registered_clocked_and_erased() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;
    let created = "2026-01-10T08:00:00Z";
    for data in [
        json!({"external_id": "d-1", "item_ref": "img-1", "category": "generated_images",
               "created_at": created}),
        json!({"external_id": "d-1", "item_ref": "log-1", "category": "server_logs"}),
        json!({"external_id": "d-1", "item_ref": "img-2", "category": "training_data"}),
        json!({"external_id": "d-1", "item_ref": "img-2", "category": "training_data",
               "clock_event": "training_completed"}),
    ] {
        json(app.send_event("data.recorded", data).await, StatusCode::OK).await;
    }
    let erased = json(
        app.send_event(
            "data.erased",
            json!({"external_id": "d-1", "item_ref": "log-1"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(erased["result"]["erased"], 1);
    problem(
        app.send_event(
            "data.recorded",
            json!({"external_id": "d-1", "item_ref": "x", "category": "Bad Category"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let record = json(admin_view(&app, &viewer, "d-1").await, StatusCode::OK).await;
    let items = record["data_items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "a clock event updates its item: {items:?}");
    let by_ref = |r: &str| items.iter().find(|i| i["item_ref"] == r).unwrap();
    assert_eq!(by_ref("img-1")["created_at"], "2026-01-10T08:00:00+00:00");
    assert_eq!(by_ref("img-1")["category"], "generated_images");
    assert!(by_ref("log-1")["erased_at"].is_string());
    assert_eq!(by_ref("img-2")["clock_event"], "training_completed");
    assert!(by_ref("img-2")["clock_started_at"].is_string());
    assert!(by_ref("img-1").get("erased_at").is_none());
}

/// A person's items come page by page: the record shows the first page and the total, and the
/// items route walks the rest with a cursor, each item once.
#[tokio::test]
async fn a_persons_items_are_paged() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;
    let items: Vec<Value> = (0..250)
        .map(|i| json!({"external_id": "many", "item_ref": format!("img-{i:03}"), "category": "uploads"}))
        .collect();
    json(
        app.send_event("data.recorded_many", json!({"items": items}))
            .await,
        StatusCode::OK,
    )
    .await;
    let record = json(admin_view(&app, &viewer, "many").await, StatusCode::OK).await;
    assert_eq!(record["data_items"].as_array().unwrap().len(), 100);
    assert_eq!(record["data_items_total"], 250);
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=120&cursor={c}"),
            None => "?limit=120".to_string(),
        };
        let page = app
            .read(&format!("/v1/admin/subjects/many/items{query}"), &viewer)
            .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["item_ref"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((seen.len(), sorted.len()), (250, 250), "each item once");
    let too_many = app
        .get("/v1/admin/subjects/many/items?limit=5000")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
    let unknown = app
        .get("/v1/admin/subjects/nobody/items")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn thousands_of_items_register_in_one_event_dated_by_their_rules() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    json(
        app.post("/v1/admin/retention-rules")
            .bearer_auth(&admin)
            .json(&json!({"category": "generated_images", "period": "P30D"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let mut items: Vec<Value> = (0..3000)
        .map(|i| {
            json!({"external_id": format!("bulk-{}", i % 300), "item_ref": format!("img-{i}"),
                   "category": "generated_images", "created_at": "2026-03-01T10:00:00Z"})
        })
        .collect();
    // Named twice: counted once, as its last entry.
    items.push(json!({"external_id": "bulk-0", "item_ref": "img-0",
                      "category": "generated_images", "created_at": "2026-03-01T10:00:00Z"}));
    let answer = json(
        app.send_event("data.recorded_many", json!({"items": items}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["type"], "data.recorded_many");
    assert_eq!(answer["result"]["recorded"], 3000);
    let viewer = app.key(Role::Viewer).await;
    let record = json(admin_view(&app, &viewer, "bulk-7").await, StatusCode::OK).await;
    let held = record["data_items"].as_array().unwrap();
    assert_eq!(held.len(), 10);
    assert!(
        held.iter()
            .all(|i| i["purge_after"] == "2026-03-31T10:00:00+00:00"),
        "dated by the rule: {held:?}"
    );

    // One bad item refuses the whole event.
    let bad = problem(
        app.send_event(
            "data.recorded_many",
            json!({"items": [
                {"external_id": "bulk-new", "item_ref": "a", "category": "photos"},
                {"external_id": "bulk-new", "item_ref": "b", "category": "Bad Category"},
            ]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(bad["errors"].is_array());
    problem(
        admin_view(&app, &viewer, "bulk-new").await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn subject_deleted_opens_one_verified_erasure_request() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;
    json(
        app.send_event("subject.upserted", upserted("gone")).await,
        StatusCode::OK,
    )
    .await;
    let first = json(
        app.send_event("subject.deleted", json!({"external_id": "gone"}))
            .await,
        StatusCode::OK,
    )
    .await;
    let second = json(
        app.send_event("subject.deleted", json!({"external_id": "gone"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        first["result"]["request_id"], second["result"]["duplicate_of"],
        "a second cancellation links to the open request"
    );
    assert_eq!(second["result"]["status"], "cancelled");
    let record = json(admin_view(&app, &viewer, "gone").await, StatusCode::OK).await;
    let requests = record["requests"].as_array().unwrap();
    let open: Vec<_> = requests
        .iter()
        .filter(|r| r["status"] == "verified")
        .collect();
    assert_eq!(open.len(), 1, "one request is processed: {requests:?}");
    assert_eq!(open[0]["type"], "erase");
    assert_eq!(open[0]["source"], "main_app");
    assert_eq!(open[0]["law"], "gdpr");
    assert!(open[0]["due_date"].is_string());
}

#[tokio::test]
async fn consent_and_policy_acceptance_from_the_main_app_are_recorded() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    app.create_purposes(&admin, &[purpose_body("photo_tagging")])
        .await;
    json(
        app.send_event("subject.upserted", upserted("c-1")).await,
        StatusCode::OK,
    )
    .await;

    let recorded = json(
        app.send_event(
            "consent.recorded",
            json!({"external_id": "c-1", "policy_version": 2,
                   "decisions": [{"purpose": "photo_tagging", "granted": true}],
                   "user_agent": "MainApp/3.1", "ip": "203.0.113.77"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(recorded["result"]["events"].as_array().unwrap().len(), 1);
    let history = app
        .read("/v1/admin/subjects/c-1/consents/history", &viewer)
        .await;
    let event = &history["items"][0];
    assert_eq!(event["actor"], "main_app");
    assert_eq!(event["channel"], "main_app");
    assert_eq!(
        event["ip"], "203.0.113.0/24",
        "the IP is truncated by default"
    );

    problem(
        app.send_event(
            "consent.recorded",
            json!({"external_id": "c-1", "policy_version": 2,
                   "decisions": [{"purpose": "no_such_purpose", "granted": true}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    let accepted = json(
        app.send_event(
            "policy.accepted",
            json!({"external_id": "c-1", "policy_version": 2}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(accepted["result"]["acceptance_id"].is_string());
    let unknown = problem(
        app.send_event(
            "policy.accepted",
            json!({"external_id": "c-1", "policy_version": 99}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(unknown["errors"][0]["field"], "data.policy_version");
}

#[tokio::test]
async fn the_event_schemas_are_in_the_openapi_document() {
    let app = spawn_app().await;
    let spec = json(
        app.get("/openapi.json").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    for schema in [
        "Envelope",
        "SubjectUpsertedEvent",
        "SubjectDeletedEvent",
        "ConsentRecordedEvent",
        "DataRecordedEvent",
        "DataErasedEvent",
        "PolicyAcceptedEvent",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema} is documented"
        );
    }
    let op = &spec["paths"]["/v1/hooks/events"]["post"];
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Envelope"
    );
}
