//! What a client may repeat or race, sent many times at once (as a retrying load balancer or an
//! at-least-once queue does): each applies exactly once, as seen through the API and in the
//! emails that reach the SMTP server, and no copy is answered with a 5xx.

use chrono::{TimeDelta, Utc};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    age::{confirm, family_app, guardian_link, history, years_ago},
    support::{
        Fixture, TestApp, WEBHOOK_SECRET, code_in, event_body, fixture_with, json, problem,
        purpose_body, webhook_headers,
    },
};

/// Copies of each operation sent at once.
const COPIES: usize = 32;

/// Runs `COPIES` copies of a request at once and returns each answer's status and body,
/// failing on any 5xx.
async fn race<F, Fut>(send: F) -> Vec<(StatusCode, Value)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    let answers = join_all((0..COPIES).map(|_| async {
        let resp = send().await;
        let status = resp.status();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }))
    .await;
    for (status, body) in &answers {
        assert!(!status.is_server_error(), "{status}: {body}");
    }
    answers
}

/// How many answers had `status`.
fn count(answers: &[(StatusCode, Value)], status: StatusCode) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

/// A fixture whose public endpoints take every copy (the per-client limit is not under test).
async fn unlimited() -> Fixture {
    fixture_with(|c| c.rate_limit.per_minute = 100_000).await
}

/// Sends the same signed delivery (one `webhook-id`, one timestamp, one body) many times.
async fn deliver_copies(
    app: &TestApp,
    webhook_id: &str,
    body: Vec<u8>,
) -> Vec<(StatusCode, Value)> {
    let headers = webhook_headers(WEBHOOK_SECRET, webhook_id, Utc::now().timestamp(), &body);
    race(|| app.post_event_raw(headers.clone(), body.clone())).await
}

/// The requests of one type the reviewers' queue shows.
async fn queued(f: &Fixture, kind: &str) -> Value {
    f.app
        .read(&format!("/v1/admin/requests?type={kind}"), &f.reviewer)
        .await
}

#[tokio::test]
async fn one_event_id_delivered_many_times_at_once_is_applied_once() {
    let f = unlimited().await;
    let minor = event_body(
        "subject.upserted",
        json!({"external_id": "kid", "email": "kid@example.com", "jurisdiction": "DE",
               "birth_date": years_ago(10), "guardian_email": "parent@example.com"}),
    );
    let answers = deliver_copies(&f.app, "msg_minor_once", minor).await;
    assert_eq!(count(&answers, StatusCode::OK), COPIES, "{answers:?}");
    assert!(
        answers.iter().all(|(_, body)| *body == answers[0].1),
        "every copy gets the first answer"
    );
    assert_eq!(answers[0].1["result"]["guardian_requested"], true);
    f.drain().await;
    assert_eq!(
        f.sink
            .messages()
            .iter()
            .filter(|m| m.to.contains("parent@example.com"))
            .count(),
        1,
        "one guardian email"
    );

    let deleted = event_body("subject.deleted", json!({"external_id": "kid"}));
    let answers = deliver_copies(&f.app, "msg_deleted_once", deleted).await;
    assert_eq!(count(&answers, StatusCode::OK), COPIES, "{answers:?}");
    assert!(answers.iter().all(|(_, body)| *body == answers[0].1));
    let erasures = queued(&f, "erase").await;
    assert_eq!(erasures["total"], 1, "one erasure request: {erasures}");
    assert!(answers[0].1["result"]["duplicate_of"].is_null());
}

