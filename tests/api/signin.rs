//! Sign-in that holds against someone who knows a staff member's password but not their phone,
//! and against a portal link found in a browser's history.

use consentry::{
    audit::Actor,
    auth::Role,
    retention::purge,
    staff::{self, lockout, totp},
};
use reqwest::StatusCode;
use sea_orm::EntityTrait;

use crate::support::{
    Browser, PASSWORD, Page, TestApp, code_of, spawn_app_with, staff_browser, subject_token,
};

/// An app behind a trusted proxy on loopback, so each browser can come from an address of its
/// own.
async fn behind_proxy() -> TestApp {
    spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.rate_limit.per_minute = 1000;
    })
    .await
}

/// The password step from `browser`; returns the page it answers with.
async fn password(browser: &Browser<'_>, email: &str, password: &str) -> Page {
    let form = browser.get("/console/signin").await;
    browser
        .submit(
            &form,
            "/console/signin",
            &[("email", email), ("password", password)],
        )
        .await
}

/// A code sent to the code step of `browser`'s pending session.
async fn code(browser: &Browser<'_>, code: &str) -> Page {
    let form = browser.get("/console/signin/code").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    browser
        .submit(&form, "/console/signin/code", &[("code", code)])
        .await
}

async fn user(app: &TestApp, email: &str) -> staff::StaffUser {
    staff::by_email(app.state.db.conn(), email)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn an_enrolled_account_is_never_shown_a_new_seed() {
    let app = behind_proxy().await;
    staff_browser(&app, "admin@example.com", Role::Admin).await;
    let before = user(&app, "admin@example.com").await;

    let attacker = Browser::at(&app, "198.51.100.9");
    let step = password(&attacker, "admin@example.com", PASSWORD).await;
    assert_eq!(step.location(), "/console/signin/code");
    let enrol = attacker.get("/console/signin/enrol").await;
    assert_eq!(enrol.status, StatusCode::SEE_OTHER, "{}", enrol.body);
    assert_eq!(enrol.location(), "/console/signin/code");
    assert!(!enrol.body.contains("otpauth://"));

    // A code from a seed of the attacker's own opens nothing.
    let form = attacker.get("/console/signin/code").await;
    let own_seed = [9u8; 20];
    let forged = totp::code(&own_seed, chrono::Utc::now().timestamp() as u64);
    let refused = attacker
        .submit(&form, "/console/signin/enrol", &[("code", &forged)])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(attacker.get("/console").await.location(), "/console/signin");
    let after = user(&app, "admin@example.com").await;
    assert_eq!(
        after.totp_secret, before.totp_secret,
        "the owner's seed stays"
    );
    assert_eq!(after.totp_enabled_at, before.totp_enabled_at);

    // Replacing the authenticator is a reset, and the reset is audited.
    let tx = app.state.db.begin().await.unwrap();
    let err = staff::start_totp(&tx, &app.state.config, &after).await;
    assert!(matches!(err, Err(staff::StaffError::Enrolled)), "{err:?}");
    staff::reset(&tx, &app.state.config, "admin@example.com", &Actor::Cli)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let reset = user(&app, "admin@example.com").await;
    assert!(reset.totp_secret.is_none() && reset.password_hash.is_none());
}

#[tokio::test]
async fn a_code_opens_one_session_only() {
    let app = behind_proxy().await;
    staff_browser(&app, "officer@example.com", Role::Reviewer).await;
    let first = Browser::at(&app, "203.0.113.5");
    let second = Browser::at(&app, "203.0.113.6");
    password(&first, "officer@example.com", PASSWORD).await;
    password(&second, "officer@example.com", PASSWORD).await;
    let seen = code_of(&app, "officer@example.com").await;
    let used = code(&first, &seen).await;
    assert_eq!(used.location(), "/console");
    let replayed = code(&second, &seen).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED);
    replayed.shows("That code is not right.");
    assert_eq!(second.get("/console").await.location(), "/console/signin");
}

#[tokio::test]
async fn guessing_codes_locks_however_often_the_password_is_given_again() {
    let app = behind_proxy().await;
    staff_browser(&app, "officer@example.com", Role::Reviewer).await;
    let attacker = Browser::at(&app, "198.51.100.20");
    let mut answers = Vec::new();
    for _ in 0..3 {
        let step = password(&attacker, "officer@example.com", PASSWORD).await;
        if step.status != StatusCode::SEE_OTHER {
            answers.push(step);
            continue;
        }
        for _ in 0..4 {
            answers.push(code(&attacker, "000000").await);
        }
    }
    assert!(
        answers
            .iter()
            .any(|p| p.body.contains("Too many failed attempts")),
        "12 wrong codes over 3 sign-ins lock"
    );
    // The right password and the right code no longer open the console from there.
    let step = password(&attacker, "officer@example.com", PASSWORD).await;
    assert_eq!(step.status, StatusCode::UNAUTHORIZED);
    step.shows("Too many failed attempts");
}

