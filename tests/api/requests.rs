//! Data-subject requests from intake to the final email: verification, deadlines, review,
//! fulfilment through the main app, export packages, and who may see what.

use std::io::Read;

use chrono::{Datelike, NaiveDate, Utc};
use consentry::{auth::Role, request::model};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, prelude::Expr};
use serde_json::{Value, json};

use crate::support::{
    SmtpSink, code_in, date, fixture, fixture_with, json, problem, purpose_body, spawn_app_with,
    subject_token, token_in,
};

#[tokio::test]
async fn an_access_request_runs_from_the_portal_to_the_download() {
    let f = fixture().await;
    f.app
        .set_subject("ann", Some("ann@example.com"), Some("en"), Some("DE"))
        .await;
    json(
        f.app
            .send_event(
                "data.recorded",
                json!({"external_id": "ann", "item_ref": "img-1", "category": "generated_images"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;

    let filed = json(
        f.file("ann", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap().to_string();
    assert_eq!(filed["status"], "verified");
    assert_eq!(filed["law"], "gdpr");
    let received: NaiveDate = Utc::now().date_naive();
    let due = date(&filed["due_date"]);
    assert!(due > received && due <= received + chrono::Days::new(34));

    let approved = json(
        f.decide(&f.reviewer, &id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(approved["status"], "fulfilling");
    f.drain().await;
    let job = f.job_for(&id);
    assert_eq!(job["type"], "access");
    assert_eq!(job["external_id"], "ann");

    let done = json(
        f.complete_job(
            job["fulfilment_id"].as_str().unwrap(),
            json!({"data": {"photos": [{"id": "p1", "caption": "beach"}]}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["outcome"], "completed");
    f.drain().await;
    let mails = f.mail_to("ann@example.com", 2).await;
    assert_eq!(mails.len(), 2, "received and export ready");
    let ready = mails
        .iter()
        .find(|m| m.text.contains("token="))
        .expect("an export-ready mail");
    let token = token_in(ready);

    let download = f
        .app
        .get(&format!("/v1/me/requests/{id}/export?token={token}"))
        .bearer_auth(subject_token("ann"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    let package: Value = serde_json::from_slice(&download.bytes().await.unwrap()).unwrap();
    assert_eq!(package["request"]["id"], id.as_str());
    assert_eq!(package["profile"]["email"], "ann@example.com");
    assert_eq!(package["main_app"]["photos"][0]["caption"], "beach");
    assert_eq!(package["data_items"][0]["external_ref"], "img-1");
    assert!(package["profile"].get("consent_hash").is_none());

    // The file on disk is encrypted.
    let stored = std::fs::read(
        f.app
            .state
            .config
            .data_dir
            .join(format!("exports/{id}.pkg")),
    )
    .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("ann@example.com"));

    // Without the login, the emailed token alone is not enough for a package asked for in
    // the portal: a leaked email must not open it.
    let leaked = problem(
        f.app
            .get(&format!("/v1/requests/{id}/export?token={token}"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(leaked["reason"], "sign_in_needed");

    // Another person, a wrong token, no login: nothing.
    problem(
        f.app
            .get(&format!("/v1/me/requests/{id}/export?token={token}"))
            .bearer_auth(subject_token("bob"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        f.app
            .get(&format!("/v1/me/requests/{id}/export?token=wrong{token}"))
            .bearer_auth(subject_token("ann"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        f.app
            .get(&format!("/v1/me/requests/{id}/export?token={token}"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // An expired package is gone.
    model::exports::Entity::update_many()
        .col_expr(
            model::exports::Column::ExpiresAt,
            Expr::value(Utc::now() - chrono::TimeDelta::minutes(1)),
        )
        .exec(f.app.state.db.conn())
        .await
        .unwrap();
    problem(
        f.app
            .get(&format!("/v1/me/requests/{id}/export?token={token}"))
            .bearer_auth(subject_token("ann"))
            .send()
            .await
            .unwrap(),
        StatusCode::GONE,
    )
    .await;
    // The hourly job deletes the file.
    let path = f
        .app
        .state
        .config
        .data_dir
        .join(format!("exports/{id}.pkg"));
    assert!(path.exists());
    let purged = consentry::request::export::purge_expired(
        &f.app.state.db,
        &f.app.state.config,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(purged, 1);
    assert!(!path.exists());
    assert_eq!(
        consentry::request::export::purge_expired(
            &f.app.state.db,
            &f.app.state.config,
            chrono::Utc::now()
        )
        .await
        .unwrap(),
        0
    );

    // The history shows every step, without internal actors.
    let detail = json(
        f.app
            .get(&format!("/v1/me/requests/{id}"))
            .bearer_auth(subject_token("ann"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let steps: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["verified", "approved", "fulfilling", "completed"]);
    assert!(detail["history"][1].get("actor").is_none());
}

/// Rotating the export key: packages sealed with the old key still download while the old key
/// is listed among the previous ones, and are gone (410, not a server error) once it is not.
#[tokio::test]
async fn export_packages_survive_a_key_rotation_while_the_old_key_is_kept() {
    use base64::Engine as _;
    let key = |byte: u8| {
        consentry::config::Secret::new(base64::engine::general_purpose::STANDARD.encode([byte; 32]))
    };
    let f = fixture_with(|c| c.requests.export_key = Some(key(1))).await;
    f.app
        .set_subject("rot", Some("rot@example.com"), Some("en"), Some("DE"))
        .await;
    let filed = json(
        f.file("rot", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    f.approve_and_fulfil(id, json!({})).await;
    f.drain().await;
    let mails = f.mail_to("rot@example.com", 2).await;
    let ready = mails.iter().find(|m| m.text.contains("token=")).unwrap();
    let path = format!("/v1/me/requests/{id}/export?token={}", token_in(ready));

    // The same database and data folder, served by a replica with the new key.
    let restarted = |previous: Vec<consentry::config::Secret>| {
        let (database, data) = (
            f.app.state.config.database_url(),
            f.app.state.config.data_dir.clone(),
        );
        spawn_app_with(move |c| {
            c.database_url = Some(database);
            c.data_dir = data;
            c.requests.export_key = Some(key(2));
            c.requests.export_previous_keys = previous;
        })
    };
    let rotated = restarted(vec![key(1)]).await;
    let download = rotated
        .get(&path)
        .bearer_auth(subject_token("rot"))
        .send()
        .await
        .unwrap();
    let package = json(download, StatusCode::OK).await;
    assert_eq!(package["request"]["id"], id);
    drop(rotated);
    let dropped = restarted(Vec::new()).await;
    let gone = dropped
        .get(&path)
        .bearer_auth(subject_token("rot"))
        .send()
        .await
        .unwrap();
    problem(gone, StatusCode::GONE).await;
}

#[tokio::test]
async fn an_export_is_a_zip_of_json_and_csv_files() {
    let f = fixture().await;
    f.app
        .set_subject("eve", Some("eve@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    for n in 0..3 {
        json(
            f.app
                .send_event(
                    "data.recorded",
                    // The last one is named like a spreadsheet formula.
                    json!({"external_id": "eve", "category": "photos",
                           "item_ref": if n < 2 { format!("img-{n}") } else { "=HYPERLINK(\"http://evil\")".into() }}),
                )
                .await,
            StatusCode::OK,
        )
        .await;
    }
    let filed = json(
        f.file("eve", json!({"type": "export"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    assert_eq!(filed["law"], "pipl");
    f.approve_and_fulfil(id, json!({})).await;
    f.drain().await;
    let mails = f.mail_to("eve@example.com", 2).await;
    let ready = mails.iter().find(|m| m.text.contains("token=")).unwrap();
    assert!(
        ready
            .subject
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "in Chinese"
    );
    let bytes = f.download("eve", id, ready).await;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "consent_events.csv",
            "consents.csv",
            "data_items.csv",
            "package.json"
        ]
    );
    let mut csv = String::new();
    zip.by_name("data_items.csv")
        .unwrap()
        .read_to_string(&mut csv)
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three items: {csv}");
    assert!(lines[0].contains("external_ref") && lines[0].contains("category"));
    assert!(
        csv.contains("'=HYPERLINK"),
        "the formula is shown, not run: {csv}"
    );
    assert!(!csv.contains(",=") && !csv.contains(",\"="), "{csv}");
    let mut doc = String::new();
    zip.by_name("package.json")
        .unwrap()
        .read_to_string(&mut doc)
        .unwrap();
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["data_items"].as_array().unwrap().len(), 3);
    assert_eq!(
        doc["retention_choices"],
        json!([]),
        "none made, and the section is there"
    );
    assert_eq!(doc["main_app"], Value::Null);
}

#[tokio::test]
async fn a_request_filed_by_email_is_verified_with_the_emailed_code() {
    let f = fixture().await;
    f.app
        .set_subject("li", Some("li@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    let file = |email: &str| {
        f.app
            .post("/v1/requests")
            .json(&json!({"email": email, "type": "erase", "jurisdiction": "CN"}))
            .send()
    };
    let known = json(file("li@example.com").await.unwrap(), StatusCode::ACCEPTED).await;
    let unknown = json(
        file("nobody@example.com").await.unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&known),
        keys(&unknown),
        "nothing tells a known address apart"
    );
    assert_eq!(known["status"], unknown["status"]);
    f.drain().await;
    let mail = f.mail_to("li@example.com", 2).await;
    let code = code_in(&mail[0]);
    let id = known["id"].as_str().unwrap();

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = problem(
        f.app
            .post(&format!("/v1/requests/{id}/verify"))
            .json(&json!({"code": wrong}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["reason"], "code_invalid");
    let verified = json(
        f.app
            .post(&format!("/v1/requests/{id}/verify"))
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["law"], "pipl");
    // 15 working days: three weeks later at the earliest, never on a weekend.
    let due = date(&verified["due_date"]);
    let today = Utc::now().date_naive();
    assert!(due >= today + chrono::Days::new(19) && due <= today + chrono::Days::new(21));
    assert!(due.weekday().num_days_from_monday() < 5);
    // The code works once.
    problem(
        f.app
            .post(&format!("/v1/requests/{id}/verify"))
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    // Linked to the person with that address: it shows in their portal.
    let mine = json(
        f.app
            .get("/v1/me/requests")
            .bearer_auth(subject_token("li"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(mine[0]["id"], id);

    // Five wrong codes close the other request for good.
    let other = unknown["id"].as_str().unwrap();
    for left in (1..5).rev() {
        let p = problem(
            f.app
                .post(&format!("/v1/requests/{other}/verify"))
                .json(&json!({"code": "999999"}))
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} attempts"))
        );
    }
    let closed = problem(
        f.app
            .post(&format!("/v1/requests/{other}/verify"))
            .json(&json!({"code": "999999"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(closed["reason"], "request_closed");
    // A resend right after filing is refused.
    let resend = f
        .app
        .post(&format!("/v1/requests/{id}/resend"))
        .send()
        .await
        .unwrap();
    assert_eq!(resend.status(), StatusCode::CONFLICT, "verified already");
    // Bad input changes nothing.
    problem(
        f.app
            .post("/v1/requests")
            .json(&json!({"email": "not-an-address", "type": "access"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

/// Each address has a daily budget of filings and wrong codes that holds across its requests,
/// so that filing request after request buys no fresh guesses and no stream of code emails.
#[tokio::test]
async fn an_address_has_a_daily_budget_of_filings_and_wrong_codes_across_requests() {
    let f = fixture_with(|c| {
        c.rate_limit.per_email_per_minute = 100;
        c.rate_limit.filings_per_email_per_day = 3;
        c.rate_limit.failed_codes_per_email_per_day = 4;
    })
    .await;
    let file = |email: &'static str| f.file_by_email(json!({"email": email, "type": "access"}));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let filed = json(file("ana@example.com").await, StatusCode::ACCEPTED).await;
        ids.push(filed["id"].as_str().unwrap().to_string());
    }
    // The fourth filing, in any spelling of the address, is refused and queues no code.
    let spent = file(" Ana@Example.COM").await;
    let wait: u64 = spent.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    let p = problem(spent, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(p["reason"], "budget_spent");
    json(file("bo@example.com").await, StatusCode::ACCEPTED).await;
    f.drain().await;
    let codes: Vec<String> = f
        .mail_to("ana@example.com", 4)
        .await
        .iter()
        .map(code_in)
        .collect();
    assert_eq!(codes.len(), 3, "one code email per accepted filing");

    // Wrong codes are counted per address, whichever request they are entered on.
    let verify = |id: String, code: String| {
        f.app
            .post(&format!("/v1/requests/{id}/verify"))
            .json(&json!({"code": code}))
            .send()
    };
    for (id, _) in ids.iter().zip(0..2) {
        for _ in 0..2 {
            let wrong = if codes.contains(&"000000".to_string()) {
                "000001"
            } else {
                "000000"
            };
            let p = problem(
                verify(id.clone(), wrong.to_string()).await.unwrap(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
            assert_eq!(p["reason"], "code_invalid");
        }
    }
    // The budget is spent: not even the right code of the third request is looked at today.
    for code in codes {
        let refused = verify(ids[2].clone(), code).await.unwrap();
        let p = problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(p["reason"], "budget_spent");
    }
    let status = f.admin_request(&ids[2]).await;
    assert_eq!(status["status"], "unverified", "nothing changed");
}

#[tokio::test]
async fn an_erasure_waits_for_the_main_app_which_is_retried_until_it_answers() {
    let f = fixture().await;
    f.app
        .set_subject("gus", Some("gus@example.com"), Some("en"), Some("FR"))
        .await;
    json(
        f.app
            .send_event(
                "data.recorded",
                json!({"external_id": "gus", "item_ref": "img-1", "category": "photos"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let filed = json(
        f.file("gus", json!({"type": "erase"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    // A second erasure while the first runs is linked, not processed twice.
    let again = json(
        f.file("gus", json!({"type": "erase"})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again["duplicate_of"], id);
    assert_eq!(again["status"], "cancelled");

    json(
        f.decide(&f.reviewer, id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    f.main_app.fail_next(1);
    let first = f.app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    assert_eq!(first.retrying, 1, "the main app failed once");
    let later = Utc::now() + chrono::TimeDelta::days(1);
    let second = f.app.state.dispatcher.drain_once(later).await.unwrap();
    assert!(second.delivered >= 1);
    let hooks: Vec<_> = f
        .main_app
        .received()
        .into_iter()
        .filter(|h| h.body["data"]["request_id"] == id)
        .collect();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0].id, hooks[1].id, "a retry keeps its webhook-id");
    let job = f.job_for(id);
    let job_id = job["fulfilment_id"].as_str().unwrap();

    let done = json(f.complete_job(job_id, json!({})).await, StatusCode::OK).await;
    assert_eq!(done["status"], "completed");
    // Repeating the report changes nothing.
    let repeat = json(f.complete_job(job_id, json!({})).await, StatusCode::OK).await;
    assert_eq!(repeat["updated_at"], done["updated_at"]);

    // Consentry's own copy is gone; the person is no longer found by the main app's id.
    let viewer = f.app.key(Role::Viewer).await;
    problem(
        f.app
            .get("/v1/admin/subjects/gus")
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let row = model::Entity::find_by_id(id)
        .one(f.app.state.db.conn())
        .await
        .unwrap()
        .unwrap();
    assert!(row.email.is_none(), "the request keeps no address");
    let erased = consentry::subject::model::Entity::find_by_id(row.subject_id.unwrap())
        .one(f.app.state.db.conn())
        .await
        .unwrap()
        .unwrap();
    assert!(erased.email.is_none() && erased.erased_at.is_some());
    assert!(erased.external_id.starts_with("erased:"));

    f.drain().await;
    let mails = f.mail_to("gus@example.com", 2).await;
    assert_eq!(
        mails.len(),
        2,
        "received and completed, to the address given at intake"
    );
}

#[tokio::test]
async fn an_erasure_leaves_no_address_behind_and_its_proof_can_be_found_again() {
    use consentry::{guardian, notify::outbox};
    use sea_orm::PaginatorTrait;
    let f = fixture().await;
    let admin = f.app.key(Role::Admin).await;
    f.app
        .create_purposes(&admin, &[purpose_body("photo_tagging")])
        .await;
    let ten = crate::age::years_ago(10);
    // A minor whose guardian was asked: the guardian's link is still queued.
    json(
        f.app
            .send_event(
                "subject.upserted",
                json!({"external_id": "tim", "email": "tim@example.com", "locale": "en",
                       "jurisdiction": "DE", "birth_date": ten,
                       "guardian_email": "dad@example.com"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    json(
        f.app
            .post("/v1/admin/subjects/tim/consents")
            .bearer_auth(&admin)
            .json(
                &json!({"decisions": [{"purpose": "photo_tagging", "granted": true}],
                          "policy_version": 2, "reason": "the guardian's consent on paper"}),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let earlier = json(
        f.file("tim", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    json(
        f.decide(
            &f.reviewer,
            earlier["id"].as_str().unwrap(),
            "reject",
            json!({"reason": "asked twice"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let erase = json(
        f.file("tim", json!({"type": "erase"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = erase["id"].as_str().unwrap();
    json(
        f.decide(&f.reviewer, id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let job = f.job_for(id)["fulfilment_id"].as_str().unwrap().to_string();
    json(f.complete_job(&job, json!({})).await, StatusCode::OK).await;
    f.drain().await;

    let conn = f.app.state.db.conn();
    assert_eq!(
        guardian::entity::Entity::find().count(conn).await.unwrap(),
        0,
        "the guardian's links and address are gone"
    );
    let link = f
        .sink
        .messages()
        .into_iter()
        .find(|m| m.to.contains("dad@example.com"))
        .expect("the guardian was asked before the erasure");
    problem(
        f.app
            .post("/v1/guardian/confirm")
            .json(&json!({"token": token_in(&link), "policy_version": 2,
                          "decisions": [{"purpose": "photo_tagging", "granted": true}]}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let left = outbox::entity::Entity::find()
        .filter(outbox::entity::Column::Recipient.is_not_null())
        .count(conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "no message keeps an address");
    let addresses = model::Entity::find()
        .filter(model::Column::Email.is_not_null())
        .count(conn)
        .await
        .unwrap();
    assert_eq!(addresses, 0, "no request keeps the address");
    let mails = f.mail_to("tim@example.com", 4).await;
    assert!(
        mails.iter().any(|m| m.subject.contains("complete")),
        "the person is told, before the address goes"
    );

    let request = f.admin_request(id).await;
    let record = request["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str())
        .find(|n| n.contains("proof of consent"))
        .unwrap_or_else(|| panic!("{request}"))
        .to_string();
    let proof = f.app.read("/v1/admin/erasures/tim", &f.reviewer).await;
    let pseudonym = proof["pseudonym"].as_str().unwrap();
    assert!(record.contains(pseudonym), "{record}");
    assert_eq!(proof["chain"]["ok"], true);
    assert_eq!(proof["chain"]["checked"], 1);
    assert_eq!(
        pseudonym,
        consentry::subject::pseudonym(&f.app.state.config, "tim").unwrap(),
        "keyed: only the key turns the old id into the pseudonym"
    );
    let history = f
        .app
        .read(
            &format!("/v1/admin/subjects/{pseudonym}/consents/history"),
            &f.reviewer,
        )
        .await;
    assert_eq!(history["items"][0]["purpose"], "photo_tagging");
    problem(
        f.app
            .get("/v1/admin/erasures/nobody")
            .bearer_auth(&f.reviewer)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn an_erasure_of_some_categories_deletes_only_those_and_keeps_the_account() {
    let f = fixture().await;
    f.app
        .set_subject("una", Some("una@example.com"), Some("en"), Some("DE"))
        .await;
    for (item, category) in [
        ("td-1", "training_data"),
        ("td-2", "training_data"),
        ("up-1", "uploads"),
    ] {
        json(
            f.app
                .send_event(
                    "data.recorded",
                    json!({"external_id": "una", "item_ref": item, "category": category}),
                )
                .await,
            StatusCode::OK,
        )
        .await;
    }
    problem(
        f.file(
            "una",
            json!({"type": "erase", "details": {"categories": ["Training Data"]}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let filed = json(
        f.file(
            "una",
            json!({"type": "erase", "details": {"categories": ["training_data"]}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    assert_eq!(filed["details"]["categories"], json!(["training_data"]));
    let seen = f.admin_request(id).await;
    let covered: Vec<&str> = seen["covered_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        covered,
        ["td-1", "td-2"],
        "the reviewer sees what it covers"
    );
    json(
        f.decide(
            &f.reviewer,
            id,
            "approve",
            json!({"note": "keep the invoices"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let job = f.job_for(id);
    assert_eq!(
        job["scope"],
        json!({"categories": ["training_data"], "item_refs": []})
    );
    assert_eq!(job["note"], "keep the invoices");
    json(
        f.complete_job(job["fulfilment_id"].as_str().unwrap(), json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    let record = f.app.read("/v1/admin/subjects/una", &f.reviewer).await;
    assert_eq!(
        record["profile"]["email"], "una@example.com",
        "the account stays"
    );
    let erased = |r: &str| {
        record["data_items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["item_ref"] == r)
            .unwrap()["erased_at"]
            .is_string()
    };
    assert!(erased("td-1") && erased("td-2") && !erased("up-1"));
    f.drain().await;
    let mails = f.mail_to("una@example.com", 2).await;
    assert!(
        mails
            .iter()
            .any(|m| m.text.contains("training_data: 2 item(s)")
                && m.text.contains("your account stays")),
        "the completion says what was deleted"
    );

    // An approval needs no body at all.
    let access = json(
        f.file("una", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    let approved = f
        .app
        .post(&format!(
            "/v1/admin/requests/{}/approve",
            access["id"].as_str().unwrap()
        ))
        .bearer_auth(&f.reviewer)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_erasure_drops_the_guardians_link_still_waiting_to_go_out() {
    use consentry::notify::outbox;
    use sea_orm::PaginatorTrait;
    let f = fixture().await;
    let ten = crate::age::years_ago(10);
    json(
        f.app
            .send_event(
                "subject.upserted",
                json!({"external_id": "max", "email": "max@example.com", "jurisdiction": "DE",
                       "birth_date": ten, "guardian_email": "max.dad@example.com"}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let erase = json(
        f.file("max", json!({"type": "erase"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = erase["id"].as_str().unwrap();
    json(
        f.decide(&f.reviewer, id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    // Nothing has been delivered yet: the guardian's link is still queued.
    let job = model::fulfilments::Entity::find()
        .filter(model::fulfilments::Column::RequestId.eq(id))
        .one(f.app.state.db.conn())
        .await
        .unwrap()
        .unwrap();
    json(f.complete_job(&job.id, json!({})).await, StatusCode::OK).await;
    let to_guardian = outbox::entity::Entity::find()
        .filter(outbox::entity::Column::Recipient.eq("max.dad@example.com"))
        .count(f.app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(to_guardian, 0, "the link for an erased child is dropped");
    f.drain().await;
    assert!(
        f.sink.messages().iter().all(|m| !m.to.contains("max.dad")),
        "no guardian email goes out"
    );
    let mails = f.mail_to("max@example.com", 2).await;
    assert_eq!(
        mails.len(),
        2,
        "received and completed still reach the person"
    );
}

#[tokio::test]
async fn an_erasure_under_a_legal_hold_ends_restricted_with_the_reason() {
    let f = fixture().await;
    let admin = f.app.key(Role::Admin).await;
    f.app
        .create_purposes(&admin, &[purpose_body("analytics")])
        .await;
    f.app
        .set_subject("hal", Some("hal@example.com"), Some("en"), Some("CN"))
        .await;
    let filed = json(
        f.file("hal", json!({"type": "erase"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    json(
        f.decide(&f.reviewer, id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    problem(
        f.decide(
            &f.reviewer,
            id,
            "complete",
            json!({"outcome": "restricted"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let done = json(
        f.decide(
            &f.reviewer,
            id,
            "complete",
            json!({"outcome": "restricted", "note": "tax records must be kept for 10 years"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["outcome"], "restricted");
    assert_eq!(
        done["decision_reason"],
        "tax records must be kept for 10 years"
    );
    let check = f
        .app
        .read("/v1/subjects/hal/consents/analytics", &f.service)
        .await;
    assert_eq!(check["allowed"], false);
    assert_eq!(check["reason"], "restricted");
}

#[tokio::test]
async fn rejections_give_the_reason_and_the_remedies_of_each_law() {
    let f = fixture().await;
    f.app
        .set_subject("de", Some("de@example.com"), Some("en"), Some("DE"))
        .await;
    f.app
        .set_subject("cn", Some("cn@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    for who in ["de", "cn"] {
        let filed = json(
            f.file(who, json!({"type": "access"})).await,
            StatusCode::CREATED,
        )
        .await;
        let id = filed["id"].as_str().unwrap();
        problem(
            f.decide(&f.reviewer, id, "reject", json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        let rejected = json(
            f.decide(
                &f.reviewer,
                id,
                "reject",
                json!({"reason": "manifestly excessive"}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(rejected["status"], "rejected");
        let twice = problem(
            f.decide(&f.reviewer, id, "approve", json!({})).await,
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(twice["reason"], "illegal_transition");
    }
    f.drain().await;
    let mails = f.sink.wait_for(4).await;
    let rejection = |to: &str| {
        mails
            .iter()
            .find(|m| m.to.contains(to) && m.text.contains("manifestly excessive"))
            .unwrap_or_else(|| panic!("a rejection to {to}"))
    };
    assert!(
        rejection("de@example.com")
            .text
            .contains("supervisory authority")
    );
    assert!(rejection("cn@example.com").text.contains("人民法院"));
}

#[tokio::test]
async fn a_gdpr_deadline_is_extended_once_by_at_most_two_months() {
    let f = fixture().await;
    f.app
        .set_subject("ida", Some("ida@example.com"), Some("en"), Some("IE"))
        .await;
    f.app
        .set_subject("wu", Some("wu@example.com"), Some("en"), Some("CN"))
        .await;
    let filed = json(
        f.file("ida", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    let due = date(&filed["due_date"]);
    problem(
        f.decide(
            &f.reviewer,
            id,
            "extend",
            json!({"months": 3, "reason": "many files"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let extended = json(
        f.decide(
            &f.reviewer,
            id,
            "extend",
            json!({"months": 2, "reason": "many files"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new_due = date(&extended["due_date"]);
    // Three months from receipt at most (GDPR Art 12(3)), then the next working day.
    let received: NaiveDate = filed["received_at"].as_str().unwrap()[..10]
        .parse()
        .unwrap();
    let plain = received.checked_add_months(chrono::Months::new(3)).unwrap();
    assert!(
        new_due >= plain && new_due <= plain + chrono::Days::new(2),
        "{due} → {new_due}"
    );
    assert_eq!(extended["extension_reason"], "many files");
    let again = problem(
        f.decide(
            &f.reviewer,
            id,
            "extend",
            json!({"months": 1, "reason": "more"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(again["reason"], "already_extended");

    let pipl = json(
        f.file("wu", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    let refused = problem(
        f.decide(
            &f.reviewer,
            pipl["id"].as_str().unwrap(),
            "extend",
            json!({"months": 1, "reason": "busy"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["reason"], "extension_not_allowed");

    // Once the first month has run out, the person can no longer be told in time.
    let late = json(
        f.file("ida", json!({"type": "export"})).await,
        StatusCode::CREATED,
    )
    .await;
    let late_id = late["id"].as_str().unwrap();
    model::Entity::update_many()
        .col_expr(
            model::Column::ReceivedAt,
            Expr::value(Utc::now() - chrono::TimeDelta::days(40)),
        )
        .filter(model::Column::Id.eq(late_id))
        .exec(f.app.state.db.conn())
        .await
        .unwrap();
    let too_late = problem(
        f.decide(
            &f.reviewer,
            late_id,
            "extend",
            json!({"months": 1, "reason": "busy"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(too_late["reason"], "extension_too_late");
    assert!(too_late["detail"].as_str().unwrap().contains("Art 12(3)"));
    f.drain().await;
    let mails = f.mail_to("ida@example.com", 3).await;
    assert!(
        mails.iter().any(|m| m.text.contains("many files")),
        "the reason is emailed"
    );
}

#[tokio::test]
async fn restriction_and_objection_take_effect_on_approval() {
    let f = fixture().await;
    let admin = f.app.key(Role::Admin).await;
    f.app
        .create_purposes(
            &admin,
            &[purpose_body("marketing_email"), purpose_body("analytics")],
        )
        .await;
    f.app
        .set_subject("oli", Some("oli@example.com"), Some("en"), Some("NL"))
        .await;
    for purpose in ["marketing_email", "analytics"] {
        f.grant("oli", purpose).await;
    }
    let check = |purpose: &'static str| f.check("oli", purpose);
    problem(
        f.file(
            "oli",
            json!({"type": "object", "details": {"purposes": ["nope"]}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let objection = json(
        f.file(
            "oli",
            json!({"type": "object", "details": {"purposes": ["marketing_email"]}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let done = json(
        f.decide(
            &f.reviewer,
            objection["id"].as_str().unwrap(),
            "approve",
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(check("marketing_email").await["allowed"], false);
    assert_eq!(check("analytics").await["allowed"], true);

    let restriction = json(
        f.file("oli", json!({"type": "restrict"})).await,
        StatusCode::CREATED,
    )
    .await;
    json(
        f.decide(
            &f.reviewer,
            restriction["id"].as_str().unwrap(),
            "approve",
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let analytics = check("analytics").await;
    assert_eq!(analytics["allowed"], false);
    assert_eq!(analytics["reason"], "restricted");

    f.drain().await;
    let completed = f
        .mail_to("oli@example.com", 4)
        .await
        .into_iter()
        .filter(|m| m.subject.contains("complete"))
        .count();
    assert_eq!(completed, 2, "objection and restriction are confirmed");

    // Lifting it tells the person first, with the reason.
    let lift = |key: String| {
        let f = &f;
        async move {
            f.app
                .post("/v1/admin/subjects/oli/lift-restriction")
                .bearer_auth(key)
                .json(&json!({"reason": "the accuracy of your data is confirmed"}))
                .send()
                .await
                .unwrap()
        }
    };
    let viewer = f.app.key(Role::Viewer).await;
    problem(lift(viewer).await, StatusCode::FORBIDDEN).await;
    let scheduled = json(lift(f.reviewer.clone()).await, StatusCode::OK).await;
    assert_eq!(
        scheduled["restricted"], true,
        "not before the person is told"
    );
    let lifts_at: chrono::DateTime<Utc> = scheduled["lifts_at"].as_str().unwrap().parse().unwrap();
    let notice = lifts_at - Utc::now();
    assert!(
        notice > chrono::TimeDelta::days(6) && notice <= chrono::TimeDelta::days(7),
        "the configured notice period: {notice}"
    );
    assert_eq!(check("analytics").await["reason"], "restricted");
    let again = problem(lift(f.reviewer.clone()).await, StatusCode::CONFLICT).await;
    assert_eq!(again["reason"], "lift_already_scheduled");
    let lift_due = |at| consentry::request::review::lift_due_restrictions(&f.app.state.db, at);
    // The day comes, but the notice has not gone out yet: the restriction stays.
    assert_eq!(lift_due(lifts_at).await.unwrap(), 0);
    assert_eq!(check("analytics").await["allowed"], false);
    f.drain().await;
    assert_eq!(
        lift_due(lifts_at - chrono::TimeDelta::seconds(1))
            .await
            .unwrap(),
        0,
        "told, but the notice period still runs"
    );
    assert_eq!(lift_due(lifts_at).await.unwrap(), 1);
    assert_eq!(check("analytics").await["allowed"], true);
    let gone = problem(lift(f.reviewer.clone()).await, StatusCode::CONFLICT).await;
    assert_eq!(gone["reason"], "not_restricted");
    let mails = f.mail_to("oli@example.com", 5).await;
    assert_eq!(mails.len(), 5, "two received, two completed, one lifted");
    assert!(
        mails.iter().any(
            |m| m.text.contains("the accuracy of your data is confirmed")
                && m.text.contains(&lifts_at.date_naive().to_string())
        ),
        "the person is told why and when"
    );
}

#[tokio::test]
async fn an_objection_to_direct_marketing_takes_effect_on_receipt_and_cannot_be_rejected() {
    let f = fixture().await;
    let admin = f.app.key(Role::Admin).await;
    let mut marketing = purpose_body("marketing_email");
    marketing["direct_marketing"] = json!(true);
    f.app
        .create_purposes(&admin, &[marketing, purpose_body("analytics")])
        .await;
    f.app
        .set_subject("mia", Some("mia@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    let grant = |purpose: &'static str| f.grant("mia", purpose);
    let f = &f;
    let allowed =
        |purpose: &'static str| async move { f.check("mia", purpose).await["allowed"].clone() };
    grant("marketing_email").await;
    grant("analytics").await;
    let objection = json(
        f.file(
            "mia",
            json!({"type": "object", "details": {"purposes": ["marketing_email"]}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(objection["status"], "completed", "no review: {objection}");
    assert_eq!(allowed("marketing_email").await, false);
    let refused = problem(
        f.decide(
            &f.reviewer,
            objection["id"].as_str().unwrap(),
            "reject",
            json!({"reason": "we disagree"}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["reason"], "illegal_transition");

    // Marketing and something else: the marketing part at once, the rest for a reviewer.
    grant("marketing_email").await;
    let mixed = json(
        f.file(
            "mia",
            json!({"type": "object", "details": {"purposes": ["marketing_email", "analytics"]}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(mixed["status"], "verified");
    assert_eq!(allowed("marketing_email").await, false);
    assert_eq!(allowed("analytics").await, true);
    json(
        f.decide(
            &f.reviewer,
            mixed["id"].as_str().unwrap(),
            "reject",
            json!({"reason": "analytics is anonymous"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        allowed("marketing_email").await,
        false,
        "it stays withdrawn"
    );
    f.drain().await;
    let mails = f.mail_to("mia@example.com", 4).await;
    assert!(
        mails.iter().any(|m| m.text.contains("拒绝处理")),
        "the Chinese email names the request type in Chinese"
    );
}

#[tokio::test]
async fn next_of_kin_act_for_a_deceased_person_under_pipl_only() {
    let f = fixture().await;
    // The relative has an account of their own; it must not become the deceased's request.
    f.app
        .set_subject("wei", Some("wei@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    let file = |body: Value| f.file_by_email(body);
    let evidence = json!({"deceased": "Li Ming, account li.ming@example.com",
                          "relationship": "son",
                          "evidence": "death certificate 110105-2026-0042; hukou booklet"});
    let gdpr = problem(
        file(
            json!({"email": "wei@example.com", "type": "access", "jurisdiction": "FR",
                    "on_behalf_of": "next_of_kin", "details": evidence}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(gdpr["reason"], "next_of_kin_not_covered");
    assert!(gdpr["detail"].as_str().unwrap().contains("Recital 27"));
    let bare = problem(
        file(
            json!({"email": "wei@example.com", "type": "restrict", "jurisdiction": "CN",
                    "on_behalf_of": "next_of_kin"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let fields: Vec<&str> = bare["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "type",
            "details.deceased",
            "details.relationship",
            "details.evidence"
        ]
    );
    let filed = json(
        file(
            json!({"email": "wei@example.com", "type": "erase", "jurisdiction": "CN",
                    "on_behalf_of": "next_of_kin", "details": evidence}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    f.drain().await;
    let code = code_in(&f.mail_to("wei@example.com", 1).await[0]);
    let verified = json(
        f.app
            .post(&format!("/v1/requests/{id}/verify"))
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["law"], "pipl");
    let seen = f.admin_request(id).await;
    assert_eq!(seen["on_behalf_of"], "next_of_kin");
    assert_eq!(seen["details"]["relationship"], "son");
    assert!(
        seen["details"]["evidence"]
            .as_str()
            .unwrap()
            .contains("death certificate")
    );
    let own = f.app.read("/v1/admin/subjects/wei", &f.reviewer).await;
    assert!(
        own["requests"].as_array().unwrap().is_empty(),
        "the relative's own account is not the deceased's"
    );
}

#[tokio::test]
async fn reviewers_see_who_asked_and_people_outside_any_regime_read_no_law() {
    let f = fixture().await;
    f.app
        .set_subject("sam", Some("sam@example.com"), Some("en"), Some("US"))
        .await;
    f.app
        .set_subject("eva", Some("eva@example.com"), Some("en"), Some("SE"))
        .await;
    json(
        f.file("sam", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    let by_email = json(
        f.file_by_email(json!({"email": "eva@example.com", "type": "erase"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let id = by_email["id"].as_str().unwrap();
    f.drain().await;
    let code = code_in(&f.mail_to("eva@example.com", 1).await[0]);
    json(
        f.app
            .post(&format!("/v1/requests/{id}/verify"))
            .json(&json!({"code": code}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let queue = f.app.read("/v1/admin/requests", &f.reviewer).await;
    let of = |who: &str| {
        queue["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["requester"]["external_id"] == who)
            .cloned()
            .unwrap_or_else(|| panic!("{who} in {queue}"))
    };
    let sam = of("sam");
    assert_eq!(sam["requester"]["email"], "sam@example.com");
    assert_eq!(sam["requester"]["email_verified"], false);
    assert_eq!(sam["requester"]["jurisdiction"], "US");
    assert!(
        sam["requester"]["law_reason"]
            .as_str()
            .unwrap()
            .contains("neither the GDPR nor PIPL"),
        "{sam}"
    );
    let eva = of("eva");
    assert_eq!(
        eva["requester"]["email_verified"], true,
        "proven by the code"
    );
    assert!(
        eva["requester"]["law_reason"]
            .as_str()
            .unwrap()
            .contains("SE")
    );
    let detail = f.admin_request(id).await;
    assert_eq!(detail["requester"]["external_id"], "eva");
    assert!(detail["history"].is_array());

    f.drain().await;
    let received = f.mail_to("sam@example.com", 1).await;
    assert!(
        !received[0].text.contains("GDPR"),
        "no law that does not apply is cited: {}",
        received[0].text
    );
    let eva_mail = f.mail_to("eva@example.com", 2).await;
    assert!(eva_mail.iter().any(|m| m.text.contains("GDPR")));
}

#[tokio::test]
async fn reviewers_get_one_digest_a_day_of_overdue_and_soon_due_requests() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(move |c| {
        c.smtp_url = Some(consentry::config::Secret::new(smtp));
        c.mail.tls = Some(consentry::config::SmtpTls::None);
        c.requests.digest_to = vec!["privacy-team@example.com".into()];
    })
    .await;
    let today = Utc::now().date_naive();
    let queue = || async {
        let mut tx = app.state.db.begin().await.unwrap();
        let queued = consentry::request::digest::queue(&mut tx, &app.state.config, today).await;
        tx.commit().await.unwrap();
        queued
    };
    assert_eq!(queue().await.unwrap(), 0, "nothing to report, nothing sent");
    app.set_subject("late", None, None, Some("DE")).await;
    let filed = json(
        app.post("/v1/me/requests")
            .bearer_auth(subject_token("late"))
            .json(&json!({"type": "access"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    model::Entity::update_many()
        .col_expr(
            model::Column::DueDate,
            Expr::value(today - chrono::Days::new(2)),
        )
        .exec(app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(queue().await.unwrap(), 1);
    assert_eq!(queue().await.unwrap(), 0, "once a day");
    app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    let mail = sink.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].to.contains("privacy-team@example.com"));
    assert!(mail[0].text.contains(filed["id"].as_str().unwrap()));
    assert!(mail[0].text.contains("late"), "who asked: {}", mail[0].text);
}

#[tokio::test]
async fn a_rectification_corrects_our_copy_and_sends_the_changes_to_the_main_app() {
    let f = fixture().await;
    f.app
        .set_subject("ray", Some("old@example.com"), Some("en"), Some("SE"))
        .await;
    problem(
        f.file("ray", json!({"type": "rectify"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let filed = json(
        f.file(
            "ray",
            json!({"type": "rectify", "details": {"changes": {"email": "new@example.com", "display_name": "Ray"}}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();
    json(
        f.decide(&f.reviewer, id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let job = f.job_for(id);
    assert_eq!(job["changes"]["display_name"], "Ray");
    let subject = consentry::subject::find(f.app.state.db.conn(), "ray")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(subject.email.as_deref(), Some("new@example.com"));
    let done = json(
        f.complete_job(job["fulfilment_id"].as_str().unwrap(), json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["status"], "completed");
    f.drain().await;
    // The address was captured at intake: both emails go there.
    let mails = f.mail_to("old@example.com", 2).await;
    assert_eq!(mails.len(), 2, "received and completed");
    assert!(mails.iter().any(|m| m.subject.contains("complete")));
}

#[tokio::test]
async fn the_queue_filters_by_status_type_law_and_deadline() {
    let f = fixture().await;
    let viewer = f.app.key(Role::Viewer).await;
    for (who, country, kind) in [
        ("q1", "DE", "access"),
        ("q2", "CN", "access"),
        ("q3", "FR", "erase"),
    ] {
        f.app.set_subject(who, None, None, Some(country)).await;
        json(
            f.file(who, json!({"type": kind})).await,
            StatusCode::CREATED,
        )
        .await;
    }
    // Make the German request overdue and the French one due tomorrow.
    let conn = f.app.state.db.conn();
    let today = Utc::now().date_naive();
    for (country, due) in [
        ("DE", today - chrono::Days::new(1)),
        ("FR", today + chrono::Days::new(1)),
    ] {
        model::Entity::update_many()
            .col_expr(model::Column::DueDate, Expr::value(due))
            .filter(model::Column::Jurisdiction.eq(country))
            .exec(conn)
            .await
            .unwrap();
    }
    let list = |query: &'static str| {
        let (f, viewer) = (&f, viewer.clone());
        async move {
            f.app
                .read(&format!("/v1/admin/requests{query}"), &viewer)
                .await
        }
    };
    assert_eq!(list("").await["total"], 3);
    assert_eq!(list("?law=pipl").await["total"], 1);
    assert_eq!(list("?type=erase").await["total"], 1);
    assert_eq!(list("?status=verified").await["total"], 3);
    let overdue = list("?overdue=true").await;
    assert_eq!(overdue["total"], 1);
    assert_eq!(overdue["items"][0]["law"], "gdpr");
    assert_eq!(list("?due_within=P3D").await["total"], 2);
    assert_eq!(list("?limit=1").await["items"].as_array().unwrap().len(), 1);
    problem(
        f.app
            .get("/v1/admin/requests?due_within=soon")
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn each_client_reaches_only_what_its_role_allows() {
    let f = fixture().await;
    let viewer = f.app.key(Role::Viewer).await;
    f.app.set_subject("amy", None, None, Some("DE")).await;
    let filed = json(
        f.file("amy", json!({"type": "access"})).await,
        StatusCode::CREATED,
    )
    .await;
    let id = filed["id"].as_str().unwrap();

    // Another person sees nothing of it.
    for path in [
        format!("/v1/me/requests/{id}"),
        format!("/v1/me/requests/{id}/export?token=x"),
    ] {
        problem(
            f.app
                .get(&path)
                .bearer_auth(subject_token("bob"))
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let bobs = json(
        f.app
            .get("/v1/me/requests")
            .bearer_auth(subject_token("bob"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(bobs, json!([]));

    // Keys: viewers read, reviewers decide, the main app only reports jobs.
    for key in [&f.service, &viewer] {
        problem(
            f.decide(key, id, "approve", json!({})).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    problem(
        f.app
            .get("/v1/admin/requests")
            .bearer_auth(&f.service)
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        f.app.get("/v1/admin/requests").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    f.app
        .read(&format!("/v1/admin/requests/{id}"), &viewer)
        .await;
    json(
        f.decide(&f.reviewer, id, "approve", json!({})).await,
        StatusCode::OK,
    )
    .await;
    f.drain().await;
    let job = f.job_for(id);
    let path = format!(
        "/v1/fulfilments/{}/complete",
        job["fulfilment_id"].as_str().unwrap()
    );
    for key in [&f.reviewer, &viewer] {
        problem(
            f.app
                .post(&path)
                .bearer_auth(key)
                .json(&json!({}))
                .send()
                .await
                .unwrap(),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    problem(
        f.app
            .post("/v1/fulfilments/unknown/complete")
            .bearer_auth(&f.service)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        f.app
            .post("/v1/me/requests")
            .json(&json!({"type": "access"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