#[tokio::test]
async fn a_refused_event_is_not_remembered_and_an_overlong_id_changes_nothing() {
    let f = unlimited().await;
    // An unknown purpose: refused, so the id stays free for a corrected delivery.
    let bad = event_body(
        "consent.recorded",
        json!({"external_id": "ann", "policy_version": 2,
               "decisions": [{"purpose": "nope", "granted": true}]}),
    );
    let answers = deliver_copies(&f.app, "msg_fixed_later", bad).await;
    assert_eq!(
        count(&answers, StatusCode::UNPROCESSABLE_ENTITY),
        COPIES,
        "{answers:?}"
    );
    let fixed = event_body("subject.upserted", json!({"external_id": "ann"}));
    let headers = webhook_headers(
        WEBHOOK_SECRET,
        "msg_fixed_later",
        Utc::now().timestamp(),
        &fixed,
    );
    let applied = json(f.app.post_event_raw(headers, fixed).await, StatusCode::OK).await;
    assert_eq!(applied["type"], "subject.upserted");

    let long_id = "m".repeat(300);
    let body = event_body("subject.deleted", json!({"external_id": "ann"}));
    let headers = webhook_headers(WEBHOOK_SECRET, &long_id, Utc::now().timestamp(), &body);
    problem(
        f.app.post_event_raw(headers, body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(queued(&f, "erase").await["total"], 0, "nothing was applied");
}

#[tokio::test]
async fn one_guardian_link_submitted_many_times_at_once_records_once() {
    let (app, sink, _admin, _service) = family_app().await;
    let token = guardian_link(&app, &sink, "kid", "DE", 11, "parent@example.com").await;
    let decisions = json!([{"purpose": "photo_tagging", "granted": true},
                           {"purpose": "marketing_email", "granted": false}]);
    let answers = race(|| confirm(&app, &token, decisions.clone())).await;
    assert_eq!(count(&answers, StatusCode::OK), 1, "{answers:?}");
    assert_eq!(count(&answers, StatusCode::CONFLICT), COPIES - 1);
    assert_eq!(history(&app, "kid").await.len(), 2, "two decisions, once");
}

#[tokio::test]
async fn a_refused_guardian_decision_records_nothing_and_the_link_still_works() {
    let (app, sink, _admin, service) = family_app().await;
    let token = guardian_link(&app, &sink, "kid", "DE", 11, "parent@example.com").await;
    // `account` is necessary for the service: refusing it is refused.
    let refused = problem(
        confirm(
            &app,
            &token,
            json!([{"purpose": "photo_tagging", "granted": true},
                   {"purpose": "account", "granted": false}]),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["reason"], "required_purpose");
    assert!(
        refused["detail"].as_str().unwrap().contains("`account`"),
        "{refused}"
    );
    assert!(history(&app, "kid").await.is_empty(), "nothing recorded");
    let check = app
        .read("/v1/subjects/kid/consents/photo_tagging", &service)
        .await;
    assert_eq!(check["allowed"], false);

    json(
        confirm(
            &app,
            &token,
            json!([{"purpose": "photo_tagging", "granted": true}]),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(history(&app, "kid").await.len(), 1);
}

/// Files a request from the portal for a person with an address, and returns its id.
async fn filed(f: &Fixture, who: &str, body: Value) -> String {
    f.app
        .set_subject(
            who,
            Some(&format!("{who}@example.com")),
            Some("en"),
            Some("DE"),
        )
        .await;
    json(f.file(who, body).await, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The emails one person has received, by subject line.
fn subjects_to(f: &Fixture, who: &str) -> Vec<String> {
    f.sink
        .messages()
        .into_iter()
        .filter(|m| m.to.contains(&format!("{who}@example.com")))
        .map(|m| m.subject)
        .collect()
}

#[tokio::test]
async fn one_review_decision_sent_many_times_at_once_applies_once() {
    let f = unlimited().await;
    let admin = f.app.key(consentry::auth::Role::Admin).await;
    f.app
        .create_purposes(&admin, &[purpose_body("marketing_email")])
        .await;

    // Approving an objection: one withdrawal, one confirmation.
    let objection = filed(
        &f,
        "oli",
        json!({"type": "object", "details": {"purposes": ["marketing_email"]}}),
    )
    .await;
    f.grant("oli", "marketing_email").await;
    let answers = race(|| f.decide(&f.reviewer, &objection, "approve", json!({}))).await;
    assert_eq!(count(&answers, StatusCode::OK), 1, "{answers:?}");
    assert_eq!(count(&answers, StatusCode::CONFLICT), COPIES - 1);
    let withdrawals = history(&f.app, "oli")
        .await
        .into_iter()
        .filter(|e| e["action"] == "withdraw")
        .count();
    assert_eq!(withdrawals, 1);

    // Rejecting: one rejection email.
    let rejected = filed(&f, "rae", json!({"type": "access"})).await;
    let answers = race(|| {
        f.decide(
            &f.reviewer,
            &rejected,
            "reject",
            json!({"reason": "we hold no data about you"}),
        )
    })
    .await;
    assert_eq!(count(&answers, StatusCode::OK), 1, "{answers:?}");

    // Completing by hand: one completion email.
    let erasure = filed(&f, "eve", json!({"type": "erase"})).await;
    json(
        f.decide(&f.reviewer, &erasure, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    let answers = race(|| {
        f.decide(
            &f.reviewer,
            &erasure,
            "complete",
            json!({"outcome": "restricted", "note": "kept under a legal hold"}),
        )
    })
    .await;
    assert_eq!(count(&answers, StatusCode::OK), 1, "{answers:?}");

    f.drain().await;
    for who in ["oli", "rae", "eve"] {
        let mails = subjects_to(&f, who);
        assert_eq!(
            mails.len(),
            2,
            "{who}: received and one decision: {mails:?}"
        );
    }
}

#[tokio::test]
async fn one_fulfilment_report_sent_many_times_at_once_completes_once() {
    let f = unlimited().await;
    let id = filed(&f, "ann", json!({"type": "access"})).await;
    json(
        f.decide(&f.reviewer, &id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let job = f.job_for(&id)["fulfilment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let answers = race(|| f.complete_job(&job, json!({"data": {"photos": []}}))).await;
    assert_eq!(
        count(&answers, StatusCode::OK),
        COPIES,
        "a repeated report is answered with the request: {answers:?}"
    );
    assert!(answers.iter().all(|(_, r)| r["status"] == "completed"));
    f.drain().await;
    let mails = subjects_to(&f, "ann");
    assert_eq!(mails.len(), 2, "received and one export-ready: {mails:?}");
}

#[tokio::test]
async fn one_code_verified_many_times_at_once_verifies_once() {
    let f = unlimited().await;
    let filed = json(
        f.file_by_email(json!({"email": "mo@example.com", "type": "access", "jurisdiction": "FR"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    f.drain().await;
    let code = code_in(&f.mail_to("mo@example.com", 1).await[0]);
    let verify = |code: String| {
        let f = &f;
        async move {
            f.app
                .post(&format!("/v1/requests/{id}/verify"))
                .json(&json!({"code": code}))
                .send()
                .await
                .unwrap()
        }
    };
    let answers = race(|| verify(code.clone())).await;
    assert_eq!(count(&answers, StatusCode::OK), 1, "{answers:?}");
    assert_eq!(count(&answers, StatusCode::CONFLICT), COPIES - 1);
    f.drain().await;
    let mails = subjects_to(&f, "mo");
    assert_eq!(mails.len(), 2, "the code and one 'received': {mails:?}");
}

#[tokio::test]
async fn wrong_codes_sent_at_once_are_each_counted() {
    let f = unlimited().await;
    let filed = json(
        f.file_by_email(json!({"email": "max@example.com", "type": "erase"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    f.drain().await;
    let code = code_in(&f.mail_to("max@example.com", 1).await[0]);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let answers = race(|| async {
        f.app
            .post(&format!("/v1/requests/{id}/verify"))
            .json(&json!({"code": wrong}))
            .send()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(count(&answers, StatusCode::OK), 0);
    let right = f
        .app
        .post(&format!("/v1/requests/{id}/verify"))
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_ne!(
        right.status(),
        StatusCode::OK,
        "after the attempts ran out, even the right code is refused"
    );
}

#[tokio::test]
async fn one_purge_job_acknowledged_many_times_at_once_applies_once() {
    let f = unlimited().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "generated_images", "period": "P30D", "notify_after": true}),
    )
    .await;
    f.app
        .set_subject("ann", Some("ann@example.com"), Some("en"), None)
        .await;
    let created: chrono::DateTime<Utc> = "2026-03-01T10:00:00Z".parse().unwrap();
    f.record("ann", "img-1", "generated_images", created).await;
    f.run(created + TimeDelta::days(31), false).await;
    let jobs = f.jobs().await;
    let batch = jobs[0]["batch_id"].as_str().unwrap().to_string();
    let answers = race(|| f.acknowledge(&f.service, &batch)).await;
    assert_eq!(count(&answers, StatusCode::OK), COPIES, "{answers:?}");
    assert!(answers.iter().all(|(_, b)| b["status"] == "acknowledged"));
    f.drain().await;
    let mails = subjects_to(&f, "ann");
    assert_eq!(mails.len(), 1, "one 'purged' email: {mails:?}");
}

#[tokio::test]
async fn an_objection_to_a_necessary_purpose_is_refused_and_stays_with_the_reviewer() {
    let f = unlimited().await;
    let admin = f.app.key(consentry::auth::Role::Admin).await;
    let mut account = purpose_body("account");
    account["legal_basis"] = json!("contract");
    account["required"] = json!(true);
    f.app.create_purposes(&admin, &[account]).await;
    let id = filed(
        &f,
        "oli",
        json!({"type": "object", "details": {"purposes": ["account"]}}),
    )
    .await;
    f.grant("oli", "account").await;
    let refused = problem(
        f.decide(&f.reviewer, &id, "approve", json!({})).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["reason"], "required_purpose");
    let request = f.admin_request(&id).await;
    assert_eq!(
        request["status"], "verified",
        "it stays where the reviewer can act"
    );
    let notes: Vec<&str> = request["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("approval refused")),
        "{request}"
    );
    json(
        f.decide(
            &f.reviewer,
            &id,
            "reject",
            json!({"reason": "the account cannot run without it"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}