#[tokio::test]
async fn wrong_codes_sent_at_once_each_count() {
    let app = behind_proxy().await;
    staff_browser(&app, "officer@example.com", Role::Reviewer).await;
    let attacker = Browser::at(&app, "198.51.100.30");
    password(&attacker, "officer@example.com", PASSWORD).await;
    let form = attacker.get("/console/signin/code").await;
    let guesses = (0..lockout::FREE_ATTEMPTS).map(|i| {
        let guess = format!("{:06}", 111_111 * (i + 1) % 1_000_000);
        let form = &form;
        let attacker = &attacker;
        async move {
            attacker
                .submit(form, "/console/signin/code", &[("code", &guess)])
                .await
        }
    });
    futures_util::future::join_all(guesses).await;
    let right = code_of(&app, "officer@example.com").await;
    let refused = attacker
        .submit(&form, "/console/signin/code", &[("code", &right)])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    refused.shows("Too many failed attempts");
    let counted: i32 = lockout::entity::Entity::find()
        .all(app.state.db.conn())
        .await
        .unwrap()
        .iter()
        .filter(|row| row.network != lockout::ACCOUNT_WIDE)
        .map(|row| row.failures)
        .sum();
    assert_eq!(
        counted,
        lockout::FREE_ATTEMPTS,
        "every parallel guess counted"
    );
}

#[tokio::test]
async fn unknown_and_real_accounts_answer_alike_and_a_stranger_locks_only_their_network() {
    let app = behind_proxy().await;
    let owner = staff_browser(&app, "officer@example.com", Role::Reviewer).await;
    drop(owner);
    let stranger = Browser::at(&app, "198.51.100.40");
    let mut real = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..lockout::FREE_ATTEMPTS + 1 {
        real.push(password(&stranger, "officer@example.com", "not the password").await);
        unknown.push(password(&stranger, "nobody@example.com", "not the password").await);
    }
    for (r, u) in real.iter().zip(&unknown) {
        assert_eq!(r.status, u.status);
        let words = |p: &Page| {
            [
                "The email or password is not right.",
                "Too many failed attempts",
            ]
            .iter()
            .position(|w| p.body.contains(w))
        };
        assert_eq!(words(r), words(u), "the answers cannot tell the two apart");
    }
    real.last().unwrap().shows("Too many failed attempts");
    unknown.last().unwrap().shows("Too many failed attempts");

    // The owner, from the office, is not locked out by the stranger.
    let office = Browser::at(&app, "203.0.113.70");
    let step = password(&office, "officer@example.com", PASSWORD).await;
    assert_eq!(step.location(), "/console/signin/code");
    let right = code_of(&app, "officer@example.com").await;
    assert_eq!(code(&office, &right).await.location(), "/console");
    // ...and the owner's sign-in does not unlock the stranger's network.
    let again = password(&stranger, "officer@example.com", PASSWORD).await;
    again.shows("Too many failed attempts");
}

#[tokio::test]
async fn a_portal_link_signs_in_once_and_only_while_fresh() {
    let app = spawn_app_with(|_| {}).await;
    let token = subject_token("ann");
    let first = Browser::new(&app);
    let signed_in = first.get(&format!("/portal/session?token={token}")).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    // The same link, from history or a proxy log, opens nothing.
    let thief = Browser::new(&app);
    let replayed = thief.get(&format!("/portal/session?token={token}")).await;
    assert_eq!(replayed.status, StatusCode::GONE);
    assert!(replayed.is_html());
    replayed.shows("already been used");
    assert!(!thief.has_cookie("consentry_portal"));

    // A token issued more than five minutes ago is refused, however long its `exp`.
    let old = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({
            "sub": "ann",
            "iat": chrono::Utc::now().timestamp() - 600,
            "exp": chrono::Utc::now().timestamp() + 600,
        }),
        &jsonwebtoken::EncodingKey::from_secret(crate::support::TOKEN_SECRET.as_bytes()),
    )
    .unwrap();
    let stale = Browser::new(&app)
        .get(&format!("/portal/session?token={old}"))
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    stale.shows("not valid or has expired");
}

