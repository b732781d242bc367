//! `spawn_app()` and the helpers every test uses.

use std::{path::PathBuf, time::Duration};

use consentry::{
    App, AppState,
    audit::Actor,
    auth::{Role, keys},
    config::{Config, Secret},
};
use futures_util::future::BoxFuture;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DbErr};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const TOKEN_SECRET: &str = "test-subject-token-secret-0123456789abcdef";
pub const WEBHOOK_SECRET: &str = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5";

/// A running service with its own database and data folder, stopped when dropped.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with a chance to change the configuration first.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir).await;
    customize(&mut config);
    let app = App::build(config).await.expect("the app builds");
    let base = format!("http://{}", app.addr());
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        state,
        dir,
        stop: Some(stop),
    }
}

/// The configuration every test starts from: a fresh database and data folder in `dir`, the
/// repository's policies and templates, both secrets, and no outbox dispatcher (tests drain
/// it themselves with `dispatcher.drain_once`).
pub async fn test_config(dir: &TempDir) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        database_url: Some(Secret::new(fresh_database_url(dir).await)),
        database_max_connections: 5,
        policies_dir: repo_path("policies"),
        templates_dir: repo_path("templates"),
        subject_token_secret: Some(Secret::new(TOKEN_SECRET)),
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        ..Config::default()
    };
    // Tests drive delivery themselves with `dispatcher.drain_once`.
    config.outbox.dispatch = false;
    config
}

