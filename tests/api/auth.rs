//! The API-key matrix: no key, unknown key, revoked key, wrong role, right role.

use consentry::auth::{Role, keys};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{json, key_id, key_secret, problem, spawn_app};

#[tokio::test]
async fn a_request_without_a_key_is_a_401_problem() {
    let app = spawn_app().await;
    problem(
        app.get("/v1/admin/audit").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let basic = app
        .get("/v1/admin/audit")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    problem(basic, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn an_unknown_or_forged_key_is_a_401_problem() {
    let app = spawn_app().await;
    let real = app.key(Role::Admin).await;
    // Same id, different secret.
    let forged = format!(
        "csk_{}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        key_id(&real)
    );
    for key in ["not-a-key", "csk_0123456789abcdef_secret", forged.as_str()] {
        let resp = app
            .get("/v1/admin/audit")
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        problem(resp, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn a_revoked_key_is_a_401_problem() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    let ok = app
        .get("/v1/admin/audit")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let listed = app.read("/v1/admin/keys", &admin).await;
    let viewer_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked = json(
        app.request(Method::DELETE, &format!("/v1/admin/keys/{viewer_id}"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(revoked["revoked_at"].is_string());

    let resp = app
        .get("/v1/admin/audit")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn each_role_reaches_exactly_its_operations() {
    let app = spawn_app().await;
    // (role, may read the audit log, may manage keys)
    let matrix = [
        (Role::Service, false, false),
        (Role::Viewer, true, false),
        (Role::Reviewer, true, false),
        (Role::Admin, true, true),
    ];
    for (role, reads_audit, manages_keys) in matrix {
        let key = app.key(role).await;
        let audit = app
            .get("/v1/admin/audit")
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if reads_audit {
            assert_eq!(
                audit.status(),
                StatusCode::OK,
                "{role:?} reads the audit log"
            );
        } else {
            problem(audit, StatusCode::FORBIDDEN).await;
        }
        let create = app
            .post("/v1/admin/keys")
            .bearer_auth(&key)
            .json(&json!({ "name": "made-by-test", "role": "viewer" }))
            .send()
            .await
            .unwrap();
        if manages_keys {
            assert_eq!(
                create.status(),
                StatusCode::CREATED,
                "{role:?} creates keys"
            );
        } else {
            problem(create, StatusCode::FORBIDDEN).await;
        }
    }
}

#[tokio::test]
async fn a_created_key_is_shown_once_and_works() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let created = json(
        app.post("/v1/admin/keys")
            .bearer_auth(&admin)
            .json(&json!({ "name": "console", "role": "viewer" }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("csk_"));
    let resp = app
        .get("/v1/admin/audit")
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let listed = app
        .get("/v1/admin/keys")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let text = listed.text().await.unwrap();
    assert!(!text.contains(key_secret(key)), "secrets are never listed");
    assert!(!text.contains("secret_hash"));
}

#[tokio::test]
async fn revoking_an_unknown_key_is_a_404_problem() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    let resp = app
        .request(Method::DELETE, "/v1/admin/keys/0000000000000000")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn the_last_use_of_a_key_is_recorded() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;
    app.get("/v1/admin/audit")
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    let mut recorded = false;
    for _ in 0..50 {
        let keys = keys::list(app.state.db.conn()).await.unwrap();
        if keys
            .iter()
            .any(|k| k.role == Role::Viewer && k.last_used_at.is_some())
        {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(recorded, "last_used_at is set after a request");
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    let key = app.key(Role::Admin).await;
    let secret = key_secret(&key);
    let stored = keys::list(app.state.db.conn()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].secret_hash, secret);
    assert!(!stored[0].secret_hash.contains(secret));
    assert_eq!(stored[0].secret_hash.len(), 64);
}

/// With an audience and issuer configured, only tokens minted for this service open the
/// portal's API: the main app's other tokens, signed with the same secret, do not.
#[tokio::test]
async fn subject_tokens_must_name_this_service_when_it_says_so() {
    use consentry::{auth::token::SubjectTokens, config::Secret};
    let app = crate::support::spawn_app_with(|c| {
        c.subject_token_audience = Some("consentry-portal".into());
        c.subject_token_issuer = Some("https://app.example.com".into());
    })
    .await;
    let exp = chrono::Utc::now().timestamp() + 600;
    let me = |token: String| app.get("/v1/me").bearer_auth(token).send();
    let session_token = crate::support::subject_token("ann");
    assert_eq!(
        me(session_token).await.unwrap().status(),
        reqwest::StatusCode::UNAUTHORIZED
    );
    let portal_token = SubjectTokens::new(
        Secret::new(crate::support::TOKEN_SECRET),
        Some("consentry-portal".into()),
        Some("https://app.example.com".into()),
    )
    .mint("ann", exp);
    assert_eq!(
        me(portal_token).await.unwrap().status(),
        reqwest::StatusCode::OK
    );
}
