//! The consent ledger: recording rules, checks, history, receipts, the hash chain, and the
//! three ways decisions arrive (portal, main app, admin).

use consentry::{
    auth::Role,
    config::DatabaseKind,
    consent::{ConsentActor, Decision, PolicyRef, RecordRequest, model::events},
    notify::outbox,
    subject::{self, AgeStatus, model as subjects},
};
use futures_util::future::join_all;
use reqwest::StatusCode;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, prelude::Expr,
};
use serde_json::{Value, json};

use crate::support::{
    TestApp, json, problem, purpose_body, spawn_app, spawn_app_with, subject_token,
    subject_token_expiring,
};

/// An app with the shipped policies and four purposes: `analytics` and `marketing_email`
/// (consent), `service` (contract, required) and `cloud_training` (separate consent).
async fn app_with_purposes() -> (TestApp, String) {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let mut service = purpose_body("service");
    service["legal_basis"] = json!("contract");
    service["required"] = json!(true);
    let mut training = purpose_body("cloud_training");
    training["separate_consent"] = json!(true);
    training["separate_consent_reason"] = json!("sensitive_data");
    app.create_purposes(
        &admin,
        &[
            purpose_body("analytics"),
            purpose_body("marketing_email"),
            service,
            training,
        ],
    )
    .await;
    (app, admin)
}

async fn put_consent(app: &TestApp, who: &str, purpose: &str, granted: bool) -> reqwest::Response {
    app.request(reqwest::Method::PUT, &format!("/v1/me/consents/{purpose}"))
        .bearer_auth(subject_token(who))
        .header("user-agent", "consent-tests/1.0")
        .json(&json!({"granted": granted, "policy_version": 2}))
        .send()
        .await
        .unwrap()
}

async fn check(app: &TestApp, service: &str, who: &str, purpose: &str) -> Value {
    let resp = app
        .get(&format!("/v1/subjects/{who}/consents/{purpose}"))
        .bearer_auth(service)
        .send()
        .await
        .unwrap();
    json(resp, StatusCode::OK).await
}

async fn event_count(app: &TestApp) -> u64 {
    events::Entity::find()
        .count(app.state.db.conn())
        .await
        .unwrap()
}