/// A file or folder of the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A new, empty database for one test.
async fn fresh_database_url(dir: &TempDir) -> String {
    match std::env::var("CONSENTRY_TEST_DATABASE_URL") {
        Ok(server) if server.starts_with("postgres") => {
            let name = format!("consentry_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&server)
                .await
                .expect("CONSENTRY_TEST_DATABASE_URL is reachable");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("the test role may create databases");
            admin.close().await.ok();
            let mut url = url::Url::parse(&server).expect("a URL");
            url.set_path(&name);
            url.to_string()
        }
        _ => format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// `GET path` with `key`, which must answer 200: its JSON body.
    pub async fn read(&self, path: &str, key: &str) -> Value {
        json(
            self.get(path).bearer_auth(key).send().await.unwrap(),
            StatusCode::OK,
        )
        .await
    }

    /// Hands units `0..n` to the shared group commit at once, each keyed `unit-NN` and running
    /// `work(i, tx)`; their answers in order.
    pub async fn run_units<T>(
        &self,
        n: usize,
        work: impl for<'t> Fn(usize, &'t mut consentry::db::Tx) -> BoxFuture<'t, Result<T, DbErr>>
        + Clone
        + Send
        + 'static,
    ) -> Vec<Result<T, DbErr>>
    where
        T: Send + 'static,
    {
        futures_util::future::join_all((0..n).map(|i| {
            let (group, work) = (self.state.group.clone(), work.clone());
            async move {
                group
                    .run(format!("unit-{i:02}"), move |tx| work(i, tx))
                    .await
            }
        }))
        .await
    }

    /// Creates an API key directly, as `consentry keys create` does, and returns it.
    pub async fn key(&self, role: Role) -> String {
        let mut tx = self.state.db.begin().await.expect("transaction");
        let issued = keys::create(
            &mut tx,
            role,
            &format!("test-{}", role.as_str()),
            &Actor::Cli,
        )
        .await
        .expect("key created");
        tx.commit().await.expect("committed");
        issued.secret.expose().to_string()
    }
}

impl TestApp {
    /// Waits (up to 10 s) until the re-consent rollout of a published policy has finished, and
    /// returns the policy as admins see it.
    pub async fn rolled_out(&self, admin: &str, policy_id: &str) -> Value {
        for _ in 0..400 {
            let policy = self
                .get(&format!("/v1/admin/policies/{policy_id}"))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap();
            let policy = json(policy, StatusCode::OK).await;
            if policy["reconsent_done_at"].is_string() {
                return policy;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the re-consent rollout of {policy_id} did not finish");
    }
}

/// The id part of an API key (`csk_<id>_<secret>`).
pub fn key_id(key: &str) -> &str {
    key.split('_').nth(1).expect("csk_<id>_<secret>")
}

/// The secret part of an API key; it may itself contain `_`.
pub fn key_secret(key: &str) -> &str {
    key.splitn(3, '_').nth(2).expect("csk_<id>_<secret>")
}

/// Asserts a 2xx-or-given status and returns the JSON body.
pub async fn json(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "unexpected status; body: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Asserts an RFC 9457 problem with `status` and returns its body.
pub async fn problem(resp: Response, status: StatusCode) -> Value {
    let got = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "unexpected status; body: {body}");
    assert_eq!(content_type, "application/problem+json", "body: {body}");
    let problem: Value = serde_json::from_str(&body).expect("problem body is JSON");
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
    assert!(problem["title"].is_string(), "{problem}");
    assert!(problem["type"].is_string(), "{problem}");
    assert_eq!(
        problem["request_id"].as_str(),
        request_id.as_deref(),
        "the problem quotes the request id"
    );
    problem
}

/// A subject token for `external_id`, valid for ten minutes.
pub fn subject_token(external_id: &str) -> String {
    subject_token_expiring(external_id, chrono::Utc::now().timestamp() + 600)
}

/// A subject token for `external_id` that expires at `exp` (Unix seconds).
pub fn subject_token_expiring(external_id: &str, exp: i64) -> String {
    consentry::auth::token::SubjectTokens::new(Secret::new(TOKEN_SECRET), None, None)
        .mint(external_id, exp)
}

/// A purpose body for `POST /v1/admin/purposes`; tests override fields as they need.
pub fn purpose_body(key: &str) -> Value {
    serde_json::json!({
        "key": key,
        "texts": {
            "en": {"title": format!("Purpose {key}"), "description": "What it is for."},
            "zh-CN": {"title": format!("目的 {key}"), "description": "用途说明。"}
        },
        "legal_basis": "consent",
        "recipients": [{"name": "Northwind Cloud Inc.", "role": "processor", "country": "US"}],
        "data_categories": ["photos"],
        "retention_period": "P1Y"
    })
}

impl TestApp {
    /// Creates purposes through the admin API.
    pub async fn create_purposes(&self, admin: &str, bodies: &[Value]) {
        for body in bodies {
            let resp = self
                .post("/v1/admin/purposes")
                .bearer_auth(admin)
                .json(body)
                .send()
                .await
                .unwrap();
            json(resp, StatusCode::CREATED).await;
        }
    }

    /// Sets a subject's contact details and flags directly, as the subject events will.
    pub async fn set_subject(
        &self,
        external_id: &str,
        email: Option<&str>,
        locale: Option<&str>,
        jurisdiction: Option<&str>,
    ) {
        use consentry::subject::{self, model};
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let mut tx = self.state.db.begin().await.unwrap();
        let s = subject::find_or_create_locked(&mut tx, external_id)
            .await
            .unwrap();
        let mut row: model::ActiveModel = s.into();
        row.email = Set(email.map(str::to_string));
        row.locale = Set(locale.map(str::to_string));
        row.jurisdiction = Set(jurisdiction.map(str::to_string));
        row.update(&tx).await.unwrap();
        tx.commit().await.unwrap();
    }
}

/// Standard Webhooks headers signing `body` as `webhook_id` at `timestamp` with `secret`.
pub fn webhook_headers(
    secret: &str,
    webhook_id: &str,
    timestamp: i64,
    body: &[u8],
) -> reqwest::header::HeaderMap {
    let signature = standardwebhooks::Webhook::new(secret)
        .expect("a whsec_ secret")
        .sign(webhook_id, timestamp, body)
        .expect("a UTF-8 body");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("webhook-id", webhook_id.parse().unwrap());
    headers.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
    headers.insert("webhook-signature", signature.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    headers
}

/// The envelope of an event from the main app.
pub fn event_body(kind: &str, data: Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": kind,
        "occurred_at": chrono::Utc::now().to_rfc3339(),
        "data": data,
    }))
    .unwrap()
}

impl TestApp {
    /// Posts raw bytes to `/v1/hooks/events` with these headers.
    pub async fn post_event_raw(
        &self,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    ) -> Response {
        self.post("/v1/hooks/events")
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Sends an event signed with the test secret under a fresh `webhook-id`.
    pub async fn send_event(&self, kind: &str, data: Value) -> Response {
        let body = event_body(kind, data);
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let headers = webhook_headers(WEBHOOK_SECRET, &id, chrono::Utc::now().timestamp(), &body);
        self.post_event_raw(headers, body).await
    }
}
