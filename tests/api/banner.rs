//! The consent script's server side over HTTP: the experience a visitor is shown, decisions
//! recorded with proof of what was shown, a visitor's choices joined to the person who signs
//! in, the script itself within its size budget, Global Privacy Control and cross-site access.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{
    portal::portal_fixture,
    support::{Fixture, json, problem, repo_path, subject_token},
};

const VISITOR: &str = "v1sitor-0123456789abcdef";

async fn experience(f: &Fixture, query: &str, language: &str) -> reqwest::Response {
    f.app
        .get(&format!("/v1/experience{query}"))
        .header(header::ACCEPT_LANGUAGE, language)
        .send()
        .await
        .unwrap()
}

/// The main app joins the visitor's choices to `who`, who signed in.
async fn link(f: &Fixture, who: &str) -> Value {
    json(
        f.app
            .post(&format!("/v1/subjects/{who}/visitors"))
            .bearer_auth(&f.service)
            .json(&json!({"visitor": VISITOR}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

async fn decide(f: &Fixture, body: Value) -> reqwest::Response {
    f.app
        .post("/v1/experience/decisions")
        .header(header::ORIGIN, "https://shop.example.com")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_visitor_is_asked_about_the_purposes_needing_consent_in_their_language() {
    let (f, admin) = portal_fixture().await;
    let resp = experience(&f, "?jurisdiction=DE", "en-GB,en;q=0.9").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, max-age=300");
    assert!(
        resp.headers()[header::VARY]
            .to_str()
            .unwrap()
            .contains("Accept-Language")
    );
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let shown = json(resp, StatusCode::OK).await;
    let keys: Vec<&str> = shown["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["cloud_backup", "marketing_email"],
        "consent-based, not required"
    );
    assert_eq!(shown["revision"].as_str().unwrap().len(), 16);
    assert_eq!(shown["words"]["reject_all"], "Reject all");
    assert_eq!(shown["policy"]["version"], 2);

    let zh = json(
        experience(&f, "?jurisdiction=CN", "zh-CN").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(zh["language"], "zh-CN");
    assert_eq!(zh["words"]["reject_all"], "全部拒绝");
    assert_ne!(zh["revision"], shown["revision"]);

    // Changing what is shown changes the revision.
    let mut changed = crate::support::purpose_body("marketing_email");
    changed["texts"]["en"]["title"] = json!("Newsletters");
    let updated = f
        .app
        .request(Method::PUT, "/v1/admin/purposes/marketing_email")
        .bearer_auth(&admin)
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.status(),
        StatusCode::OK,
        "{}",
        updated.text().await.unwrap()
    );
    let again = json(
        experience(&f, "?jurisdiction=DE", "en").await,
        StatusCode::OK,
    )
    .await;
    assert_ne!(again["revision"], shown["revision"]);
}

#[tokio::test]
async fn a_decision_is_recorded_with_proof_of_what_was_shown_and_joins_the_person_who_signs_in() {
    let (f, _admin) = portal_fixture().await;
    let shown = json(
        experience(&f, "?jurisdiction=DE", "en").await,
        StatusCode::OK,
    )
    .await;
    let body = |revision: &Value, decisions: Value| {
        json!({"visitor": VISITOR, "revision": revision, "jurisdiction": "DE", "lang": "en",
               "decisions": decisions})
    };

    let stale = problem(
        decide(
            &f,
            body(
                &json!("0000000000000000"),
                json!([{"purpose": "marketing_email", "granted": true}]),
            ),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(stale["reason"], "experience_changed");
    let unknown = decide(
        &f,
        body(
            &shown["revision"],
            json!([{"purpose": "account", "granted": false}]),
        ),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let recorded = json(
        decide(
            &f,
            body(
                &shown["revision"],
                json!([{"purpose": "marketing_email", "granted": true},
                       {"purpose": "cloud_backup", "granted": false}]),
            ),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(recorded["recorded"], 2);
    let visitor = f
        .check(&format!("visitor:{VISITOR}"), "marketing_email")
        .await;
    assert_eq!(visitor["allowed"], true, "{visitor}");

    // The person signs in; the main app joins the visitor's choices to them.
    let linked = link(&f, "ann").await;
    assert_eq!(linked["joined"], 2);
    assert_eq!(f.check("ann", "marketing_email").await["allowed"], true);
    let history = json(
        f.app
            .get("/v1/me/consents/history")
            .bearer_auth(subject_token("ann"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let granted = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["purpose"] == "marketing_email")
        .expect("the visitor's grant is in the person's ledger")
        .clone();
    assert_eq!(granted["channel"], "banner");
    let reason = granted["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(shown["revision"].as_str().unwrap())
            && reason.contains(shown["texts_sha256"].as_str().unwrap()),
        "the proof names what was shown: {granted}"
    );
    let again = link(&f, "ann").await;
    assert_eq!(again["joined"], 0, "joining twice records nothing new");
}

#[tokio::test]
async fn a_gpc_signal_only_opts_out_of_the_purposes_marked_for_it() {
    let (f, _admin) = crate::portal::portal_fixture_with(|c| {
        c.banner.gpc_opt_out = vec!["marketing_email".into()];
    })
    .await;
    let shown = json(
        experience(&f, "?jurisdiction=DE", "en").await,
        StatusCode::OK,
    )
    .await;
    let marked: Vec<bool> = shown["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["gpc_opt_out"].as_bool().unwrap())
        .collect();
    assert_eq!(marked, [false, true]);
    let gpc = |purpose: &str, granted: bool| {
        json!({"visitor": VISITOR, "revision": shown["revision"], "jurisdiction": "DE",
               "decisions": [{"purpose": purpose, "granted": granted}], "method": "gpc"})
    };
    assert_eq!(
        decide(&f, gpc("cloud_backup", false)).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        decide(&f, gpc("marketing_email", true)).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    json(
        decide(&f, gpc("marketing_email", false)).await,
        StatusCode::OK,
    )
    .await;
    let check = f
        .check(&format!("visitor:{VISITOR}"), "marketing_email")
        .await;
    assert_eq!(check["allowed"], false);
    assert_eq!(check["reason"], "gpc", "{check}");
    let policy = f.app.get("/.well-known/gpc.json").send().await.unwrap();
    assert_eq!(json(policy, StatusCode::OK).await["gpc"], true);
}

#[tokio::test]
async fn the_script_is_within_its_budget_cached_and_open_to_every_site() {
    let (f, _admin) = portal_fixture().await;
    let resp = f.app.get("/sdk/consentry.js").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_eq!(
        resp.headers()[header::CACHE_CONTROL],
        "public, max-age=604800"
    );
    let etag = resp.headers()[header::ETAG].clone();
    let script = resp.bytes().await.unwrap();
    let gzip = std::process::Command::new("gzip")
        .arg("-9c")
        .arg(repo_path("templates/sdk/consentry.js"))
        .output()
        .expect("gzip runs");
    assert!(
        gzip.stdout.len() <= consentry::web::sdk::SCRIPT_BUDGET_BYTES,
        "the script is {} bytes gzipped",
        gzip.stdout.len()
    );
    assert!(!script.is_empty());
    let cached = f
        .app
        .get("/sdk/consentry.js")
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    let preflight = f
        .app
        .request(Method::OPTIONS, "/v1/experience/decisions")
        .header(header::ORIGIN, "https://shop.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "*"
    );
    let elsewhere = f
        .app
        .get("/v1/admin/requests")
        .header(header::ORIGIN, "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        !elsewhere
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "the rest of the API keeps the same-origin rule"
    );

    let demo = f.app.get("/sdk/demo").send().await.unwrap();
    let csp = demo.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let page = demo.text().await.unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(
        page.matches(&format!("nonce=\"{nonce}\"")).count(),
        4,
        "{page}"
    );
}

/// The README's snippet carries the script's integrity hash: a changed script must change it.
#[test]
fn the_readme_snippet_has_the_scripts_integrity_hash() {
    use base64::Engine;
    use sha2::Digest;
    let script = std::fs::read(repo_path("templates/sdk/consentry.js")).unwrap();
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&script));
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    assert!(
        readme.contains(&format!("integrity=\"sha384-{hash}\"")),
        "set the README's integrity to sha384-{hash}"
    );
}

/// The main app cannot name a person with a visitor's id.
#[tokio::test]
async fn a_person_cannot_take_a_visitors_id() {
    let (f, _admin) = portal_fixture().await;
    let refused = f
        .app
        .send_event(
            "subject.upserted",
            json!({"external_id": format!("visitor:{VISITOR}"), "email": "x@example.com"}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let linked = f
        .app
        .post(&format!("/v1/subjects/visitor:{VISITOR}/visitors"))
        .bearer_auth(&f.service)
        .json(&json!({"visitor": VISITOR}))
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