async fn history(app: &TestApp, who: &str) -> Vec<Value> {
    let resp = app
        .get("/v1/me/consents/history")
        .bearer_auth(subject_token(who))
        .send()
        .await
        .unwrap();
    json(resp, StatusCode::OK).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_grant_allows_processing_and_a_withdrawal_stops_it_and_tells_the_main_app() {
    let (app, _) = app_with_purposes().await;
    let service = app.key(Role::Service).await;

    let before = check(&app, &service, "u-1", "analytics").await;
    assert_eq!(before["allowed"], false);
    assert_eq!(before["reason"], "no_consent");

    let granted = json(
        put_consent(&app, "u-1", "analytics", true).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(granted["status"], "granted");
    assert_eq!(granted["recorded"], true);
    let after = check(&app, &service, "u-1", "analytics").await;
    assert_eq!(after["allowed"], true, "{after}");
    assert_eq!(after["status"], "granted");
    assert_eq!(after["policy_version"], 2);

    let withdrawn = json(
        put_consent(&app, "u-1", "analytics", false).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(withdrawn["status"], "withdrawn");
    let after = check(&app, &service, "u-1", "analytics").await;
    assert_eq!(
        (after["allowed"].clone(), after["reason"].clone()),
        (json!(false), json!("withdrawn"))
    );

    let hooks = consentry::notify::outbox::entity::Entity::find()
        .filter(consentry::notify::outbox::entity::Column::Topic.eq("consent.withdrawn"))
        .all(app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(hooks.len(), 1);
    let body: Value = serde_json::from_str(&hooks[0].payload).unwrap();
    assert_eq!(body["data"]["external_id"], "u-1");
    assert_eq!(body["data"]["purpose"], "analytics");
    assert_eq!(body["data"]["event_id"], withdrawn["event_id"]);

    // A contract purpose needs no consent.
    let contract = check(&app, &service, "u-1", "service").await;
    assert_eq!(contract["allowed"], true);
    assert_eq!(contract["reason"], "not_consent_based");
    let unknown = check(&app, &service, "u-1", "nope").await;
    assert_eq!(unknown["reason"], "unknown_purpose");
}

/// Checks are answered from memory, but never past a write this replica committed, and past a
/// write by another replica only until its change is seen (`NOTIFY` on PostgreSQL,
/// `data_version` on SQLite), not until the entry expires; with the cache off, at once.
#[tokio::test]
async fn a_remembered_check_never_outlives_a_write_here_and_another_replicas_only_briefly() {
    let (here, _) = app_with_purposes().await;
    let service = here.key(Role::Service).await;
    json(
        put_consent(&here, "u-9", "analytics", true).await,
        StatusCode::OK,
    )
    .await;
    let replica = |cache: bool| {
        let database = here.state.config.database_url();
        spawn_app_with(move |c| {
            c.database_url = Some(database);
            c.consent_cache.enabled = cache;
            c.consent_cache.ttl_ms = 600_000;
            c.consent_cache.watch_interval_ms = 20;
        })
    };
    let (there, uncached) = (replica(true).await, replica(false).await);
    for app in [&here, &there, &uncached] {
        assert_eq!(
            check(app, &service, "u-9", "analytics").await["allowed"],
            true
        );
    }

    json(
        put_consent(&here, "u-9", "analytics", false).await,
        StatusCode::OK,
    )
    .await;
    let reason = |v: Value| v["reason"].as_str().unwrap().to_string();
    assert_eq!(
        reason(check(&here, &service, "u-9", "analytics").await),
        "withdrawn"
    );
    assert_eq!(
        reason(check(&uncached, &service, "u-9", "analytics").await),
        "withdrawn"
    );
    // The other replica sees the change long before its entry (10 minutes) would expire.
    let mut seen = false;
    for _ in 0..100 {
        if reason(check(&there, &service, "u-9", "analytics").await) == "withdrawn" {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "the other replica never saw the withdrawal");
}

#[tokio::test]
async fn repeating_the_current_state_records_nothing() {
    let (app, _) = app_with_purposes().await;
    json(
        put_consent(&app, "u-2", "analytics", true).await,
        StatusCode::OK,
    )
    .await;
    let events = event_count(&app).await;
    let again = json(
        put_consent(&app, "u-2", "analytics", true).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["recorded"], false);
    assert!(again.get("event_id").is_none());
    assert_eq!(event_count(&app).await, events);

    // Refusing twice is one refusal; withdrawing twice is one withdrawal.
    json(
        put_consent(&app, "u-2", "marketing_email", false).await,
        StatusCode::OK,
    )
    .await;
    let again = json(
        put_consent(&app, "u-2", "marketing_email", false).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (again["status"].clone(), again["recorded"].clone()),
        (json!("denied"), json!(false))
    );
    json(
        put_consent(&app, "u-2", "analytics", false).await,
        StatusCode::OK,
    )
    .await;
    let again = json(
        put_consent(&app, "u-2", "analytics", false).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["recorded"], false);
    assert_eq!(event_count(&app).await, events + 2);
}

#[tokio::test]
async fn consent_under_a_draft_retired_or_unknown_version_is_refused() {
    let (app, admin) = app_with_purposes().await;
    let refused = |version: i32| {
        app.request(reqwest::Method::PUT, "/v1/me/consents/analytics")
            .bearer_auth(subject_token("u-3"))
            .json(&json!({"granted": true, "policy_version": version}))
            .send()
    };
    let p = problem(refused(9).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["reason"], "policy_not_published");

    let draft = app
        .post("/v1/admin/policies")
        .bearer_auth(&admin)
        .json(
            &json!({"key": "privacy-policy", "language": "en", "title": "Draft",
                      "body": "text", "effective_at": "2027-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    let draft = json(draft, StatusCode::CREATED).await;
    assert_eq!(draft["version"], 3);
    let p = problem(refused(3).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["reason"], "policy_not_published");

    let v1 = app
        .get("/v1/policies/privacy-policy/versions/1")
        .send()
        .await
        .unwrap();
    let v1 = json(v1, StatusCode::OK).await;
    let retired = app
        .post(&format!(
            "/v1/admin/policies/{}/retire",
            v1["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    json(retired, StatusCode::OK).await;
    let p = problem(refused(1).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["reason"], "policy_not_published");
    assert_eq!(event_count(&app).await, 0, "nothing was recorded");
}

#[tokio::test]
async fn a_required_purpose_cannot_be_withdrawn() {
    let (app, _) = app_with_purposes().await;
    json(
        put_consent(&app, "u-4", "service", true).await,
        StatusCode::OK,
    )
    .await;
    let p = problem(
        put_consent(&app, "u-4", "service", false).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["reason"], "required_purpose");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("necessary for the service")
    );
}

#[tokio::test]
async fn a_separate_consent_purpose_is_never_granted_with_another() {
    let (app, _) = app_with_purposes().await;
    let batch = |decisions: Value| {
        app.post("/v1/me/consents")
            .bearer_auth(subject_token("u-5"))
            .json(&json!({"policy_version": 2, "decisions": decisions}))
            .send()
    };
    let p = problem(
        batch(json!([{"purpose": "cloud_training", "granted": true},
                     {"purpose": "analytics", "granted": true}]))
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["reason"], "separate_consent");
    assert_eq!(event_count(&app).await, 0);

    // A refusal beside it bundles nothing.
    let beside_a_refusal = batch(json!([{"purpose": "cloud_training", "granted": true},
                                        {"purpose": "analytics", "granted": false}]))
    .await
    .unwrap();
    assert_eq!(
        json(beside_a_refusal, StatusCode::OK).await[0]["status"],
        "granted"
    );

    let alone = batch(json!([{"purpose": "cloud_training", "granted": true}]))
        .await
        .unwrap();
    assert_eq!(json(alone, StatusCode::OK).await[0]["status"], "granted");
    let others = batch(json!([{"purpose": "analytics", "granted": true},
                              {"purpose": "marketing_email", "granted": false}]))
    .await
    .unwrap();
    let others = json(others, StatusCode::OK).await;
    assert_eq!(others[1]["status"], "denied");
}

#[tokio::test]
async fn restricted_subjects_and_minors_without_a_guardian_cannot_grant() {
    let (app, _) = app_with_purposes().await;
    let service = app.key(Role::Service).await;
    json(
        put_consent(&app, "u-6", "analytics", true).await,
        StatusCode::OK,
    )
    .await;
    subjects::Entity::update_many()
        .col_expr(subjects::Column::Restricted, Expr::value(true))
        .filter(subjects::Column::ExternalId.eq("u-6"))
        .exec(app.state.db.conn())
        .await
        .unwrap();
    let p = problem(
        put_consent(&app, "u-6", "marketing_email", true).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["reason"], "restricted");
    let c = check(&app, &service, "u-6", "analytics").await;
    assert_eq!(
        (c["allowed"].clone(), c["reason"].clone()),
        (json!(false), json!("restricted"))
    );
    // Withdrawing stays possible.
    json(
        put_consent(&app, "u-6", "analytics", false).await,
        StatusCode::OK,
    )
    .await;

    let mut tx = app.state.db.begin().await.unwrap();
    subject::find_or_create_locked(&mut tx, "kid")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    subjects::Entity::update_many()
        .col_expr(
            subjects::Column::AgeStatus,
            Expr::value(AgeStatus::MinorGuardianPending),
        )
        .filter(subjects::Column::ExternalId.eq("kid"))
        .exec(app.state.db.conn())
        .await
        .unwrap();
    let p = problem(
        put_consent(&app, "kid", "analytics", true).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["reason"], "guardian_required");
    let c = check(&app, &service, "kid", "service").await;
    assert_eq!(c["reason"], "guardian_required");
}

#[tokio::test]
async fn the_main_app_and_admins_record_with_their_own_actor_and_evidence() {
    let (app, admin) = app_with_purposes().await;
    let service = app.key(Role::Service).await;
    let reported = app
        .post("/v1/subjects/u-7/consents")
        .bearer_auth(&service)
        .json(&json!({
            "decisions": [{"purpose": "analytics", "granted": true}],
            "policy_version": 2, "channel": "ios", "jurisdiction": "DE",
            "user_agent": "Lumora/5.2 iOS", "ip": "203.0.113.77",
            "occurred_at": "2026-11-01T10:00:00Z"
        }))
        .send()
        .await
        .unwrap();
    json(reported, StatusCode::OK).await;

    let correction = |body: Value| {
        app.post("/v1/admin/subjects/u-7/consents")
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let p = problem(
        correction(
            json!({"decisions": [{"purpose": "analytics", "granted": false}],
                          "policy_version": 2, "reason": ""}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "reason");
    let fixed = correction(
        json!({"decisions": [{"purpose": "analytics", "granted": false}],
                                  "policy_version": 2, "reason": "withdrawal received by post"}),
    )
    .await
    .unwrap();
    json(fixed, StatusCode::OK).await;

    let items = history(&app, "u-7").await;
    assert_eq!(items.len(), 2);
    let (admin_event, app_event) = (&items[0], &items[1]);
    assert_eq!(app_event["actor"], "main_app");
    assert_eq!(app_event["channel"], "ios");
    assert_eq!(app_event["jurisdiction"], "DE");
    assert_eq!(
        app_event["ip"], "203.0.113.0/24",
        "IP addresses are kept truncated"
    );
    assert!(
        app_event["occurred_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-01T10:00:00"),
        "the reported time is kept: {app_event}"
    );
    assert_eq!(admin_event["actor"], "admin");
    assert_eq!(admin_event["action"], "withdraw");
    assert_eq!(admin_event["reason"], "withdrawal received by post");

    let audit = app
        .get("/v1/admin/audit?action=consent.corrected")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(audit, StatusCode::OK).await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The service key cannot correct; the admin key cannot ask the hot path.
    let forbidden = app
        .post("/v1/admin/subjects/u-7/consents")
        .bearer_auth(&service)
        .json(
            &json!({"decisions": [{"purpose": "analytics", "granted": true}],
                      "policy_version": 2, "reason": "x"}),
        )
        .send()
        .await
        .unwrap();
    problem(forbidden, StatusCode::FORBIDDEN).await;
    let forbidden = app
        .get("/v1/subjects/u-7/consents/analytics")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    problem(forbidden, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn portal_calls_need_a_valid_unexpired_subject_token() {
    let (app, _) = app_with_purposes().await;
    let call = |token: Option<String>| {
        let req = app.get("/v1/me/consents");
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
    };
    problem(call(None).await.unwrap(), StatusCode::UNAUTHORIZED).await;
    let expired = subject_token_expiring("u-8", chrono::Utc::now().timestamp() - 120);
    problem(call(Some(expired)).await.unwrap(), StatusCode::UNAUTHORIZED).await;
    let forged = consentry::auth::token::SubjectTokens::new(
        consentry::config::Secret::new("another-secret-of-enough-length-0123456789"),
        None,
        None,
    )
    .mint("u-8", chrono::Utc::now().timestamp() + 600);
    problem(call(Some(forged)).await.unwrap(), StatusCode::UNAUTHORIZED).await;
    problem(
        call(Some("not.a.jwt".into())).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Within the 60-second leeway the token still works.
    let just_expired = subject_token_expiring("u-8", chrono::Utc::now().timestamp() - 30);
    json(call(Some(just_expired)).await.unwrap(), StatusCode::OK).await;
    // An API key is not a subject token.
    let service = app.key(Role::Service).await;
    problem(call(Some(service)).await.unwrap(), StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn concurrent_toggles_end_in_the_last_recorded_state_and_the_chain_verifies() {
    let (app, admin) = app_with_purposes().await;
    let service = app.key(Role::Service).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = app.client.clone();
        let url = app.url("/v1/me/consents/analytics");
        tasks.push(tokio::spawn(async move {
            client
                .put(url)
                .bearer_auth(subject_token("busy"))
                .json(&json!({"granted": i % 2 == 0, "policy_version": 2}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_ledger_holds(&app, &service, &admin, "busy").await;
}

/// The person's events are numbered without gaps, `analytics` is in the state its last event
/// left, and the chain verifies.
async fn assert_ledger_holds(app: &TestApp, service: &str, admin: &str, who: &str) {
    let items = history(app, who).await;
    assert!(!items.is_empty());
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=items.len() as i64).rev().collect::<Vec<_>>());
    let last = items.iter().find(|e| e["purpose"] == "analytics").unwrap();
    let expected = match last["action"].as_str() {
        Some("grant") => "granted",
        Some("withdraw") => "withdrawn",
        _ => "denied",
    };
    let c = check(app, service, who, "analytics").await;
    assert_eq!(c["status"], expected, "the state follows the last event");
    let verify = app
        .get(&format!("/v1/admin/subjects/{who}/consents/verify"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    let verify = json(verify, StatusCode::OK).await;
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["checked"], items.len());
}

/// Decisions arriving together share a commit; one that is refused after its person was
/// created (an unknown policy version) or that breaks a rule rolls back alone, and everything
/// else is recorded in order with chains that verify.
#[tokio::test]
async fn decisions_committed_together_fail_alone_and_keep_every_chain() {
    let (app, admin) = app_with_purposes().await;
    let service = app.key(Role::Service).await;
    let report = |i: usize| {
        let (who, body) = match i % 4 {
            0 => (
                format!("newcomer-{i}"),
                json!({"decisions": [{"purpose": "analytics", "granted": true}],
                       "policy_version": 99, "channel": "web"}),
            ),
            1 => (
                format!("steady-{}", i % 3),
                json!({"decisions": [{"purpose": "service", "granted": false}],
                       "policy_version": 2, "channel": "web"}),
            ),
            _ => (
                format!("steady-{}", i % 3),
                json!({"decisions": [{"purpose": "analytics", "granted": !i.is_multiple_of(3)},
                                     {"purpose": "marketing_email", "granted": true}],
                       "policy_version": 2, "channel": "web"}),
            ),
        };
        app.post(&format!("/v1/subjects/{who}/consents"))
            .bearer_auth(&service)
            .json(&body)
            .send()
    };
    let answers = futures_util::future::join_all((0..48).map(report)).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        match i % 4 {
            0 => {
                let p = problem(answer, StatusCode::UNPROCESSABLE_ENTITY).await;
                assert_eq!(p["reason"], "policy_not_published");
            }
            1 => {
                let p = problem(answer, StatusCode::CONFLICT).await;
                assert_eq!(p["reason"], "required_purpose");
            }
            _ => {
                json(answer, StatusCode::OK).await;
            }
        }
    }
    for i in (0..48).step_by(4) {
        let newcomer = subject::find(app.state.db.conn(), &format!("newcomer-{i}"))
            .await
            .unwrap();
        assert!(
            newcomer.is_none(),
            "a refused decision leaves no person behind"
        );
    }
    for n in 0..3 {
        assert_ledger_holds(&app, &service, &admin, &format!("steady-{n}")).await;
    }
}

#[tokio::test]
async fn a_tampered_or_removed_event_is_detected() {
    let (app, _) = app_with_purposes().await;
    for granted in [true, false, true] {
        json(
            put_consent(&app, "t-1", "analytics", granted).await,
            StatusCode::OK,
        )
        .await;
    }
    let verify = || {
        app.get("/v1/me/consents/verify")
            .bearer_auth(subject_token("t-1"))
            .send()
    };
    assert_eq!(
        json(verify().await.unwrap(), StatusCode::OK).await["ok"],
        true
    );

    events::Entity::update_many()
        .col_expr(events::Column::Channel, Expr::value("forged"))
        .filter(events::Column::Seq.eq(2))
        .exec(app.state.db.conn())
        .await
        .unwrap();
    let report = json(verify().await.unwrap(), StatusCode::OK).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_broken_seq"], 2);

    events::Entity::update_many()
        .col_expr(events::Column::Channel, Expr::value("portal"))
        .filter(events::Column::Seq.eq(2))
        .exec(app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(
        json(verify().await.unwrap(), StatusCode::OK).await["ok"],
        true
    );
    events::Entity::delete_many()
        .filter(events::Column::Seq.eq(3))
        .exec(app.state.db.conn())
        .await
        .unwrap();
    let report = json(verify().await.unwrap(), StatusCode::OK).await;
    assert_eq!(report["ok"], false, "removing the newest event shows too");
    assert_eq!(report["first_broken_seq"], 3);
}

#[tokio::test]
async fn batch_checks_answer_each_pair_in_order_up_to_a_thousand() {
    let (app, _) = app_with_purposes().await;
    let service = app.key(Role::Service).await;
    json(
        put_consent(&app, "b-1", "analytics", true).await,
        StatusCode::OK,
    )
    .await;
    let resp = app
        .post("/v1/consents/check")
        .bearer_auth(&service)
        .json(&json!({"checks": [
            {"subject": "b-1", "purpose": "analytics"},
            {"subject": "b-1", "purpose": "marketing_email"},
            {"subject": "nobody", "purpose": "analytics"},
            {"subject": "b-1", "purpose": "service"},
            {"subject": "b-1", "purpose": "nothing"},
            {"subject": "b-1", "purpose": "analytics"}
        ]}))
        .send()
        .await
        .unwrap();
    let body = json(resp, StatusCode::OK).await;
    let got: Vec<(bool, &str)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["allowed"].as_bool().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (true, "consent_granted"),
            (false, "no_consent"),
            (false, "no_consent"),
            (true, "not_consent_based"),
            (false, "unknown_purpose"),
            (true, "consent_granted")
        ]
    );
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"subject": format!("s{i}"), "purpose": "analytics"}))
        .collect();
    let resp = app
        .post("/v1/consents/check")
        .bearer_auth(&service)
        .json(&json!({"checks": too_many}))
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
}

/// Single checks the cache cannot answer, arriving at once, each get their own answer, the one
/// the batch endpoint gives for the same pair: on SQLite each read on the thread serving it, on
/// PostgreSQL read together, in fewer queries than checks.
#[tokio::test]
async fn single_checks_arriving_at_once_each_get_their_own_answer() {
    let (app, _) = app_with_purposes().await;
    let service = app.key(Role::Service).await;
    // Of t-0..t-19 on analytics: every fourth granted then withdrawn, the other even ones
    // granted, the odd ones refused; t-20..t-24 never met.
    for i in 0..20_usize {
        let who = format!("t-{i}");
        json(
            put_consent(&app, &who, "analytics", i.is_multiple_of(2)).await,
            StatusCode::OK,
        )
        .await;
        if i.is_multiple_of(4) {
            json(
                put_consent(&app, &who, "analytics", false).await,
                StatusCode::OK,
            )
            .await;
        }
    }
    let expected = |i: usize, purpose: &str| match purpose {
        "nothing" => "unknown_purpose",
        "service" => "not_consent_based",
        "analytics" if i < 20 && i.is_multiple_of(4) => "withdrawn",
        "analytics" if i < 20 && i.is_multiple_of(2) => "consent_granted",
        "analytics" if i < 20 => "denied",
        _ => "no_consent",
    };
    let pairs: Vec<(usize, &str)> = (0..25)
        .flat_map(|i| {
            ["analytics", "marketing_email", "service", "nothing"].map(move |purpose| (i, purpose))
        })
        .collect();

    let (queries_before, read_before) = app.state.checks.reads();
    let answers = join_all(pairs.iter().map(|(i, purpose)| {
        let (app, service) = (&app, &service);
        async move { check(app, service, &format!("t-{i}"), purpose).await }
    }))
    .await;
    let (queries, read) = app.state.checks.reads();
    let (queries, read) = (queries - queries_before, read - read_before);
    assert_eq!(read, 100, "every check was read from the database");
    match app.state.db.kind() {
        DatabaseKind::Sqlite => assert_eq!(queries, read),
        DatabaseKind::Postgres => {
            assert!(queries < read, "100 checks at once took {queries} queries")
        }
    }

    let batch = app
        .post("/v1/consents/check")
        .bearer_auth(&service)
        .json(&json!({"checks": pairs
            .iter()
            .map(|(i, purpose)| json!({"subject": format!("t-{i}"), "purpose": purpose}))
            .collect::<Vec<_>>()}))
        .send()
        .await
        .unwrap();
    let batch = json(batch, StatusCode::OK).await;
    for (((i, purpose), single), batched) in pairs
        .iter()
        .zip(&answers)
        .zip(batch["results"].as_array().unwrap())
    {
        assert_eq!(single["reason"], expected(*i, purpose), "t-{i} {purpose}");
        for field in ["allowed", "reason", "status", "policy_version"] {
            assert_eq!(single[field], batched[field], "t-{i} {purpose} {field}");
        }
    }
}

#[tokio::test]
async fn a_receipt_names_the_controller_purpose_policy_and_how_to_withdraw() {
    let (app, _) = app_with_purposes().await;
    let granted = app
        .request(reqwest::Method::PUT, "/v1/me/consents/cloud_training")
        .bearer_auth(subject_token("r-1"))
        .json(&json!({"granted": true, "policy_version": 2, "language": "zh-CN"}))
        .send()
        .await
        .unwrap();
    let granted = json(granted, StatusCode::OK).await;
    let event_id = granted["event_id"].as_str().unwrap();
    let resp = app
        .get(&format!("/v1/me/consents/receipts/{event_id}"))
        .bearer_auth(subject_token("r-1"))
        .send()
        .await
        .unwrap();
    let receipt = json(resp, StatusCode::OK).await;
    assert_eq!(receipt["receipt_id"], event_id);
    assert_eq!(receipt["controller"]["name"], "Example Controller");
    assert_eq!(receipt["purpose"]["key"], "cloud_training");
    assert_eq!(receipt["purpose"]["title"], "目的 cloud_training");
    assert_eq!(receipt["purpose"]["legal_basis"], "consent");
    assert_eq!(
        receipt["purpose"]["separate_consent_reason"],
        "sensitive_data"
    );
    assert_eq!(receipt["purpose"]["recipients"][0]["country"], "US");
    assert_eq!(receipt["purpose"]["retention_period"], "P1Y");
    assert_eq!(receipt["policy"]["version"], 2);
    assert_eq!(receipt["policy"]["sha256"].as_str().unwrap().len(), 64);
    assert!(
        receipt["withdrawal_method"]
            .as_str()
            .unwrap()
            .contains("granted")
    );

    // Nobody else can read it.
    let other = app
        .get(&format!("/v1/me/consents/receipts/{event_id}"))
        .bearer_auth(subject_token("r-2"))
        .send()
        .await
        .unwrap();
    problem(other, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn stats_count_current_consents_per_purpose_and_version() {
    let (app, admin) = app_with_purposes().await;
    for who in ["s-1", "s-2", "s-3"] {
        json(
            put_consent(&app, who, "analytics", true).await,
            StatusCode::OK,
        )
        .await;
    }
    json(
        put_consent(&app, "s-3", "analytics", false).await,
        StatusCode::OK,
    )
    .await;
    let resp = app
        .get("/v1/admin/consents/stats")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let stats = json(resp, StatusCode::OK).await;
    let count = |status: &str| {
        stats
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["purpose"] == "analytics" && l["status"] == status)
            .map(|l| l["count"].as_i64().unwrap())
    };
    assert_eq!(count("granted"), Some(2));
    assert_eq!(count("withdrawn"), Some(1));
}

/// The ledger is proof: a commit is durable before it is answered, on either database.
#[tokio::test]
async fn commits_reach_the_disk_before_they_are_answered() {
    use consentry::config::DatabaseKind;
    use sea_orm::{ConnectionTrait, Statement};
    let app = crate::support::spawn_app().await;
    let conn = app.state.db.conn();
    let backend = conn.get_database_backend();
    let (query, expected) = match app.state.db.kind() {
        DatabaseKind::Sqlite => ("PRAGMA synchronous", "2"),
        DatabaseKind::Postgres => ("SHOW synchronous_commit", "on"),
    };
    let row = conn
        .query_one_raw(Statement::from_string(backend, query))
        .await
        .unwrap()
        .unwrap();
    let value = row
        .try_get_by_index::<i32>(0)
        .map(|v| v.to_string())
        .or_else(|_| row.try_get_by_index::<String>(0))
        .unwrap();
    assert_eq!(value, expected, "{query}");
}

/// Makes the database itself refuse consent events on `channel`, as a constraint would.
async fn refuse_channel(app: &TestApp, channel: &str) {
    let conn = app.state.db.conn();
    let statements = match app.state.db.kind() {
        DatabaseKind::Sqlite => vec![format!(
            "CREATE TRIGGER refuse_channel BEFORE INSERT ON consent_events \
             WHEN NEW.channel = '{channel}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )],
        DatabaseKind::Postgres => vec![
            format!(
                "CREATE FUNCTION refuse_channel() RETURNS trigger AS $$ BEGIN \
                 IF NEW.channel = '{channel}' THEN RAISE EXCEPTION 'refused'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
            "CREATE TRIGGER refuse_channel BEFORE INSERT ON consent_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_channel()"
                .to_string(),
        ],
    };
    for sql in statements {
        conn.execute_unprepared(&sql).await.unwrap();
    }
}

/// Decisions handed to the shared commit together are decided as one set: a person's requests
/// in one batch follow one another in their chain, withdrawals are queued for the main app, and
/// when the database refuses the set, each request is recorded alone and only the refused one
/// fails.
#[tokio::test]
async fn a_set_of_decisions_keeps_each_persons_order_and_a_refused_one_fails_alone() {
    let (app, admin) = app_with_purposes().await;
    let service = app.key(Role::Service).await;
    refuse_channel(&app, "refused").await;
    let request = |who: String, purpose: &str, granted: bool, channel: &str| RecordRequest {
        external_id: who,
        decisions: vec![Decision {
            purpose: purpose.to_string(),
            granted,
        }],
        policy: PolicyRef {
            key: consentry::policy::DEFAULT_KEY.into(),
            version: 2,
            id: None,
        },
        actor: ConsentActor::MainApp,
        channel: channel.to_string(),
        language: None,
        jurisdiction: None,
        user_agent: None,
        ip: None,
        occurred_at: None,
        reason: None,
        audited_by: None,
    };
    let decisions = app.state.decisions.clone();
    let (_, items_before) = decisions.counts();
    let first: Vec<RecordRequest> = (0..10)
        .flat_map(|n| {
            let who = format!("set-{n}");
            [
                request(who.clone(), "analytics", true, "web"),
                request(who.clone(), "analytics", false, "web"),
                request(who, "marketing_email", true, "web"),
            ]
        })
        .collect();
    let answers = join_all(first.into_iter().map(|r| decisions.submit(r))).await;
    for answer in answers {
        let recorded = answer.unwrap().unwrap();
        assert!(
            recorded[0].event_id.is_some(),
            "each decision changed something"
        );
    }
    let (commits, items) = decisions.counts();
    assert_eq!(items - items_before, 30);
    assert!(commits < 30, "the decisions shared commits");
    assert_eq!(decisions.batch().refused(), 0, "the set was written as one");
    for n in 0..10 {
        let who = format!("set-{n}");
        let actions: Vec<(String, String)> = history(&app, &who)
            .await
            .iter()
            .rev()
            .map(|e| (e["purpose"].to_string(), e["action"].to_string()))
            .collect();
        assert_eq!(
            actions,
            [
                ("\"analytics\"", "\"grant\""),
                ("\"analytics\"", "\"withdraw\""),
                ("\"marketing_email\"", "\"grant\"")
            ]
            .map(|(p, a)| (p.to_string(), a.to_string())),
            "{who}'s requests follow one another"
        );
        assert_ledger_holds(&app, &service, &admin, &who).await;
    }
    let withdrawals = outbox::entity::Entity::find()
        .filter(outbox::entity::Column::Topic.eq("consent.withdrawn"))
        .count(app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(withdrawals, 10, "one webhook per withdrawal");

    // The database refuses one request of the next set.
    let second: Vec<RecordRequest> = (0..10)
        .map(|n| {
            let channel = if n == 4 { "refused" } else { "web" };
            request(format!("set-{n}"), "analytics", true, channel)
        })
        .chain([request("set-new".into(), "analytics", true, "web")])
        .collect();
    let answers = join_all(second.into_iter().map(|r| decisions.submit(r))).await;
    for (n, answer) in answers.into_iter().enumerate() {
        assert_eq!(
            matches!(answer, Ok(Ok(_))),
            n != 4,
            "request {n}: {answer:?}"
        );
    }
    assert_eq!(decisions.batch().refused(), 1);
    for n in 0..10 {
        let c = check(&app, &service, &format!("set-{n}"), "analytics").await;
        let expected = if n == 4 { "withdrawn" } else { "granted" };
        assert_eq!(c["status"], expected, "set-{n}");
        assert_ledger_holds(&app, &service, &admin, &format!("set-{n}")).await;
    }
    assert_eq!(
        check(&app, &service, "set-new", "analytics").await["status"],
        "granted"
    );
}
