//! The age gate, guardian consent for minors, a minor coming of age, and the automatic erasure
//! request for a minor whose guardian never consented.

use chrono::{Months, NaiveDate, TimeDelta, Utc};
use consentry::{
    auth::Role,
    guardian::entity as guardian_tokens,
    subject::{self, model as subjects},
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, prelude::Expr};
use serde_json::{Value, json};

use crate::support::{
    SmtpSink, TestApp, json, problem, purpose_body, spawn_app, spawn_app_with, subject_token,
};

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The date `years` years before today (28 February when today is 29 February and the year
/// is not a leap year).
pub(crate) fn years_ago(years: u32) -> NaiveDate {
    today() - Months::new(12 * years)
}

async fn gate(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/age-gate/check")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_age_gate_follows_each_countrys_threshold_to_the_day() {
    let app = spawn_app().await;
    let table = [
        ("DE", 16, "gdpr"),
        ("NL", 16, "gdpr"),
        ("IE", 16, "gdpr"),
        ("PL", 16, "gdpr"),
        ("FR", 15, "gdpr"),
        ("CZ", 15, "gdpr"),
        ("IT", 14, "gdpr"),
        ("ES", 14, "gdpr"),
        ("AT", 14, "gdpr"),
        ("DK", 15, "gdpr"),
        ("BE", 13, "gdpr"),
        ("SE", 13, "gdpr"),
        ("IS", 13, "gdpr"),
        ("LI", 16, "gdpr"),
        ("NO", 13, "gdpr"),
        ("GB", 13, "uk_gdpr"),
        ("CN", 14, "pipl"),
        ("US", 13, "coppa"),
        ("JP", 16, "default"),
    ];
    for (country, threshold, law) in table {
        // Born exactly `threshold` years ago: the birthday is today, so they may consent.
        let birthday_today = years_ago(threshold);
        let answer = json(
            gate(
                &app,
                json!({"country": country, "birth_date": birthday_today}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            answer,
            json!({"age": threshold, "threshold": threshold, "law": law, "outcome": "allowed"}),
            "{country} on the birthday"
        );
        // One day younger: the birthday is tomorrow.
        let answer = json(
            gate(
                &app,
                json!({"country": country.to_lowercase(), "birth_date": birthday_today + TimeDelta::days(1)}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(answer["age"], threshold - 1, "{country} the day before");
        assert_eq!(
            answer["outcome"], "guardian_required",
            "{country} the day before"
        );
    }
}

#[tokio::test]
async fn the_age_gate_takes_declared_bands_and_refuses_bad_questions() {
    let app = spawn_app().await;
    let band = |country: &str, band: &str| json!({"country": country, "age_band": band});
    let us = json(gate(&app, band("US", "13_15")).await, StatusCode::OK).await;
    assert_eq!(us["outcome"], "allowed");
    assert!(us.get("age").is_none(), "a band has no exact age");
    let de = json(gate(&app, band("DE", "13_15")).await, StatusCode::OK).await;
    assert_eq!(de["outcome"], "guardian_required");
    let adult = json(gate(&app, band("CN", "18_plus")).await, StatusCode::OK).await;
    assert_eq!(adult["outcome"], "allowed");
    // A band that straddles the threshold cannot show the person is old enough.
    let fr = json(gate(&app, band("FR", "13_15")).await, StatusCode::OK).await;
    assert_eq!(fr["outcome"], "guardian_required");

    for bad in [
        json!({"country": "DE"}),
        json!({"country": "DE", "birth_date": "2000-01-01", "age_band": "18_plus"}),
        json!({"country": "DE", "birth_date": today() + TimeDelta::days(2)}),
        json!({"country": "Germany", "birth_date": "2000-01-01"}),
        json!({"country": "DE", "birth_date": "01/01/2000"}),
        json!({"country": "DE", "age_band": "ancient"}),
    ] {
        problem(gate(&app, bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let stored = subjects::Entity::find()
        .all(app.state.db.conn())
        .await
        .unwrap();
    assert!(stored.is_empty(), "the gate stores nothing");
}

#[tokio::test]
async fn a_birthday_on_29_february_is_reached_on_1_march_in_common_years() {
    use consentry::age::{AgeEvidence, Outcome, assess};
    let config = consentry::config::AgeConfig::default();
    let born = NaiveDate::from_ymd_opt(2012, 2, 29).unwrap();
    let on = |y, m, d| {
        assess(
            &config,
            "CN",
            AgeEvidence::BirthDate(born),
            NaiveDate::from_ymd_opt(y, m, d).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(on(2026, 2, 28).age, Some(13));
    assert_eq!(on(2026, 2, 28).outcome, Outcome::GuardianRequired);
    assert_eq!(on(2026, 3, 1).age, Some(14));
    assert_eq!(on(2026, 3, 1).outcome, Outcome::Allowed);
    assert_eq!(on(2028, 2, 28).age, Some(15));
    assert_eq!(on(2028, 2, 29).age, Some(16));
}

#[tokio::test]
async fn thresholds_can_be_overridden_in_config() {
    let app = spawn_app_with(|c| {
        c.age.thresholds.insert("FR".into(), 13);
        c.age.default_threshold = 18;
    })
    .await;
    let fr = json(
        gate(&app, json!({"country": "FR", "birth_date": years_ago(13)})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(fr["law"], "configured");
    assert_eq!(fr["outcome"], "allowed");
    let jp = json(
        gate(&app, json!({"country": "JP", "birth_date": years_ago(17)})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(jp["threshold"], 18);
    assert_eq!(jp["outcome"], "guardian_required");
}

#[tokio::test]
async fn the_age_gate_is_rate_limited_per_client() {
    let app = spawn_app_with(|c| c.rate_limit.per_minute = 3).await;
    let body = json!({"country": "DE", "birth_date": "2000-01-01"});
    for _ in 0..3 {
        json(gate(&app, body.clone()).await, StatusCode::OK).await;
    }
    let limited = gate(&app, body).await;
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS).await;
}

/// An app with a real SMTP server, two consent-based purposes and a contract purpose.
pub(crate) async fn family_app() -> (TestApp, SmtpSink, String, String) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(|c| {
        c.smtp_url = Some(consentry::config::Secret::new(url));
        c.mail.tls = Some(consentry::config::SmtpTls::None);
    })
    .await;
    let admin = app.key(Role::Admin).await;
    let mut account = purpose_body("account");
    account["legal_basis"] = json!("contract");
    account["required"] = json!(true);
    app.create_purposes(
        &admin,
        &[
            purpose_body("photo_tagging"),
            purpose_body("marketing_email"),
            account,
        ],
    )
    .await;
    let service = app.key(Role::Service).await;
    (app, sink, admin, service)
}

pub(crate) async fn upsert(
    app: &TestApp,
    external_id: &str,
    country: &str,
    birth_date: NaiveDate,
) -> Value {
    json(
        app.send_event(
            "subject.upserted",
            json!({"external_id": external_id, "email": format!("{external_id}@example.com"),
                   "locale": "en", "jurisdiction": country, "birth_date": birth_date}),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

async fn me(app: &TestApp, who: &str) -> Value {
    json(
        app.get("/v1/me")
            .bearer_auth(subject_token(who))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

async fn grant_own(app: &TestApp, who: &str, purpose: &str) -> reqwest::Response {
    app.request(reqwest::Method::PUT, &format!("/v1/me/consents/{purpose}"))
        .bearer_auth(subject_token(who))
        .json(&json!({"granted": true, "policy_version": 2}))
        .send()
        .await
        .unwrap()
}

async fn check(app: &TestApp, service: &str, who: &str, purpose: &str) -> Value {
    app.read(&format!("/v1/subjects/{who}/consents/{purpose}"), service)
        .await
}

pub(crate) async fn ask_guardian(app: &TestApp, who: &str, guardian: &str) -> reqwest::Response {
    app.post("/v1/me/guardian")
        .bearer_auth(subject_token(who))
        .json(&json!({"guardian_email": guardian}))
        .send()
        .await
        .unwrap()
}

/// Delivers the outbox and returns the token from the guardian's email.
pub(crate) async fn guardian_token(app: &TestApp, sink: &SmtpSink, guardian: &str) -> String {
    app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    let before = sink.count();
    let mail = sink.wait_for(before.max(1)).await;
    let message = mail
        .iter()
        .rev()
        .find(|m| m.to.contains(guardian))
        .expect("the guardian got an email");
    let start = message.text.find("token=").expect("a link with a token") + "token=".len();
    message.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// A minor of `age` in `country` whose guardian was asked; returns the token from the
/// guardian's email.
pub(crate) async fn guardian_link(
    app: &TestApp,
    sink: &SmtpSink,
    who: &str,
    country: &str,
    age: u32,
    guardian: &str,
) -> String {
    upsert(app, who, country, years_ago(age)).await;
    json(ask_guardian(app, who, guardian).await, StatusCode::OK).await;
    guardian_token(app, sink, guardian).await
}

/// The consent history the person's portal shows.
pub(crate) async fn history(app: &TestApp, who: &str) -> Vec<Value> {
    json(
        app.get("/v1/me/consents/history")
            .bearer_auth(subject_token(who))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

pub(crate) async fn confirm(app: &TestApp, token: &str, decisions: Value) -> reqwest::Response {
    app.post("/v1/guardian/confirm")
        .json(&json!({"token": token, "decisions": decisions, "policy_version": 2}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_minors_grant_is_refused_until_a_guardian_consents() {
    let (app, sink, _admin, service) = family_app().await;
    let answer = upsert(&app, "kid", "DE", years_ago(11)).await;
    assert_eq!(answer["result"]["age_status"], "minor_guardian_pending");

    let refused = problem(
        grant_own(&app, "kid", "photo_tagging").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["reason"], "guardian_required");
    let answer = check(&app, &service, "kid", "photo_tagging").await;
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["reason"], "guardian_required");
    let profile = me(&app, "kid").await;
    assert_eq!(profile["age_status"], "minor_guardian_pending");
    assert_eq!(profile["may_confirm_own_consent"], false);
    assert_eq!(profile["email"], "kid@example.com");

    let asked = json(
        ask_guardian(&app, "kid", "parent@example.com").await,
        StatusCode::OK,
    )
    .await;
    let expires: chrono::DateTime<Utc> = asked["expires_at"].as_str().unwrap().parse().unwrap();
    let in_seven_days = Utc::now() + TimeDelta::days(7);
    assert!((expires - in_seven_days).num_seconds().abs() < 60);
    let token = guardian_token(&app, &sink, "parent@example.com").await;
    let stored = guardian_tokens::Entity::find()
        .all(app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(
        stored[0].token_hash, token,
        "only a hash of the token is kept"
    );

    let recorded = json(
        confirm(
            &app,
            &token,
            json!([{"purpose": "photo_tagging", "granted": true},
                   {"purpose": "marketing_email", "granted": false}]),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(recorded.as_array().unwrap().len(), 2);
    assert_eq!(recorded[0]["status"], "granted");
    assert_eq!(recorded[1]["status"], "denied");

    let answer = check(&app, &service, "kid", "photo_tagging").await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(
        check(&app, &service, "kid", "marketing_email").await["allowed"],
        false
    );
    let profile = me(&app, "kid").await;
    assert_eq!(profile["age_status"], "minor_guardian_verified");
    assert_eq!(profile["guardian_email"], "parent@example.com");
    assert!(profile["guardian_verified_at"].is_string());
    let history = json(
        app.get("/v1/me/consents/history")
            .bearer_auth(subject_token("kid"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "guardian" && e["channel"] == "guardian_link")
    );

    // The link works once.
    let reused = problem(
        confirm(
            &app,
            &token,
            json!([{"purpose": "marketing_email", "granted": true}]),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(reused["reason"], "token_used");
    assert_eq!(
        check(&app, &service, "kid", "marketing_email").await["allowed"],
        false
    );
    problem(
        confirm(
            &app,
            "x".repeat(43).as_str(),
            json!([{"purpose": "photo_tagging", "granted": true}]),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // A verified minor still cannot grant alone; withdrawing is always possible.
    problem(
        grant_own(&app, "kid", "marketing_email").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let withdraw = app
        .request(reqwest::Method::PUT, "/v1/me/consents/photo_tagging")
        .bearer_auth(subject_token("kid"))
        .json(&json!({"granted": false, "policy_version": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(withdraw, StatusCode::OK).await["status"], "withdrawn");
}

#[tokio::test]
async fn an_expired_guardian_link_records_nothing() {
    let (app, sink, _admin, service) = family_app().await;
    upsert(&app, "late", "US", years_ago(9)).await;
    json(
        ask_guardian(&app, "late", "mum@example.com").await,
        StatusCode::OK,
    )
    .await;
    let token = guardian_token(&app, &sink, "mum@example.com").await;
    guardian_tokens::Entity::update_many()
        .col_expr(
            guardian_tokens::Column::ExpiresAt,
            Expr::value(Utc::now() - TimeDelta::seconds(1)),
        )
        .exec(app.state.db.conn())
        .await
        .unwrap();
    let expired = problem(
        confirm(
            &app,
            &token,
            json!([{"purpose": "photo_tagging", "granted": true}]),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(expired["reason"], "token_expired");
    assert_eq!(
        check(&app, &service, "late", "photo_tagging").await["allowed"],
        false
    );
    assert_eq!(
        me(&app, "late").await["age_status"],
        "minor_guardian_pending"
    );
}

#[tokio::test]
async fn only_a_minor_waiting_for_a_guardian_can_ask_for_one() {
    let (app, _sink, _admin, _service) = family_app().await;
    upsert(&app, "grown", "DE", years_ago(30)).await;
    let refused = problem(
        ask_guardian(&app, "grown", "someone@example.com").await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["reason"], "guardian_not_needed");
    upsert(&app, "young", "DE", years_ago(12)).await;
    let invalid = problem(
        ask_guardian(&app, "young", "not an address").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid["errors"][0]["field"], "guardian_email");
}

#[tokio::test]
async fn the_main_app_can_name_the_guardian_in_the_subject_event() {
    let (app, sink, _admin, service) = family_app().await;
    let answer = json(
        app.send_event(
            "subject.upserted",
            json!({"external_id": "teen", "locale": "en", "jurisdiction": "IT",
                   "birth_date": years_ago(12), "guardian_email": "dad@example.com"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["result"]["guardian_requested"], true);
    let token = guardian_token(&app, &sink, "dad@example.com").await;
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
    assert_eq!(
        check(&app, &service, "teen", "photo_tagging").await["allowed"],
        true
    );
}

#[tokio::test]
async fn a_childs_data_under_pipl_needs_separate_consent_for_each_purpose() {
    let (app, _sink, admin, _service) = family_app().await;
    upsert(&app, "xiaoming", "CN", years_ago(10)).await;
    let correct = |decisions: Value| {
        app.post("/v1/admin/subjects/xiaoming/consents")
            .bearer_auth(&admin)
            .json(&json!({"decisions": decisions, "policy_version": 2,
                          "reason": "guardian consent on paper, scanned in ticket 88"}))
            .send()
    };
    let bundled = problem(
        correct(json!([{"purpose": "photo_tagging", "granted": true},
                       {"purpose": "marketing_email", "granted": true}]))
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(bundled["reason"], "separate_consent");
    json(
        correct(json!([{"purpose": "photo_tagging", "granted": true}]))
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn a_guardian_in_china_grants_each_purpose_on_its_own_like_anyone_else() {
    let (app, sink, _admin, _service) = family_app().await;
    let token = guardian_link(&app, &sink, "xiaohong", "CN", 10, "mama@example.com").await;
    let bundled = problem(
        confirm(
            &app,
            &token,
            json!([{"purpose": "photo_tagging", "granted": true},
                   {"purpose": "marketing_email", "granted": true}]),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(bundled["reason"], "separate_consent");
    assert!(
        bundled["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was recorded"),
        "{bundled}"
    );
    assert!(history(&app, "xiaohong").await.is_empty());
    json(
        confirm(
            &app,
            &token,
            json!([{"purpose": "photo_tagging", "granted": true},
                   {"purpose": "marketing_email", "granted": false}]),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn a_minor_who_comes_of_age_confirms_their_own_consent() {
    let (app, _sink, _admin, service) = family_app().await;
    upsert(&app, "almost", "DE", years_ago(15)).await;
    // A year passes: move the birth date back rather than the clock.
    let conn = app.state.db.conn();
    subjects::Entity::update_many()
        .col_expr(subjects::Column::BirthDate, Expr::value(years_ago(16)))
        .filter(subjects::Column::ExternalId.eq("almost"))
        .exec(conn)
        .await
        .unwrap();
    // The main app repeating what it knows does not change the status by itself.
    let answer = upsert(&app, "almost", "DE", years_ago(16)).await;
    assert_eq!(answer["result"]["age_status"], "minor_guardian_pending");
    let profile = me(&app, "almost").await;
    assert_eq!(profile["age_status"], "minor_guardian_pending");
    assert_eq!(profile["may_confirm_own_consent"], true);
    assert_eq!(
        check(&app, &service, "almost", "photo_tagging").await["allowed"],
        false
    );

    json(
        grant_own(&app, "almost", "photo_tagging").await,
        StatusCode::OK,
    )
    .await;
    let profile = me(&app, "almost").await;
    assert_eq!(profile["age_status"], "adult");
    assert_eq!(profile["may_confirm_own_consent"], false);
    assert_eq!(
        check(&app, &service, "almost", "photo_tagging").await["allowed"],
        true
    );
}

#[tokio::test]
async fn a_minor_without_a_guardian_gets_an_erasure_request_after_the_grace_period() {
    let app = spawn_app().await;
    let viewer = app.key(Role::Viewer).await;
    upsert(&app, "waiting", "FR", years_ago(12)).await;
    upsert(&app, "recent", "FR", years_ago(12)).await;
    json(
        app.send_event(
            "data.recorded",
            json!({"external_id": "waiting", "item_ref": "photo-1", "category": "photos"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    subjects::Entity::update_many()
        .col_expr(
            subjects::Column::MinorPendingSince,
            Expr::value(Utc::now() - TimeDelta::days(8)),
        )
        .filter(subjects::Column::ExternalId.eq("waiting"))
        .exec(app.state.db.conn())
        .await
        .unwrap();

    let grace = TimeDelta::days(7);
    assert_eq!(
        consentry::actions::minors::sweep_unverified(&app.state.db, &app.state.config, grace)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        consentry::actions::minors::sweep_unverified(&app.state.db, &app.state.config, grace)
            .await
            .unwrap(),
        0,
        "each minor is handled once"
    );
    let requests = |who: &'static str| {
        let app = &app;
        let viewer = &viewer;
        async move { app.read(&format!("/v1/admin/subjects/{who}"), viewer).await["requests"].clone() }
    };
    let opened = requests("waiting").await;
    assert_eq!(opened.as_array().unwrap().len(), 1);
    assert_eq!(opened[0]["type"], "erase");
    assert_eq!(opened[0]["source"], "automatic");
    assert_eq!(opened[0]["status"], "verified");
    assert_eq!(
        requests("recent").await,
        json!([]),
        "still within the grace period"
    );
}

#[tokio::test]
async fn the_automatic_erasure_of_a_minor_tells_the_guardian_or_the_child_in_plain_words() {
    let (app, sink, _admin, _service) = family_app().await;
    json(
        app.send_event(
            "subject.upserted",
            json!({"external_id": "ada", "email": "ada@example.com", "locale": "en",
                   "jurisdiction": "FR", "birth_date": years_ago(12),
                   "guardian_email": "ada.mum@example.com"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    upsert(&app, "bo", "FR", years_ago(12)).await;
    subjects::Entity::update_many()
        .col_expr(
            subjects::Column::MinorPendingSince,
            Expr::value(Utc::now() - TimeDelta::days(8)),
        )
        .exec(app.state.db.conn())
        .await
        .unwrap();
    consentry::actions::minors::sweep_unverified(
        &app.state.db,
        &app.state.config,
        TimeDelta::days(7),
    )
    .await
    .unwrap();
    app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    let mails = sink.wait_for(3).await;
    let to = |who: &str| -> Vec<_> { mails.iter().filter(|m| m.to.contains(who)).collect() };
    let mum = to("ada.mum@example.com");
    assert_eq!(mum.len(), 2, "the consent link earlier, now the erasure");
    assert!(
        mum.iter()
            .any(|m| m.text.contains("deleting the child's data")),
        "{mum:?}"
    );
    assert!(
        to("ada@example.com").is_empty(),
        "the child did not ask for it"
    );
    let bo = to("bo@example.com");
    assert_eq!(bo.len(), 1);
    assert!(
        bo[0].text.contains("You did not ask for this"),
        "{}",
        bo[0].text
    );
    assert!(!bo[0].text.contains("erase request"));
}

#[tokio::test]
async fn the_scheduler_runs_the_minor_sweep() {
    let app = spawn_app_with(|c| {
        c.age.guardian_grace_days = 0;
        c.age.sweep_schedule = "* * * * * *".into();
    })
    .await;
    upsert(&app, "sched", "ES", years_ago(10)).await;
    let subject = subject::find(app.state.db.conn(), "sched")
        .await
        .unwrap()
        .unwrap();
    for _ in 0..100 {
        let open = consentry::request::of_subject(app.state.db.conn(), &subject.id)
            .await
            .unwrap();
        if !open.is_empty() {
            assert_eq!(open.len(), 1);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the scheduled sweep did not open a request within 10 s");
}

#[tokio::test]
async fn profiles_are_shown_only_to_their_owner_and_to_viewers() {
    let app = spawn_app().await;
    upsert(&app, "private", "DE", years_ago(40)).await;
    let service = app.key(Role::Service).await;
    problem(
        app.get("/v1/admin/subjects/private")
            .bearer_auth(&service)
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        app.get("/v1/admin/subjects/private").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        app.get("/v1/me").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let viewer = app.key(Role::Viewer).await;
    problem(
        app.get("/v1/admin/subjects/nobody")
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;

    // Someone with a valid token the main app never described: an empty profile, nothing
    // stored.
    let stranger = me(&app, "stranger").await;
    assert_eq!(stranger["age_status"], "unknown");
    assert!(stranger.get("email").is_none());
    assert!(
        subject::find(app.state.db.conn(), "stranger")
            .await
            .unwrap()
            .is_none()
    );
    let own = me(&app, "private").await;
    assert_eq!(own["birth_date"], years_ago(40).to_string());
    assert_eq!(own["age_status"], "adult");
}
