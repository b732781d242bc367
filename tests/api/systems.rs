//! Requests reaching every system that holds the data: the registry, one signed job per
//! system, each system's answer on its own path, completion once every required system has
//! confirmed, a failed system retried alone, an export assembled from every part, a scoped
//! erasure reaching only the systems that hold its categories, and the single job to the main
//! app when no system is registered.

use std::io::Read;

use chrono::Utc;
use consentry::{auth::Role, request::model};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::support::{
    Fixture, WebhookReceiver, fixture, fixture_with, json, problem, purpose_body, staff_browser,
    webhook_headers,
};

const IMAGES_SECRET: &str = "whsec_aW1hZ2VzLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
const TRAINING_SECRET: &str = "whsec_dHJhaW5pbmctc2VjcmV0LTAxMjM0NTY3ODlhYmNk";
const MAILING_SECRET: &str = "whsec_bWFpbGluZy1zZWNyZXQtMDEyMzQ1Njc4OWFiY2Rl";

/// A registered system and the endpoint that receives its jobs.
struct Remote {
    key: &'static str,
    secret: &'static str,
    receiver: WebhookReceiver,
}

impl Remote {
    /// The jobs this system received for `request_id`, each checked against its own secret.
    fn jobs_for(&self, request_id: &str) -> Vec<Value> {
        self.receiver
            .received()
            .into_iter()
            .filter(|h| h.body["data"]["request_id"] == request_id)
            .map(|h| {
                assert!(
                    h.signature_valid,
                    "{}: signed with its own secret",
                    self.key
                );
                h.body["data"].clone()
            })
            .collect()
    }
}

