//! The binary as an operator meets it: zero-configuration start, graceful stop, configuration
//! errors, and the `keys` commands.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use consentry::auth::Role;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::support::{
    TestApp, key_id, key_secret, purpose_body, spawn_app, spawn_app_with, subject_token,
};

const BIN: &str = env!("CARGO_BIN_EXE_consentry");

/// The binary with no `CONSENTRY_*` or `DATABASE_URL` from the environment.
fn bare_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("CONSENTRY_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The binary pointed at the test app's database.
pub(crate) fn command_for(app: &TestApp) -> Command {
    let mut cmd = bare_command();
    cmd.env("DATABASE_URL", app.state.config.database_url().expose())
        .env("CONSENTRY_DATA_DIR", app.dir.path().join("data"));
    cmd
}

/// Copies a folder of the repository, as an operator would ship `templates/` and `policies/`.
fn copy_repo_folder(name: &str, to: &std::path::Path) {
    let from = crate::support::repo_path(name);
    for entry in walk(&from) {
        let target = to.join(name).join(entry.strip_prefix(&from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, target).unwrap();
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[tokio::test]
async fn a_bare_start_creates_the_sqlite_file_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    copy_repo_folder("templates", dir.path());
    copy_repo_folder("policies", dir.path());
    let mut child = bare_command()
        .current_dir(dir.path())
        .env("CONSENTRY_LISTEN", "127.0.0.1:0")
        .env("CONSENTRY_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut start_up = Vec::new();
    let address = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a start-up log line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            // One line says what runs: version, database, mail and the jobs' next runs.
            for field in [
                "\"version\"",
                "\"database\":\"Sqlite\"",
                "\"mail\":\"folder\"",
                "minor_sweep 20",
            ] {
                assert!(line.contains(field), "{field} in {line}");
            }
            break rest.split(';').next().unwrap().to_string();
        }
        start_up.push(line);
    };
    assert!(
        start_up.iter().all(|l| !l.contains("tokio_cron_scheduler")),
        "libraries speak only when they warn: {start_up:?}"
    );
    assert!(
        start_up
            .iter()
            .any(|l| l.contains("WARN") && l.contains("set requests.export_key")),
        "a key beside the packages it protects is worth a warning: {start_up:?}"
    );
    let resp = reqwest::get(format!("http://{address}/health/ready"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(dir.path().join("data/consentry.db").exists());
    assert!(
        dir.path().join("data/mail").is_dir(),
        "mail goes to ./data/mail"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "a SIGTERM stops the service cleanly: {status}"
    );
}

#[test]
fn a_bad_database_url_exits_with_2_and_names_the_setting() {
    let out = bare_command()
        .env("DATABASE_URL", "nonsense://x")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn bad_settings_exit_with_2_and_name_the_setting() {
    let cases = [
        ("CONSENTRY_LISTEN", "not-an-address", "CONSENTRY_LISTEN"),
        (
            "CONSENTRY_WEBHOOK_SECRET",
            "plain-secret",
            "CONSENTRY_WEBHOOK_SECRET",
        ),
        (
            "CONSENTRY_SUBJECT_TOKEN_SECRET",
            "short",
            "CONSENTRY_SUBJECT_TOKEN_SECRET",
        ),
        ("CONSENTRY_LOG__FORMAT", "xml", "CONSENTRY_LOG__FORMAT"),
    ];
    for (key, value, named) in cases {
        let out = bare_command()
            .env(key, value)
            .arg("migrate")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(named), "{key}: {stderr}");
        if key.ends_with("SECRET") {
            assert!(!stderr.contains(value), "secrets never print: {stderr}");
        }
    }
}

/// Variables a platform or a script sets under the prefix do not stop the service: each is
/// named once in a warning, with the setting it was probably meant to be. In the file, where a
/// typo is the user's own, an unknown name still stops it.
#[tokio::test]
async fn unknown_variables_are_ignored_with_a_warning_but_unknown_file_settings_stop_it() {
    let app = spawn_app().await;
    let out = command_for(&app)
        .env("CONSENTRY_PORT", "tcp://10.0.0.1:8080")
        .env("CONSENTRY_SERVICE_HOST", "10.0.0.1")
        .env("CONSENTRY_MAIL__FORM", "privacy@example.com")
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for named in [
        "CONSENTRY_PORT is not a setting and was ignored",
        "CONSENTRY_SERVICE_HOST is not a setting and was ignored",
        "CONSENTRY_MAIL__FORM is not a setting and was ignored; did you mean CONSENTRY_MAIL__FROM?",
    ] {
        assert_eq!(stderr.matches(named).count(), 1, "{named}: {stderr}");
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consentry.toml");
    std::fs::write(&file, "[mail]\nform = \"privacy@example.com\"\n").unwrap();
    let out = command_for(&app)
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("form"), "{stderr}");
}

#[test]
fn a_missing_config_file_exits_with_2() {
    let out = bare_command()
        .args(["--config", "/nonexistent/consentry.toml", "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn keys_create_prints_the_key_alone_on_the_last_line() {
    // Another process revokes the key, so this server must not trust a cached row.
    let app = spawn_app_with(|c| c.key_cache_seconds = 0).await;
    let out = command_for(&app)
        .args(["keys", "create", "--role", "viewer", "--name", "ops"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim();
    assert!(key.starts_with("csk_") && !key.contains(' '));
    let resp = app
        .get("/v1/admin/audit")
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let audit = app
        .get("/v1/admin/audit")
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = audit.json().await.unwrap();
    assert_eq!(body["items"][0]["actor"], "cli");

    let list = command_for(&app).args(["keys", "list"]).output().unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("ops") && listed.contains("viewer"));
    assert!(!listed.contains(key_secret(key)), "no secrets listed");

    let id = key_id(key);
    let revoke = command_for(&app)
        .args(["keys", "revoke", id])
        .output()
        .unwrap();
    assert!(revoke.status.success());
    let resp = app
        .get("/v1/admin/audit")
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_test_suites_own_variables_are_not_settings() {
    let app = spawn_app().await;
    let out = command_for(&app)
        .env("CONSENTRY_TEST_PYTHON", "/usr/bin/python3")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keys_create_refuses_an_unknown_role() {
    let out = bare_command()
        .args(["keys", "create", "--role", "root", "--name", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
}

#[tokio::test]
async fn mail_test_sends_through_smtp_and_reports_the_answer() {
    let sink = crate::support::SmtpSink::start().await;
    let out = bare_command()
        .env("CONSENTRY_SMTP_URL", sink.url())
        .args(["mail", "test", "--to", "person@example.com"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("250"));
    let mail = sink.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].to.contains("person@example.com"));
}

#[test]
fn a_missing_template_stops_the_service_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare_command()
        .current_dir(dir.path())
        .env("CONSENTRY_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("template") && stderr.contains("missing"),
        "{stderr}"
    );
}

/// `backup` copies a live SQLite database, while consents are being written, into a file that
/// opens on its own and whose consent and audit chains verify; it refuses to overwrite, and on
/// PostgreSQL names the tool to use instead.
#[tokio::test]
async fn backup_copies_the_live_database_or_names_pg_dump() {
    let app = spawn_app().await;
    let admin = app.key(Role::Admin).await;
    app.create_purposes(&admin, &[purpose_body("analytics")])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consentry-backup.db");
    let mut backup = command_for(&app);
    backup.arg("backup").arg(&file);
    if app.state.db.kind() == consentry::config::DatabaseKind::Postgres {
        let out = backup.output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
        return;
    }
    // Consents keep changing while the copy is taken.
    let writes = {
        let (client, url) = (app.client.clone(), app.url("/v1/me/consents/analytics"));
        tokio::spawn(async move {
            for i in 0..40 {
                let resp = client
                    .put(&url)
                    .bearer_auth(subject_token(&format!("b-{}", i % 4)))
                    .json(&json!({"granted": i % 8 < 4, "policy_version": 2}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let out = tokio::task::spawn_blocking(move || backup.output().unwrap())
        .await
        .unwrap();
    writes.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let copy = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", file.display()))
        .await
        .unwrap();
    let audit = consentry::audit::verify(&copy).await.unwrap();
    assert!(
        audit.checked > 0 && audit.broken.is_none(),
        "{:?}",
        audit.broken
    );
    let people = consentry::subject::model::Entity::find()
        .all(&copy)
        .await
        .unwrap();
    for person in &people {
        let chain = consentry::consent::ledger::verify(&copy, person)
            .await
            .unwrap();
        assert!(chain.ok, "{}: {:?}", person.external_id, chain.problem);
    }
    let again = command_for(&app).arg("backup").arg(&file).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}