#[tokio::test]
async fn a_csrf_cookie_the_service_did_not_issue_is_not_trusted() {
    let app = spawn_app_with(|_| {}).await;
    let browser = Browser::new(&app);
    browser.sign_in("ann").await;
    // A sibling subdomain plants a seed it knows, and forges the token that seed derives.
    let planted = "p".repeat(43);
    browser.plant_cookie("consentry_csrf", &planted);
    let forged = consentry::web::csrf::token(&planted);
    let refused = browser
        .post("/portal/signout", &[("csrf", forged.as_str())])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.is_html());
}

#[tokio::test]
async fn behind_https_cookies_are_host_only_and_browsers_keep_to_https() {
    let app = spawn_app_with(|c| {
        c.controller.portal_url = "https://privacy.example.com/portal".into();
    })
    .await;
    let page = Browser::new(&app).get("/console/signin").await;
    let cookies: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(!cookies.is_empty());
    for cookie in &cookies {
        assert!(cookie.starts_with("__Host-"), "{cookie}");
        assert!(
            cookie.contains("; Path=/;") && cookie.contains("Secure"),
            "{cookie}"
        );
    }
    let hsts = page.headers["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age="), "{hsts}");
    // Over plain http, neither.
    let plain = spawn_app_with(|_| {}).await;
    let page = Browser::new(&plain).get("/console/signin").await;
    assert!(page.headers.get("strict-transport-security").is_none());
}

#[tokio::test]
async fn expired_console_sessions_and_old_failures_are_purged() {
    use sea_orm::{ColumnTrait, QueryFilter, prelude::Expr};
    let app = behind_proxy().await;
    staff_browser(&app, "officer@example.com", Role::Reviewer).await;
    password(
        &Browser::at(&app, "198.51.100.50"),
        "officer@example.com",
        "wrong one",
    )
    .await;
    let conn = app.state.db.conn();
    let past = chrono::Utc::now() - chrono::TimeDelta::days(2);
    staff::sessions::entity::Entity::update_many()
        .col_expr(
            staff::sessions::entity::Column::ExpiresAt,
            Expr::value(past),
        )
        .filter(staff::sessions::entity::Column::UserId.is_not_null())
        .exec(conn)
        .await
        .unwrap();
    lockout::entity::Entity::update_many()
        .col_expr(lockout::entity::Column::UpdatedAt, Expr::value(past))
        .filter(lockout::entity::Column::Failures.gt(0))
        .exec(conn)
        .await
        .unwrap();
    let state = &app.state;
    let run = purge::start(
        &state.db,
        &state.config,
        false,
        chrono::Utc::now(),
        &Actor::System,
    )
    .await
    .unwrap();
    let run = consentry::actions::purges::execute(&state.db, &state.config, run)
        .await
        .unwrap();
    let report: purge::Report = serde_json::from_str(&run.report).unwrap();
    assert!(
        report.own_data.console_sessions >= 1,
        "{:?}",
        report.own_data
    );
    assert_eq!(report.own_data.sign_in_failures, 1, "{:?}", report.own_data);
    assert!(
        staff::sessions::entity::Entity::find()
            .all(conn)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        lockout::entity::Entity::find()
            .all(conn)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_form_token_from_before_a_sign_in_does_not_work_after_it() {
    let app = spawn_app_with(|_| {}).await;
    let browser = Browser::new(&app);
    let before = browser.get("/portal/requests/by-email").await.csrf();
    let home = browser.sign_in("ann").await;
    let refused = browser
        .post("/portal/signout", &[("csrf", before.as_str())])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    refused.shows("This form has expired");
    // The page's own token works.
    let out = browser.submit(&home, "/portal/signout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_console_form_is_checked_before_its_handler_runs() {
    let app = behind_proxy().await;
    let admin = staff_browser(&app, "admin@example.com", Role::Admin).await;
    for path in [
        "/console/purges",
        "/console/keys",
        "/console/signout",
        "/console/policies",
    ] {
        let refused = admin.post(path, &[("dry_run", "1")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(refused.is_html(), "{path}");
    }
    let runs = consentry::retention::purge::list(app.state.db.conn(), 10)
        .await
        .unwrap();
    assert!(runs.is_empty(), "nothing ran");
    assert_eq!(
        admin.get("/console").await.status,
        StatusCode::OK,
        "still signed in"
    );
}