/// Registers a system (as an admin) whose jobs go to a fresh receiver.
async fn register(
    f: &Fixture,
    key: &'static str,
    secret: &'static str,
    types: &[&str],
    categories: &[&str],
    required: bool,
) -> Remote {
    let receiver = WebhookReceiver::start_signed_by(secret, 0).await;
    let admin = f.app.key(Role::Admin).await;
    let created = json(
        f.app
            .post("/v1/admin/systems")
            .bearer_auth(&admin)
            .json(&json!({
                "key": key,
                "name": format!("The {key} system"),
                "endpoint": receiver.url,
                "secret": secret,
                "request_types": types,
                "categories": categories,
                "allowance_days": 5,
                "required": required,
            }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert!(
        created.get("secret").is_none(),
        "a given secret is not echoed"
    );
    assert_eq!(created["has_secret"], true);
    Remote {
        key,
        secret,
        receiver,
    }
}

/// A system's signed report on its own job.
async fn report(
    f: &Fixture,
    remote: &Remote,
    secret: &str,
    job: &str,
    body: Value,
) -> reqwest::Response {
    let bytes = serde_json::to_vec(&body).unwrap();
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    f.app
        .post(&format!("/v1/systems/{}/fulfilments/{job}", remote.key))
        .headers(webhook_headers(secret, &id, Utc::now().timestamp(), &bytes))
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn jobs(f: &Fixture, request_id: &str) -> Vec<Value> {
    f.app
        .read(
            &format!("/v1/admin/requests/{request_id}/jobs"),
            &f.reviewer,
        )
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn job_of<'a>(jobs: &'a [Value], system: &str) -> &'a Value {
    jobs.iter()
        .find(|j| j["system"] == system)
        .unwrap_or_else(|| panic!("a job for {system}: {jobs:?}"))
}

/// A person with an address, an erasure filed and approved, the jobs delivered.
async fn approved(f: &Fixture, who: &str, body: Value) -> String {
    f.app
        .set_subject(
            who,
            Some(&format!("{who}@example.com")),
            Some("en"),
            Some("FR"),
        )
        .await;
    let filed = json(f.file(who, body).await, StatusCode::CREATED).await;
    let id = filed["id"].as_str().unwrap().to_string();
    json(
        f.decide(&f.reviewer, &id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    id
}

async fn status(f: &Fixture, id: &str) -> String {
    f.admin_request(id).await["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_three_system_erasure_completes_only_after_all_three_confirm() {
    let f = fixture().await;
    let images = register(&f, "images", IMAGES_SECRET, &["erase"], &["photos"], true).await;
    let training = register(
        &f,
        "training",
        TRAINING_SECRET,
        &["erase"],
        &["training_data"],
        true,
    )
    .await;
    let mailing = register(
        &f,
        "mailing",
        MAILING_SECRET,
        &["erase"],
        &["contact"],
        true,
    )
    .await;
    let id = approved(&f, "gus", json!({"type": "erase"})).await;

    // One job each, signed with each system's own secret; the main app gets none of its own.
    let mut keys = Vec::new();
    for remote in [&images, &training, &mailing] {
        let sent = remote.jobs_for(&id);
        assert_eq!(sent.len(), 1, "{}", remote.key);
        assert_eq!(sent[0]["system"], remote.key);
        assert_eq!(sent[0]["type"], "erase");
        assert_eq!(sent[0]["external_id"], "gus");
        assert_eq!(sent[0]["idempotency_key"], sent[0]["fulfilment_id"]);
        assert!(sent[0]["due_at"].is_string());
        keys.push(sent[0]["fulfilment_id"].as_str().unwrap().to_string());
    }
    assert!(
        f.main_app
            .received()
            .iter()
            .all(|h| h.body["data"]["request_id"] != id.as_str()),
        "with systems registered, the registry decides who is reached"
    );
    let listed = jobs(&f, &id).await;
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|j| j["status"] == "pending" && j["overdue"] == false)
    );

    // Images acknowledges, then confirms with its evidence, on its own signed path.
    let ack = report(
        &f,
        &images,
        IMAGES_SECRET,
        &keys[0],
        json!({"status": "acknowledged", "evidence": {"reference": "del-17"}}),
    )
    .await;
    json(ack, StatusCode::OK).await;
    assert_eq!(
        job_of(&jobs(&f, &id).await, "images")["status"],
        "acknowledged"
    );
    let done = json(
        report(
            &f,
            &images,
            IMAGES_SECRET,
            &keys[0],
            json!({"status": "done", "evidence": {"counts": {"photos": 3}, "reference": "del-17"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        done["status"], "fulfilling",
        "two systems have not confirmed"
    );

    // A system cannot answer for another's job, nor sign with another's secret.
    problem(
        report(
            &f,
            &images,
            IMAGES_SECRET,
            &keys[1],
            json!({"status": "done"}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        report(
            &f,
            &mailing,
            IMAGES_SECRET,
            &keys[2],
            json!({"status": "done"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Training answers through the main app's service key; a repeat changes nothing.
    json(
        f.complete_job(
            &keys[1],
            json!({"evidence": {"counts": {"training_data": 12}}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let repeated = json(f.complete_job(&keys[1], json!({})).await, StatusCode::OK).await;
    assert_eq!(repeated["status"], "fulfilling");
    assert_eq!(status(&f, &id).await, "fulfilling");

    let last = json(
        report(
            &f,
            &mailing,
            MAILING_SECRET,
            &keys[2],
            json!({"status": "done", "note": "unsubscribed and deleted"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(last["status"], "completed");
    assert_eq!(last["outcome"], "completed");

    // The proof: each system's confirmation in the request's history.
    let detail = f.admin_request(&id).await;
    let history: Vec<String> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["note"].as_str().map(str::to_string))
        .collect();
    for line in [
        "The images system confirmed (photos: 3), reference del-17",
        "The training system confirmed (training_data: 12)",
        "The mailing system confirmed: unsubscribed and deleted",
    ] {
        assert!(history.iter().any(|h| h == line), "{line} in {history:?}");
    }
    let listed = jobs(&f, &id).await;
    assert!(listed.iter().all(|j| j["status"] == "done"), "{listed:?}");
    assert_eq!(job_of(&listed, "images")["evidence"]["counts"]["photos"], 3);

    f.drain().await;
    let mails = f.mail_to("gus@example.com", 2).await;
    let completed = mails
        .iter()
        .find(|m| m.text.contains("is complete"))
        .unwrap();
    for name in [
        "The images system",
        "The training system",
        "The mailing system",
    ] {
        assert!(
            completed.text.contains(&format!("- {name}: Done")),
            "{}",
            completed.text
        );
    }
}

#[tokio::test]
async fn a_failing_system_is_retried_alone_while_the_others_proceed() {
    let f = fixture_with(|c| c.outbox.max_attempts = 2).await;
    let images = register(&f, "images", IMAGES_SECRET, &["erase"], &["photos"], true).await;
    let training = register(
        &f,
        "training",
        TRAINING_SECRET,
        &["erase"],
        &["training_data"],
        true,
    )
    .await;
    training.receiver.fail_next(100);
    let id = approved(&f, "ida", json!({"type": "erase"})).await;
    let later = Utc::now() + chrono::TimeDelta::days(1);
    f.app.state.dispatcher.drain_once(later).await.unwrap();
    assert_eq!(
        training.jobs_for(&id).len(),
        2,
        "two attempts, then it gave up"
    );
    let listed = jobs(&f, &id).await;
    assert_eq!(job_of(&listed, "training")["status"], "failed");
    assert_eq!(job_of(&listed, "images")["status"], "pending");

    // The other system goes on.
    let image_job = images.jobs_for(&id)[0]["fulfilment_id"]
        .as_str()
        .unwrap()
        .to_string();
    json(f.complete_job(&image_job, json!({})).await, StatusCode::OK).await;
    assert_eq!(status(&f, &id).await, "fulfilling");

    // Retried alone: the undelivered job goes again under its webhook-id; images gets nothing.
    training.receiver.fail_next(0);
    let training_job = job_of(&listed, "training")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let retry = |job: String| {
        let f = &f;
        async move {
            f.app
                .post(&format!("/v1/admin/fulfilments/{job}/retry"))
                .bearer_auth(&f.reviewer)
                .send()
                .await
                .unwrap()
        }
    };
    json(retry(training_job.clone()).await, StatusCode::OK).await;
    f.drain().await;
    let sent = training.receiver.received();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[2].id, sent[0].id,
        "the same message, delivered at last"
    );
    assert_eq!(
        images.jobs_for(&id).len(),
        1,
        "the others are not sent again"
    );
    assert_eq!(
        job_of(&jobs(&f, &id).await, "training")["status"],
        "pending"
    );

    // The system fails at its end: sent anew, same idempotency key, new webhook-id.
    json(
        f.app
            .post(&format!("/v1/fulfilments/{training_job}/fail"))
            .bearer_auth(&f.service)
            .json(&json!({"note": "the cluster was being upgraded"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let failed = job_of(&jobs(&f, &id).await, "training").clone();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["note"], "the cluster was being upgraded");
    json(retry(training_job.clone()).await, StatusCode::OK).await;
    f.drain().await;
    let sent = training.jobs_for(&id);
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[3]["round"], 2);
    assert_eq!(sent[3]["idempotency_key"], sent[0]["idempotency_key"]);
    let ids: Vec<String> = training
        .receiver
        .received()
        .iter()
        .map(|h| h.id.clone())
        .collect();
    assert_ne!(
        ids[3], ids[0],
        "a new message for the receiver's de-duplication"
    );
    assert_eq!(images.jobs_for(&id).len(), 1);

    let done = json(
        report(
            &f,
            &training,
            TRAINING_SECRET,
            &training_job,
            json!({"status": "done"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "completed");
    // Nothing left to retry.
    let settled = problem(retry(training_job).await, StatusCode::CONFLICT).await;
    assert_eq!(settled["reason"], "illegal_transition");
}

#[tokio::test]
async fn an_export_is_assembled_from_every_systems_part() {
    let f = fixture().await;
    let remotes = [
        register(&f, "images", IMAGES_SECRET, &["export"], &["photos"], true).await,
        register(
            &f,
            "training",
            TRAINING_SECRET,
            &["export"],
            &["training_data"],
            true,
        )
        .await,
        register(
            &f,
            "mailing",
            MAILING_SECRET,
            &["export"],
            &["contact"],
            true,
        )
        .await,
    ];
    let id = approved(&f, "eve", json!({"type": "export"})).await;
    for remote in &remotes {
        let job = remote.jobs_for(&id)[0]["fulfilment_id"]
            .as_str()
            .unwrap()
            .to_string();
        json(
            report(
                &f,
                remote,
                remote.secret,
                &job,
                json!({"status": "done", "data": {"held_by": remote.key, "records": [1, 2]}}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    assert_eq!(status(&f, &id).await, "completed");
    let parts = model::fulfilments::Entity::find()
        .filter(model::fulfilments::Column::RequestId.eq(&id))
        .all(f.app.state.db.conn())
        .await
        .unwrap();
    assert!(
        parts.iter().all(|p| p.part.is_none()),
        "the parts left the database with the package"
    );

    f.drain().await;
    let mails = f.mail_to("eve@example.com", 2).await;
    let ready = mails.iter().find(|m| m.text.contains("token=")).unwrap();
    let bytes = f.download("eve", &id, ready).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    for remote in &remotes {
        let mut text = String::new();
        zip.by_name(&format!("systems/{}/data.json", remote.key))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let data: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(data["held_by"], remote.key);
    }
    let mut doc = String::new();
    zip.by_name("package.json")
        .unwrap()
        .read_to_string(&mut doc)
        .unwrap();
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["systems"]["images"]["folder"], "systems/images/");
    assert_eq!(doc["systems"]["training"]["name"], "The training system");
}

#[tokio::test]
async fn a_scoped_erasure_reaches_only_the_systems_holding_its_categories() {
    let f = fixture().await;
    let images = register(&f, "images", IMAGES_SECRET, &["erase"], &["photos"], true).await;
    let training = register(
        &f,
        "training",
        TRAINING_SECRET,
        &["erase"],
        &["training_data"],
        true,
    )
    .await;
    f.app
        .set_subject("kim", Some("kim@example.com"), Some("en"), Some("DE"))
        .await;
    json(
        f.app
            .send_event(
                "data.recorded",
                json!({"external_id": "kim", "item_ref": "img-1", "category": "photos"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let filed = json(
        f.file(
            "kim",
            json!({"type": "erase", "details": {"categories": ["photos"]}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap().to_string();
    json(
        f.decide(&f.reviewer, &id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let sent = images.jobs_for(&id);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["scope"]["categories"], json!(["photos"]));
    assert!(training.jobs_for(&id).is_empty(), "it holds no photos");
    assert_eq!(jobs(&f, &id).await.len(), 1);
    let job = sent[0]["fulfilment_id"].as_str().unwrap().to_string();
    let done = json(
        f.complete_job(&job, json!({"evidence": {"counts": {"photos": 1}}}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "completed");
}

#[tokio::test]
async fn a_reviewer_finds_a_system_not_applicable_and_optional_systems_do_not_hold_it_up() {
    let f = fixture().await;
    let images = register(&f, "images", IMAGES_SECRET, &["erase"], &["photos"], true).await;
    let _training = register(
        &f,
        "training",
        TRAINING_SECRET,
        &["erase"],
        &["training_data"],
        true,
    )
    .await;
    let _mailing = register(
        &f,
        "mailing",
        MAILING_SECRET,
        &["erase"],
        &["contact"],
        false,
    )
    .await;
    let id = approved(&f, "lea", json!({"type": "erase"})).await;
    let listed = jobs(&f, &id).await;
    assert_eq!(job_of(&listed, "mailing")["required"], false);
    let training_job = job_of(&listed, "training")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image_job = images.jobs_for(&id)[0]["fulfilment_id"]
        .as_str()
        .unwrap()
        .to_string();
    json(f.complete_job(&image_job, json!({})).await, StatusCode::OK).await;

    let mark = |reason: &'static str| {
        let (f, job) = (&f, training_job.clone());
        async move {
            f.app
                .post(&format!("/v1/admin/fulfilments/{job}/not-applicable"))
                .bearer_auth(&f.reviewer)
                .json(&json!({"reason": reason}))
                .send()
                .await
                .unwrap()
        }
    };
    // A reason is needed; nothing changes without one.
    problem(mark("").await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        job_of(&jobs(&f, &id).await, "training")["status"],
        "pending"
    );
    // A viewer may not decide.
    let viewer = f.app.key(Role::Viewer).await;
    problem(
        f.app
            .post(&format!(
                "/v1/admin/fulfilments/{training_job}/not-applicable"
            ))
            .bearer_auth(&viewer)
            .json(&json!({"reason": "never held anything"}))
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;

    let done = json(
        mark("the person never opted in to model training").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        done["status"], "completed",
        "the optional mailing system does not hold it up"
    );
    let listed = jobs(&f, &id).await;
    let training = job_of(&listed, "training");
    assert_eq!(training["status"], "not_applicable");
    assert_eq!(
        training["note"],
        "the person never opted in to model training"
    );
    assert!(
        training["decided_by"]
            .as_str()
            .unwrap()
            .starts_with("api_key:")
    );
    assert_eq!(job_of(&listed, "mailing")["status"], "pending");

    let audit = f
        .app
        .read("/v1/admin/audit?action=fulfilment.not_applicable", &viewer)
        .await;
    assert!(audit.to_string().contains("never opted in"), "{audit}");
}

#[tokio::test]
async fn the_registry_keeps_secrets_sealed_and_without_systems_the_main_app_gets_one_job() {
    let f = fixture().await;
    let admin = f.app.key(Role::Admin).await;
    let create = |body: Value| {
        let (f, admin) = (&f, admin.clone());
        async move {
            f.app
                .post("/v1/admin/systems")
                .bearer_auth(&admin)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // Bad input is refused, every field at once, and nothing is registered.
    let refused = problem(
        create(
            json!({"key": "Bad Key", "name": "x", "endpoint": "ftp://files",
                      "request_types": ["restrict"], "categories": [], "allowance_days": 0}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "key",
            "endpoint",
            "request_types",
            "categories",
            "allowance_days"
        ]
    );
    // Reviewers may not change the registry.
    problem(
        f.app
            .post("/v1/admin/systems")
            .bearer_auth(&f.reviewer)
            .json(
                &json!({"key": "cdn", "name": "CDN cache", "request_types": ["erase"],
                          "categories": ["photos"], "allowance_days": 2}),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;

    // A secret made for the system is shown once, and sealed at rest.
    let made = json(
        create(
            json!({"key": "cdn", "name": "CDN cache", "endpoint": "https://cdn.example/purge",
                      "request_types": ["erase"], "categories": ["photos"], "allowance_days": 2}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let secret = made["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let shown = f.app.read("/v1/admin/systems/cdn", &f.reviewer).await;
    assert!(shown.get("secret").is_none());
    assert_eq!(shown["has_secret"], true);
    let row = consentry::system::entity::Entity::find_by_id("cdn")
        .one(f.app.state.db.conn())
        .await
        .unwrap()
        .unwrap();
    let sealed = row.secret_sealed.unwrap();
    assert!(!sealed.contains(&secret[6..]), "not stored in clear");
    problem(
        create(
            json!({"key": "cdn", "name": "Again", "request_types": ["erase"],
                      "categories": ["photos"], "allowance_days": 2}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;

    // Retired, it gets no jobs: with no system in service the main app gets its single job.
    json(
        f.app
            .post("/v1/admin/systems/cdn/retire")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let id = approved(&f, "max", json!({"type": "erase"})).await;
    let job = f.job_for(&id);
    assert!(job.get("system").is_none(), "{job}");
    let listed = jobs(&f, &id).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("system").is_none());
    let done = json(
        f.complete_job(job["fulfilment_id"].as_str().unwrap(), json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "completed");

    let audit = f
        .app
        .read("/v1/admin/audit?target_type=data_system", &admin)
        .await
        .to_string();
    assert!(audit.contains("system.created") && audit.contains("system.retired"));
    assert!(
        !audit.contains(&secret[6..]),
        "the audit log never holds the secret"
    );
}

#[tokio::test]
async fn the_console_registers_systems_and_shows_each_requests_systems() {
    let f = fixture().await;
    let admin = staff_browser(&f.app, "sys-admin@example.com", Role::Admin).await;
    let form = admin.get("/console/systems/new").await;
    let bad = admin
        .submit(
            &form,
            "/console/systems",
            &[
                ("key", "images"),
                ("name", "Image storage"),
                ("categories", "photos"),
                ("allowance_days", "0"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad.shows("choose at least one request type");
    bad.shows("give a number of days from 1 to 60");
    let receiver = WebhookReceiver::start(0).await;
    let made = admin
        .submit(
            &form,
            "/console/systems",
            &[
                ("key", "images"),
                ("name", "Image storage"),
                ("endpoint", &receiver.url),
                ("type_erase", "1"),
                ("categories", "photos"),
                ("allowance_days", "3"),
                ("required", "1"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    made.shows("it is shown this once");
    assert!(made.body.contains("whsec_"));
    // Through the main app's URL, no secret of its own: straight back to the list.
    let via_main = admin
        .submit(
            &form,
            "/console/systems",
            &[
                ("key", "training"),
                ("name", "Training cluster"),
                ("type_erase", "1"),
                ("categories", "training_data"),
                ("allowance_days", "10"),
                ("required", "1"),
            ],
        )
        .await;
    assert_eq!(via_main.status, StatusCode::SEE_OTHER, "{}", via_main.body);
    let list = admin.get("/console/systems").await;
    list.shows("Image storage");
    list.shows("the main app&#x27;s webhook URL");
    let edit = admin.get("/console/systems/images/edit").await;
    assert!(
        !edit.body.contains("whsec_"),
        "the secret is never shown again"
    );

    // The register lists the systems per category.
    let key = f.app.key(Role::Admin).await;
    f.app
        .create_purposes(&key, &[purpose_body("tagging")])
        .await;
    let register = admin.get("/console/register").await;
    register.shows("<code>photos</code>: Image storage");

    // The request's page shows each system with its status; a reviewer acts on one.
    let id = approved(&f, "ola", json!({"type": "erase"})).await;
    let reviewer = staff_browser(&f.app, "sys-rev@example.com", Role::Reviewer).await;
    let page = reviewer.get(&format!("/console/requests/{id}")).await;
    page.shows("Image storage");
    page.shows("Training cluster");
    page.shows("Waiting for the system");
    page.shows("waiting for 2 of 2 systems");
    let listed = jobs(&f, &id).await;
    let training_job = job_of(&listed, "training")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image_job = job_of(&listed, "images")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = reviewer
        .submit(
            &page,
            &format!("/console/requests/{id}/jobs/{training_job}/not-applicable"),
            &[("reason", "")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    refused.shows("say why this system has nothing to do");
    let retried = reviewer
        .submit(
            &page,
            &format!("/console/requests/{id}/jobs/{image_job}/retry"),
            &[],
        )
        .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    let marked = reviewer
        .submit(
            &page,
            &format!("/console/requests/{id}/jobs/{training_job}/not-applicable"),
            &[("reason", "no training on this account")],
        )
        .await;
    assert_eq!(marked.status, StatusCode::SEE_OTHER, "{}", marked.body);
    json(
        f.complete_job(&image_job, json!({"evidence": {"counts": {"photos": 4}}}))
            .await,
        StatusCode::OK,
    )
    .await;
    let done = reviewer.get(&format!("/console/requests/{id}")).await;
    done.shows("Nothing to do there");
    done.shows("no training on this account");
    done.shows("<code>photos</code>: 4");
    assert!(!done.body.contains("/jobs/"), "nothing left to act on");
    // A viewer may not change the registry.
    let viewer = staff_browser(&f.app, "sys-view@example.com", Role::Viewer).await;
    assert_eq!(
        viewer.get("/console/systems/new").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_system_past_its_allowance_is_shown_counted_and_named_in_the_digest() {
    let f = fixture_with(|c| c.requests.digest_to = vec!["privacy-team@example.com".into()]).await;
    let _images = register(&f, "images", IMAGES_SECRET, &["erase"], &["photos"], true).await;
    let id = approved(&f, "pia", json!({"type": "erase"})).await;
    // Six days later, the five allowed have run out.
    model::fulfilments::Entity::update_many()
        .col_expr(
            model::fulfilments::Column::DueAt,
            sea_orm::prelude::Expr::value(Utc::now() - chrono::TimeDelta::days(1)),
        )
        .filter(model::fulfilments::Column::RequestId.eq(&id))
        .exec(f.app.state.db.conn())
        .await
        .unwrap();
    let listed = jobs(&f, &id).await;
    assert_eq!(job_of(&listed, "images")["overdue"], true);
    let metrics = f
        .app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("consentry_fulfilment_jobs_overdue{system=\"images\"} 1"),
        "{metrics}"
    );
    let mut tx = f.app.state.db.begin().await.unwrap();
    let queued =
        consentry::request::digest::queue(&mut tx, &f.app.state.config, Utc::now().date_naive())
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(queued, 1);
    f.drain().await;
    let digest = f.sink.wait_for_text("Systems past their allowance").await;
    assert!(
        digest.text.contains("- The images system: 1 job(s)"),
        "{}",
        digest.text
    );
}

/// Every system's report, each sent several times, all at once: the request completes once,
/// with one confirmation per system and one email (the last report sees the others' jobs done,
/// whichever commits first).
#[tokio::test]
async fn reports_of_every_system_arriving_together_complete_the_request_once() {
    let f = fixture_with(|c| c.rate_limit.per_minute = 100_000).await;
    let mut remotes = Vec::new();
    for (key, secret) in [
        ("images", IMAGES_SECRET),
        ("training", TRAINING_SECRET),
        ("mailing", MAILING_SECRET),
    ] {
        remotes.push(register(&f, key, secret, &["erase"], &["photos"], true).await);
    }
    let id = approved(&f, "quinn", json!({"type": "erase"})).await;
    let listed = jobs(&f, &id).await;
    let ids: Vec<String> = listed
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    let answers = futures_util::future::join_all(
        ids.iter()
            .flat_map(|job| std::iter::repeat_n(job, 8))
            .map(|job| f.complete_job(job, json!({}))),
    )
    .await;
    for answer in answers {
        assert_eq!(answer.status(), StatusCode::OK);
    }
    assert_eq!(status(&f, &id).await, "completed");
    let history = f.admin_request(&id).await["history"].clone();
    let confirmed = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["note"].as_str().is_some_and(|n| n.ends_with("confirmed")))
        .count();
    assert_eq!(confirmed, 3, "{history}");
    let completions = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["to_status"] == "completed")
        .count();
    assert_eq!(completions, 1);
    f.drain().await;
    let mails = f.mail_to("quinn@example.com", 2).await;
    assert_eq!(
        mails
            .iter()
            .filter(|m| m.text.contains("is complete"))
            .count(),
        1
    );
}

/// A system that must keep data (a legal hold) ends the erasure restricted, and the email says
/// which system kept what and why.
#[tokio::test]
async fn a_system_keeping_data_ends_the_erasure_restricted_and_the_email_says_where() {
    let f = fixture().await;
    let images = register(&f, "images", IMAGES_SECRET, &["erase"], &["photos"], true).await;
    let billing = register(
        &f,
        "billing",
        TRAINING_SECRET,
        &["erase"],
        &["invoices"],
        true,
    )
    .await;
    let id = approved(&f, "rae", json!({"type": "erase"})).await;
    let job = |remote: &Remote| {
        remote.jobs_for(&id)[0]["fulfilment_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    json(
        report(
            &f,
            &images,
            IMAGES_SECRET,
            &job(&images),
            json!({"status": "done"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // A restriction needs its reason.
    problem(
        report(
            &f,
            &billing,
            TRAINING_SECRET,
            &job(&billing),
            json!({"status": "done", "outcome": "restricted"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let done = json(
        report(
            &f,
            &billing,
            TRAINING_SECRET,
            &job(&billing),
            json!({"status": "done", "outcome": "restricted", "note": "invoices are kept ten years under tax law"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["outcome"], "restricted");
    let viewer = f.app.key(Role::Viewer).await;
    let person = f.app.read("/v1/admin/subjects/rae", &viewer).await;
    assert_eq!(
        person["profile"]["restricted"], true,
        "kept somewhere, so restricted here too: {person}"
    );
    f.drain().await;
    let mails = f.mail_to("rae@example.com", 2).await;
    let completed = mails
        .iter()
        .find(|m| m.text.contains("is complete"))
        .unwrap();
    assert!(
        completed.text.contains("- The images system: Done"),
        "{}",
        completed.text
    );
    assert!(
        completed.text.contains(
            "- The billing system: Kept, with processing restricted (invoices are kept ten years under tax law)"
        ),
        "{}",
        completed.text
    );
}
