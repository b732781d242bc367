//! Policy documents and purposes: import, the public reading rules, drafts and publication,
//! and the re-consent that a material version triggers.

use consentry::{
    actions::policies::{self as rollout, import as import_dir},
    audit::Actor,
    auth::Role,
    consent::model::consents,
    notify::outbox::entity as outbox,
    policy,
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::support::{
    TestApp, json, problem, purpose_body, repo_path, spawn_app, spawn_app_with, subject_token,
};

async fn get_json(app: &TestApp, path: &str) -> Value {
    json(app.get(path).send().await.unwrap(), StatusCode::OK).await
}

#[tokio::test]
async fn the_shipped_policies_are_served_by_jurisdiction_and_language() {
    let app = spawn_app().await;
    let doc = get_json(
        &app,
        "/v1/policies/privacy-policy?jurisdiction=CN&lang=zh-CN",
    )
    .await;
    assert_eq!(
        (doc["version"].clone(), doc["language"].clone()),
        (json!(2), json!("zh-CN"))
    );
    assert_eq!(doc["authoritative"], true);
    let doc = get_json(&app, "/v1/policies/privacy-policy?jurisdiction=CN&lang=en").await;
    assert_eq!(
        (doc["jurisdiction"].clone(), doc["authoritative"].clone()),
        (json!("CN"), json!(false))
    );
    let doc = get_json(&app, "/v1/policies/privacy-policy?jurisdiction=CN&lang=fr").await;
    assert_eq!(
        doc["language"], "zh-CN",
        "falls back to the authoritative language"
    );
    let doc = get_json(&app, "/v1/policies/privacy-policy?jurisdiction=DE&lang=de").await;
    assert_eq!(
        (doc["jurisdiction"].clone(), doc["language"].clone()),
        (json!("*"), json!("en"))
    );
    assert!(
        doc["body"]
            .as_str()
            .unwrap()
            .starts_with("# Lumora Privacy Policy")
    );

    let versions = get_json(&app, "/v1/policies/privacy-policy/versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 6);
    assert!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("body").is_none())
    );
    let v1 = get_json(
        &app,
        "/v1/policies/privacy-policy/versions/1?jurisdiction=CN",
    )
    .await;
    assert_eq!(
        (v1["version"].clone(), v1["language"].clone()),
        (json!(1), json!("zh-CN"))
    );

    let diff = get_json(&app, "/v1/policies/privacy-policy/diff?from=1&to=2").await;
    let inserted: Vec<&str> = diff["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["op"] == "insert")
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert!(
        inserted.iter().any(|l| l.contains("Northwind Cloud")),
        "{inserted:?}"
    );
    assert!(
        diff["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["op"] == "delete")
    );
    assert_eq!(
        (
            diff["from"]["version"].clone(),
            diff["to"]["version"].clone()
        ),
        (json!(1), json!(2))
    );

    problem(
        app.get("/v1/policies/nope").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.get("/v1/policies/privacy-policy/versions/9")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn import_is_idempotent_and_refuses_to_change_a_published_version() {
    let app = spawn_app().await;
    let (db, config) = (&app.state.db, &app.state.config);
    let again = import_dir(db, config, &repo_path("policies"), &Actor::Cli)
        .await
        .unwrap();
    assert_eq!((again.published.len(), again.unchanged), (0, 6));

    let changed = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_path("policies/privacy-policy.v2.en.md")).unwrap();
    std::fs::write(
        changed.path().join("v2.md"),
        text.replace("12 months", "24 months"),
    )
    .unwrap();
    let err = import_dir(db, config, changed.path(), &Actor::Cli)
        .await
        .unwrap_err();
    assert!(
        matches!(err, policy::PolicyError::Immutable { version: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("new version"));

    // A folder with one bad file imports nothing.
    let mixed = tempfile::tempdir().unwrap();
    std::fs::write(
        mixed.path().join("a.md"),
        text.replace("version = 2", "version = 3"),
    )
    .unwrap();
    std::fs::write(mixed.path().join("b.md"), "no front matter").unwrap();
    assert!(text.contains("version = 2"));
    assert!(
        import_dir(db, config, mixed.path(), &Actor::Cli)
            .await
            .is_err()
    );
    assert!(
        policy::of_version(db.conn(), "privacy-policy", 3, None, None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn drafts_are_edited_published_once_and_retired() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    let new_draft = json!({"key": "cookie-policy", "jurisdiction": "*", "language": "en",
                           "authoritative": true, "title": "Cookies", "body": "Version one.\n",
                           "effective_at": "2026-01-01T00:00:00Z"});
    let forbidden = app
        .post("/v1/admin/policies")
        .bearer_auth(&viewer)
        .json(&new_draft)
        .send()
        .await
        .unwrap();
    problem(forbidden, StatusCode::FORBIDDEN).await;
    let mut material_without_summary = new_draft.clone();
    material_without_summary["material"] = json!(true);
    let invalid = app
        .post("/v1/admin/policies")
        .bearer_auth(&admin)
        .json(&material_without_summary)
        .send()
        .await
        .unwrap();
    let p = problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "change_summary");
    // A body past the size that keeps a diff of two versions cheap is refused.
    let mut huge = new_draft.clone();
    huge["body"] = json!("a line of a very long policy\n".repeat(10_000));
    let refused = app
        .post("/v1/admin/policies")
        .bearer_auth(&admin)
        .json(&huge)
        .send()
        .await
        .unwrap();
    let p = problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["field"], "body");

    let draft = app
        .post("/v1/admin/policies")
        .bearer_auth(&admin)
        .json(&new_draft)
        .send()
        .await
        .unwrap();
    let draft = json(draft, StatusCode::CREATED).await;
    assert_eq!(
        (draft["version"].clone(), draft["status"].clone()),
        (json!(1), json!("draft"))
    );
    let id = draft["id"].as_str().unwrap().to_string();
    problem(
        app.get("/v1/policies/cookie-policy").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;

    let edit = |body: Value| {
        app.request(reqwest::Method::PATCH, &format!("/v1/admin/policies/{id}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let edited = json(
        edit(json!({"body": "Version one, edited.\n"}))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_ne!(edited["content_sha256"], draft["content_sha256"]);

    let publish = || {
        app.post(&format!("/v1/admin/policies/{id}/publish"))
            .bearer_auth(&admin)
            .send()
    };
    let published = json(publish().await.unwrap(), StatusCode::OK).await;
    assert_eq!(published["status"], "published");
    assert!(published["published_at"].is_string());
    let public = get_json(&app, "/v1/policies/cookie-policy").await;
    assert_eq!(public["body"], "Version one, edited.\n");

    let p = problem(
        edit(json!({"body": "sneaky"})).await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["reason"], "policy_state");
    problem(publish().await.unwrap(), StatusCode::CONFLICT).await;

    // A draft may not reuse a published version number.
    let mut same_version = new_draft.clone();
    same_version["version"] = json!(1);
    let dup = app
        .post("/v1/admin/policies")
        .bearer_auth(&admin)
        .json(&same_version)
        .send()
        .await
        .unwrap();
    problem(dup, StatusCode::CONFLICT).await;

    let retire = || {
        app.post(&format!("/v1/admin/policies/{id}/retire"))
            .bearer_auth(&admin)
            .send()
    };
    assert_eq!(
        json(retire().await.unwrap(), StatusCode::OK).await["status"],
        "retired"
    );
    problem(retire().await.unwrap(), StatusCode::CONFLICT).await;
    problem(
        app.get("/v1/policies/cookie-policy").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let versions = get_json(&app, "/v1/policies/cookie-policy/versions").await;
    assert_eq!(
        versions[0]["status"], "retired",
        "retired versions stay readable"
    );

    let audit = app
        .get("/v1/admin/audit?target_type=policy")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let actions: Vec<String> = json(audit, StatusCode::OK).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"] == id.as_str())
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        [
            "policy.retired",
            "policy.published",
            "policy.draft_updated",
            "policy.draft_created"
        ]
    );
}

/// Grants `analytics` under version 2 for each subject, with an email and a language.
async fn consenting_subjects(app: &TestApp, people: &[(&str, &str, &str)]) {
    for (who, locale, country) in people {
        app.set_subject(
            who,
            Some(&format!("{who}@example.com")),
            Some(locale),
            Some(country),
        )
        .await;
        let resp = app
            .request(reqwest::Method::PUT, "/v1/me/consents/analytics")
            .bearer_auth(subject_token(who))
            .json(&json!({"granted": true, "policy_version": 2}))
            .send()
            .await
            .unwrap();
        json(resp, StatusCode::OK).await;
    }
}

/// A material version 3 of the privacy policy for everywhere, as a draft, in force from
/// 1 November 2026.
async fn material_draft(app: &TestApp, admin: &str) -> Value {
    material_draft_from(app, admin, "2026-11-01T00:00:00Z").await
}

/// [`material_draft`] in force from `effective_at`.
async fn material_draft_from(app: &TestApp, admin: &str, effective_at: &str) -> Value {
    let draft = json!({"key": "privacy-policy", "jurisdiction": "*", "language": "en", "authoritative": true,
                       "title": "Lumora Privacy Policy", "body": "Version three.\n", "material": true,
                       "change_summary": "We now keep logs for six months.",
                       "effective_at": effective_at});
    json(
        app.post("/v1/admin/policies")
            .bearer_auth(admin)
            .json(&draft)
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await
}

/// The main app's check of `analytics` for `who`.
async fn analytics_check(app: &TestApp, service: &str, who: &str) -> Value {
    app.read(&format!("/v1/subjects/{who}/consents/analytics"), service)
        .await
}

async fn policy_change_emails(app: &TestApp) -> Vec<outbox::Model> {
    outbox::Entity::find()
        .filter(outbox::Column::Topic.eq("policy_changed"))
        .all(app.state.db.conn())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_material_version_asks_everyone_affected_to_consent_again_in_their_language() {
    let app = spawn_app_with(|c| c.consent.reconsent_batch_size = 2).await;
    let admin = app.key(Role::Admin).await;
    let service = app.key(Role::Service).await;
    app.create_purposes(&admin, &[purpose_body("analytics")])
        .await;
    consenting_subjects(
        &app,
        &[
            ("p-1", "en", "DE"),
            ("p-2", "zh-CN", "FR"),
            ("p-3", "en", "IE"),
            ("p-4", "en", "US"),
            ("p-5", "zh-CN", "CN"),
        ],
    )
    .await;

    let draft = material_draft(&app, &admin).await;
    let id = draft["id"].as_str().unwrap();
    let published = app
        .post(&format!("/v1/admin/policies/{id}/publish"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let published = json(published, StatusCode::OK).await;
    assert_eq!(published["status"], "published", "answered at once");
    let done = app.rolled_out(&admin, id).await;
    assert!(done["reconsent_done_at"].is_string());

    // Four people consented under the `*` version 2; the one in China under the CN version.
    let marked = consents::Entity::find()
        .filter(consents::Column::NeedsReconsent.eq(true))
        .count(app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(marked, 4);
    let emails = policy_change_emails(&app).await;
    assert_eq!(emails.len(), 4, "one email per person affected");
    let to_p2 = emails
        .iter()
        .find(|m| m.recipient.as_deref() == Some("p-2@example.com"))
        .unwrap();
    assert_eq!(to_p2.locale.as_deref(), Some("zh-CN"));
    assert!(to_p2.payload.contains("six months"));
    let data: Value = serde_json::from_str(&to_p2.payload).unwrap();
    assert_eq!(
        data["shown_in"], "en",
        "no Chinese document: the email says so"
    );
    assert!(
        data["policy_url"]
            .as_str()
            .unwrap()
            .contains("/policies/privacy-policy/versions/3"),
        "{data}"
    );
    assert!(
        data["diff_url"]
            .as_str()
            .unwrap()
            .contains("/policies/privacy-policy/diff?from=2&to=3"),
        "{data}"
    );
    let to_p1 = emails
        .iter()
        .find(|m| m.recipient.as_deref() == Some("p-1@example.com"))
        .unwrap();
    let data: Value = serde_json::from_str(&to_p1.payload).unwrap();
    assert!(
        data["shown_in"].is_null(),
        "English reader, English document"
    );

    // The new version is in force, so the old consent no longer counts.
    let c = analytics_check(&app, &service, "p-1").await;
    assert_eq!(
        (
            c["allowed"].clone(),
            c["reason"].clone(),
            c["needs_reconsent"].clone()
        ),
        (json!(false), json!("reconsent_required"), json!(true))
    );
    let c = analytics_check(&app, &service, "p-5").await;
    assert_eq!(c["allowed"], true);

    // Consenting to version 3 renews it.
    let renewed = app
        .request(reqwest::Method::PUT, "/v1/me/consents/analytics")
        .bearer_auth(subject_token("p-1"))
        .json(&json!({"granted": true, "policy_version": 3}))
        .send()
        .await
        .unwrap();
    let renewed = json(renewed, StatusCode::OK).await;
    assert_eq!(
        (
            renewed["recorded"].clone(),
            renewed["needs_reconsent"].clone()
        ),
        (json!(true), json!(false))
    );
    let c = analytics_check(&app, &service, "p-1").await;
    assert_eq!(c["allowed"], true);

    // Running the re-consent again (as after a crash) sends nothing twice.
    let published = policy::get(app.state.db.conn(), id).await.unwrap();
    consentry::consent::reconsent::run(&app.state.db, &app.state.config, &published)
        .await
        .unwrap();
    assert_eq!(policy_change_emails(&app).await.len(), 4);

    // The email reaches the person in their language.
    let report = app
        .state
        .dispatcher
        .drain_once(chrono::Utc::now())
        .await
        .unwrap();
    assert!(report.delivered >= 4, "{report:?}");
    let mail_dir = app.state.config.data_dir.join("mail");
    let chinese = std::fs::read_dir(&mail_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .find(|m| m.contains("p-2@example.com"))
        .expect("an email to p-2");
    assert!(
        chinese.contains("Subject: =?utf-8?"),
        "a Chinese subject line, encoded"
    );
}

#[tokio::test]
async fn consent_given_under_a_superseded_version_needs_renewing_at_once() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    app.create_purposes(&admin, &[purpose_body("analytics")])
        .await;
    let resp = app
        .request(reqwest::Method::PUT, "/v1/me/consents/analytics")
        .bearer_auth(subject_token("late"))
        .json(&json!({"granted": true, "policy_version": 1}))
        .send()
        .await
        .unwrap();
    let body = json(resp, StatusCode::OK).await;
    assert_eq!(
        body["needs_reconsent"], true,
        "version 2 is a material change of version 1"
    );
}

#[tokio::test]
async fn purposes_are_validated_listed_archived_and_only_deleted_when_unused() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    app.create_purposes(&admin, &[purpose_body("analytics"), purpose_body("spare")])
        .await;
    let dup = app
        .post("/v1/admin/purposes")
        .bearer_auth(&admin)
        .json(&purpose_body("analytics"))
        .send()
        .await
        .unwrap();
    problem(dup, StatusCode::CONFLICT).await;

    let mut bad = purpose_body("bad");
    bad["separate_consent"] = json!(true);
    bad["retention_period"] = json!("30 days");
    let p = problem(
        app.post("/v1/admin/purposes")
            .bearer_auth(&admin)
            .json(&bad)
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["separate_consent_reason", "retention_period"]);
    let mut required_consent = purpose_body("bundled");
    required_consent["required"] = json!(true);
    let p = problem(
        app.post("/v1/admin/purposes")
            .bearer_auth(&admin)
            .json(&required_consent)
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "required");

    let public = get_json(&app, "/v1/purposes?lang=zh-CN").await;
    assert_eq!(public[0]["title"], "目的 analytics");

    let resp = app
        .request(reqwest::Method::PUT, "/v1/me/consents/analytics")
        .bearer_auth(subject_token("x"))
        .json(&json!({"granted": true, "policy_version": 2}))
        .send()
        .await
        .unwrap();
    json(resp, StatusCode::OK).await;
    let p = problem(
        app.request(reqwest::Method::DELETE, "/v1/admin/purposes/analytics")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("archive"));
    let resp = app
        .request(reqwest::Method::DELETE, "/v1/admin/purposes/spare")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    let archived = app
        .post("/v1/admin/purposes/analytics/archive")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert!(json(archived, StatusCode::OK).await["archived_at"].is_string());
    assert_eq!(
        get_json(&app, "/v1/purposes")
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let admin_list = app.read("/v1/admin/purposes", &admin).await;
    assert_eq!(admin_list.as_array().unwrap().len(), 1);
    let p = problem(
        app.request(reqwest::Method::PUT, "/v1/me/consents/analytics")
            .bearer_auth(subject_token("y"))
            .json(&json!({"granted": true, "policy_version": 2}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["reason"], "purpose_archived");

    let mut update = purpose_body("analytics");
    update.as_object_mut().unwrap().remove("key");
    update["retention_period"] = json!("P13M");
    let updated = app
        .request(reqwest::Method::PUT, "/v1/admin/purposes/analytics")
        .bearer_auth(&admin)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(updated, StatusCode::OK).await["retention_period"],
        "P13M"
    );
}

/// The public diff does real work per call, so it counts against the per-client limit, on the
/// API and in the portal alike.
#[tokio::test]
async fn the_public_diff_is_rate_limited_per_client() {
    let app = spawn_app_with(|c| c.rate_limit.per_minute = 3).await;
    let path = "/v1/policies/privacy-policy/diff?from=1&to=2";
    for _ in 0..3 {
        get_json(&app, path).await;
    }
    let limited = app.get(path).send().await.unwrap();
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
    let page = app
        .get("/portal/policies/privacy-policy/diff?from=1&to=2")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A rollout that stopped (the process died right after the publication committed) shows its
/// progress to admins and is finished by the job that any replica runs.
#[tokio::test]
async fn an_interrupted_rollout_shows_its_progress_and_the_job_finishes_it() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    app.create_purposes(&admin, &[purpose_body("analytics")])
        .await;
    consenting_subjects(&app, &[("r-1", "en", "DE"), ("r-2", "zh-CN", "FR")]).await;
    let draft = material_draft(&app, &admin).await;
    let id = draft["id"].as_str().unwrap();
    // Published by a replica that then died holding the rollout's lease: no job here takes it
    // over until the lease runs out.
    // The rollout started at boot may hold the lease for a moment: wait for it to let go.
    let mut taken = false;
    for _ in 0..200 {
        taken = consentry::lease::acquire(
            &app.state.db,
            rollout::ROLLOUT_LEASE,
            "a-replica-that-died",
            chrono::TimeDelta::minutes(10),
        )
        .await
        .unwrap();
        if taken {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(taken);
    let mut tx = app.state.db.begin().await.unwrap();
    policy::publish(&mut tx, id, &Actor::Cli).await.unwrap();
    tx.commit().await.unwrap();

    let view = |app: &TestApp| {
        let request = app
            .get(&format!("/v1/admin/policies/{id}"))
            .bearer_auth(&admin);
        async move { json(request.send().await.unwrap(), StatusCode::OK).await }
    };
    let stalled = view(&app).await;
    assert_eq!(stalled["reconsent_remaining"], 2, "{stalled}");
    assert!(stalled.get("reconsent_done_at").is_none());
    assert!(policy_change_emails(&app).await.is_empty());

    // What the job runs once the lease is free.
    let finished = rollout::roll_out(&app.state.db, &app.state.config)
        .await
        .unwrap();
    assert_eq!(finished, 1);
    let done = view(&app).await;
    assert!(done["reconsent_done_at"].is_string());
    assert!(done.get("reconsent_remaining").is_none());
    assert_eq!(policy_change_emails(&app).await.len(), 2);
    // Nothing is left for the next run.
    assert_eq!(
        rollout::roll_out(&app.state.db, &app.state.config)
            .await
            .unwrap(),
        0
    );
}

/// Until a material version takes effect, the consent given under the old one still counts: the
/// main app's check and the person's portal agree on it, and the portal says until when.
#[tokio::test]
async fn a_consent_awaiting_fresh_consent_counts_until_the_new_version_takes_effect_everywhere() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let service = app.key(Role::Service).await;
    app.create_purposes(&admin, &[purpose_body("analytics")])
        .await;
    consenting_subjects(&app, &[("p-1", "en", "DE")]).await;
    let effective = chrono::Utc::now() + chrono::TimeDelta::days(30);
    let draft = material_draft_from(&app, &admin, &effective.to_rfc3339()).await;
    let id = draft["id"].as_str().unwrap();
    json(
        app.post(&format!("/v1/admin/policies/{id}/publish"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    app.rolled_out(&admin, id).await;

    let check = analytics_check(&app, &service, "p-1").await;
    assert_eq!(
        (check["allowed"].clone(), check["needs_reconsent"].clone()),
        (json!(true), json!(true))
    );
    let browser = crate::support::Browser::new(&app);
    let home = browser.sign_in("p-1").await;
    home.shows("Agreed until");
    home.shows(&effective.format("%Y").to_string());
}

/// The portal's diff compares what people read: headings, paragraphs, list items and table rows
/// as rendered, never the Markdown source, and a Chinese version's wrapped lines join without
/// spaces.
#[tokio::test]
async fn the_portal_diff_shows_rendered_blocks_not_markdown() {
    let app = spawn_app().await;
    let page = app
        .get("/portal/policies/privacy-policy/diff?from=1&to=2")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let diff = &html[html.find("class=\"diff\"").unwrap()..];
    assert!(!diff.contains("##"), "no Markdown heading marks");
    assert!(!diff.contains("| "), "no Markdown table pipes");
    assert!(!diff.contains("|---"), "no Markdown table rules");
    assert!(diff.contains("<strong>"), "headings are shown as headings");
    let zh = app
        .get("/portal/policies/privacy-policy/diff?from=1&to=2&jurisdiction=CN&lang=zh-CN")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(zh.contains("个人信息"), "the Chinese version is compared");
    let chinese_space = zh.char_indices().any(|(i, c)| {
        c == ' '
            && zh[..i]
                .chars()
                .last()
                .is_some_and(|p| ('\u{4e00}'..='\u{9fff}').contains(&p))
            && zh[i + 1..]
                .chars()
                .next()
                .is_some_and(|n| ('\u{4e00}'..='\u{9fff}').contains(&n))
    });
    assert!(!chinese_space, "no space between two Chinese characters");
}
