//! The retention purge: notices, erasure jobs and their acknowledgement, legal holds, dry runs,
//! a run killed mid-way, and replicas. Runs are given their instant (`as_of`) rather than
//! waiting for time to pass.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use consentry::{
    audit::Actor,
    auth::Role,
    notify::outbox,
    retention::items::{self as item_registry, entity as items},
    retention::model::RunStatus,
    retention::purge::{self, PurgeRun, Report},
    subject,
};
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    cli::command_for,
    support::{Fixture, TestApp, fixture, json, problem},
};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

impl Fixture {
    pub(crate) async fn admin(&self) -> String {
        self.app.key(Role::Admin).await
    }

    /// Creates (`None`) or changes (`Some(category)`) a retention rule.
    pub(crate) async fn rule(&self, admin: &str, category: Option<&str>, body: Value) {
        let (method, path, status) = match category {
            None => (Method::POST, String::new(), StatusCode::CREATED),
            Some(c) => (Method::PUT, format!("/{c}"), StatusCode::OK),
        };
        json(
            self.app
                .request(method, &format!("/v1/admin/retention-rules{path}"))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap(),
            status,
        )
        .await;
    }

    pub(crate) async fn record(
        &self,
        who: &str,
        item: &str,
        category: &str,
        created_at: DateTime<Utc>,
    ) {
        json(
            self.app
                .send_event(
                    "data.recorded",
                    json!({"external_id": who, "item_ref": item, "category": category,
                           "created_at": created_at.to_rfc3339()}),
                )
                .await,
            StatusCode::OK,
        )
        .await;
    }

    /// The main app reports that an item's retention clock started.
    async fn clock(&self, who: &str, item: &str, category: &str, event: &str) {
        json(
            self.app
                .send_event(
                    "data.recorded",
                    json!({"external_id": who, "item_ref": item, "category": category,
                           "clock_event": event}),
                )
                .await,
            StatusCode::OK,
        )
        .await;
    }

    /// A run at `as_of`, to the end.
    pub(crate) async fn run(&self, as_of: DateTime<Utc>, dry_run: bool) -> (PurgeRun, Report) {
        let state = &self.app.state;
        let run = purge::start(&state.db, &state.config, dry_run, as_of, &Actor::System)
            .await
            .unwrap();
        let run = consentry::actions::purges::execute(&state.db, &state.config, run)
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Completed);
        let report = serde_json::from_str(&run.report).unwrap();
        (run, report)
    }

    /// An item as the admin view shows it.
    async fn item(&self, who: &str, item: &str) -> Value {
        let view = self
            .app
            .read(&format!("/v1/admin/subjects/{who}"), &self.reviewer)
            .await;
        view["data_items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["item_ref"] == item)
            .cloned()
            .unwrap()
    }

    /// The erasure jobs the main app has received so far.
    pub(crate) async fn jobs(&self) -> Vec<Value> {
        self.drain().await;
        self.main_app
            .received()
            .into_iter()
            .filter(|h| h.body["type"] == purge::PURGE_REQUESTED)
            .map(|h| {
                assert!(h.signature_valid, "jobs are signed");
                h.body["data"].clone()
            })
            .collect()
    }

    pub(crate) async fn acknowledge(&self, key: &str, batch: &str) -> reqwest::Response {
        self.app
            .post(&format!("/v1/purge-batches/{batch}/complete"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    async fn hold(&self, key: &str, who: &str, item: &str, body: Value) -> reqwest::Response {
        self.app
            .request(
                Method::PUT,
                &format!("/v1/admin/subjects/{who}/items/{item}/legal-hold"),
            )
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn refs(job: &Value) -> Vec<String> {
    job["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_ref"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_thirty_day_rule_keeps_on_day_29_notices_on_day_30_and_purges_on_day_31() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "generated_images", "period": "P30D", "notice_before": "P1D",
               "notify_after": true}),
    )
    .await;
    f.app
        .set_subject("ann", Some("ann@example.com"), Some("en"), None)
        .await;
    // Created on day 1; the period ends 30 days later, on day 31.
    let created = at("2026-03-01T10:00:00Z");
    f.record("ann", "img-1", "generated_images", created).await;
    f.record("ann", "img-2", "generated_images", created).await;
    f.record("ann", "log-1", "server_logs", created).await;

    let (_, day29) = f.run(created + days(28), false).await;
    assert_eq!((day29.items_noticed, day29.items_purging), (0, 0));
    assert_eq!(day29.subjects_examined, 0);

    let (_, day30) = f.run(created + days(29), false).await;
    assert_eq!((day30.items_noticed, day30.notices_queued), (2, 1));
    assert_eq!(day30.items_purging, 0);
    f.drain().await;
    let notice = f.mail_to("ann@example.com", 1).await;
    assert_eq!(notice.len(), 1);
    assert!(
        notice[0].subject.contains("2026-03-31"),
        "{}",
        notice[0].subject
    );
    assert!(
        notice[0]
            .text
            .contains("generated_images: 2 item(s), on 2026-03-31"),
        "{}",
        notice[0].text
    );
    assert!(f.item("ann", "img-1").await["noticed_at"].is_string());
    // Never twice for the same items.
    let (_, again) = f.run(created + days(29) + TimeDelta::hours(1), false).await;
    assert_eq!(again.notices_queued, 0);

    let (day31_run, day31) = f.run(created + days(30), false).await;
    assert_eq!((day31.items_purging, day31.batches), (2, 1));
    assert_eq!(day31_run.items_purged, 2);
    let jobs = f.jobs().await;
    assert_eq!(jobs.len(), 1);
    let mut sent = refs(&jobs[0]);
    sent.sort();
    assert_eq!(sent, ["img-1", "img-2"]);
    assert_eq!(jobs[0]["items"][0]["external_id"], "ann");
    assert_eq!(jobs[0]["items"][0]["action"], "delete");
    let batch = jobs[0]["batch_id"].as_str().unwrap();
    // Until acknowledged the items stay held, and a later run sends nothing again.
    assert!(f.item("ann", "img-1").await["purged_at"].is_null());
    let (_, later) = f.run(created + days(31), false).await;
    assert_eq!(later.items_purging, 0);
    assert_eq!(f.jobs().await.len(), 1);

    let viewer = f.app.key(Role::Viewer).await;
    problem(f.acknowledge(&viewer, batch).await, StatusCode::FORBIDDEN).await;
    problem(
        f.acknowledge(&f.service, "no-such-batch").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let acked = json(f.acknowledge(&f.service, batch).await, StatusCode::OK).await;
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["items"], 2);
    json(f.acknowledge(&f.service, batch).await, StatusCode::OK).await;
    let item = f.item("ann", "img-2").await;
    assert!(item["purged_at"].is_string() && item["erased_at"].is_string());
    assert!(f.item("ann", "log-1").await["erased_at"].is_null());
    f.drain().await;
    let mails = f.mail_to("ann@example.com", 2).await;
    assert_eq!(mails.len(), 2, "one notice, one purged email");
    assert!(
        mails[1].text.contains("generated_images: 2 item(s)"),
        "{}",
        mails[1].text
    );

    let detail = f
        .app
        .read(&format!("/v1/admin/purge-runs/{}", day31_run.id), &viewer)
        .await;
    assert_eq!(detail["jobs_acknowledged"], 1);
    assert_eq!(detail["jobs_pending"], 0);
    assert_eq!(detail["report"]["categories"][0]["purging"], 2);
}

#[tokio::test]
async fn a_three_month_rule_ends_on_the_last_day_of_a_shorter_month() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "server_logs", "period": "P3M"}),
    )
    .await;
    f.record("ann", "log-nov", "server_logs", at("2026-11-30T12:00:00Z"))
        .await;
    f.record("ann", "log-aug", "server_logs", at("2026-08-31T12:00:00Z"))
        .await;
    let (_, before) = f.run(at("2026-11-30T11:59:59Z"), false).await;
    assert_eq!(before.items_purging, 0);
    let (_, november) = f.run(at("2026-11-30T12:00:00Z"), false).await;
    assert_eq!(november.items_purging, 1, "31 August + P3M = 30 November");
    let (_, february) = f.run(at("2027-02-28T11:59:59Z"), false).await;
    assert_eq!(february.items_purging, 0);
    let (_, due) = f.run(at("2027-02-28T12:00:00Z"), false).await;
    assert_eq!(due.items_purging, 1, "30 November + P3M = 28 February");
    let jobs = f.jobs().await;
    assert_eq!(
        jobs.iter().flat_map(refs).collect::<Vec<_>>(),
        ["log-aug", "log-nov"]
    );
}

#[tokio::test]
async fn an_event_started_clock_runs_from_the_event() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "training_data", "period": "P6M", "clock_start": "training_completed"}),
    )
    .await;
    f.record("ann", "ds-1", "training_data", at("2020-01-01T00:00:00Z"))
        .await;
    let far = Utc::now() + days(3650);
    let (_, waiting) = f.run(far, false).await;
    assert_eq!(waiting.items_purging, 0, "the clock has not started");
    f.clock("ann", "ds-1", "training_data", "training_completed")
        .await;
    let due: DateTime<Utc> = f.item("ann", "ds-1").await["purge_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, early) = f.run(due - TimeDelta::seconds(1), false).await;
    assert_eq!(early.items_purging, 0);
    let (_, on_time) = f.run(due, false).await;
    assert_eq!(on_time.items_purging, 1);
}

#[tokio::test]
async fn retention_emails_name_categories_in_words_in_the_persons_language() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "generated_images", "period": "P30D", "notice_before": "P1D",
               "notify_after": true,
               "titles": {"en": "pictures we made for you", "zh-CN": "为您生成的图片"}}),
    )
    .await;
    f.app
        .set_subject("lin", Some("lin@example.com"), Some("zh-CN"), Some("CN"))
        .await;
    let created = at("2026-03-01T10:00:00Z");
    f.record("lin", "img-1", "generated_images", created).await;
    f.run(created + days(29), false).await;
    f.run(created + days(30), false).await;
    let batch = f.jobs().await[0]["batch_id"].as_str().unwrap().to_string();
    json(f.acknowledge(&f.service, &batch).await, StatusCode::OK).await;
    f.drain().await;
    let mails = f.mail_to("lin@example.com", 2).await;
    assert_eq!(mails.len(), 2, "a notice and a purged email");
    for mail in &mails {
        assert!(mail.text.contains("为您生成的图片"), "{}", mail.text);
        assert!(!mail.text.contains("generated_images"), "{}", mail.text);
    }
    let rule = f
        .app
        .read("/v1/admin/retention-rules/generated_images", &admin)
        .await;
    assert_eq!(rule["titles"]["en"], "pictures we made for you");
}

#[tokio::test]
async fn a_person_chooses_how_long_their_photos_are_kept() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "photos", "period": "P1Y", "options": ["P30D", "P90D"]}),
    )
    .await;
    let created = at("2026-03-01T10:00:00Z");
    f.record("pia", "p-1", "photos", created).await;
    f.record("ole", "o-1", "photos", created).await;
    let mine = |who: &str| {
        f.app
            .get("/v1/me/retention")
            .bearer_auth(crate::support::subject_token(who))
            .send()
    };
    let offered = json(mine("pia").await.unwrap(), StatusCode::OK).await;
    assert_eq!(offered[0]["options"], json!(["P30D", "P90D"]));
    assert!(offered[0].get("chosen").is_none());
    let choose = |period: &str| {
        f.app
            .request(Method::PUT, "/v1/me/retention/photos")
            .bearer_auth(crate::support::subject_token("pia"))
            .header("user-agent", "Mozilla/5.0 (phone)")
            .json(&json!({"period": period}))
            .send()
    };
    let refused = problem(
        choose("P7D").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "period");
    let chosen = json(choose("P30D").await.unwrap(), StatusCode::OK).await;
    assert_eq!(chosen["items_dated"], 1);
    assert_eq!(
        f.item("pia", "p-1").await["purge_after"],
        "2026-03-31T10:00:00+00:00"
    );
    assert_eq!(
        f.item("ole", "o-1").await["purge_after"],
        "2027-03-01T10:00:00+00:00",
        "others keep the rule's period"
    );
    // New items, one by one or in bulk, and a changed rule keep the person's choice.
    f.record("pia", "p-2", "photos", created).await;
    json(
        f.app
            .send_event(
                "data.recorded_many",
                json!({"items": [{"external_id": "pia", "item_ref": "p-3", "category": "photos",
                                  "created_at": created.to_rfc3339()}]}),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    f.rule(
        &admin,
        Some("photos"),
        json!({"period": "P2Y", "options": ["P30D", "P90D"]}),
    )
    .await;
    for item in ["p-1", "p-2", "p-3"] {
        assert_eq!(
            f.item("pia", item).await["purge_after"],
            "2026-03-31T10:00:00+00:00",
            "{item}"
        );
    }
    let shown = json(mine("pia").await.unwrap(), StatusCode::OK).await;
    assert_eq!(shown[0]["chosen"], "P30D");
    // The receipt of a consent to a purpose that uses photos shows the choice.
    f.app
        .create_purposes(&admin, &[crate::support::purpose_body("photo_tagging")])
        .await;
    let granted = json(
        f.app
            .request(Method::PUT, "/v1/me/consents/photo_tagging")
            .bearer_auth(crate::support::subject_token("pia"))
            .json(&json!({"granted": true, "policy_version": 2}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let receipt = json(
        f.app
            .get(&format!(
                "/v1/me/consents/receipts/{}",
                granted["event_id"].as_str().unwrap()
            ))
            .bearer_auth(crate::support::subject_token("pia"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        receipt["purpose"]["retention_chosen"][0]["category"],
        "photos"
    );
    assert_eq!(receipt["purpose"]["retention_chosen"][0]["period"], "P30D");
    let (_, run) = f.run(created + days(31), false).await;
    assert_eq!(run.items_purging, 3, "only hers");
}

#[tokio::test]
async fn data_deleted_right_after_processing_goes_in_the_next_run() {
    let f = fixture().await;
    let admin = f.admin().await;
    let refused = problem(
        f.app
            .post("/v1/admin/retention-rules")
            .bearer_auth(&admin)
            .json(&json!({"category": "uploads", "period": "P0D"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "period", "{refused}");
    f.rule(
        &admin,
        None,
        json!({"category": "uploads", "period": "P0D", "clock_start": "processing_completed"}),
    )
    .await;
    f.record("ann", "up-1", "uploads", Utc::now()).await;
    let (_, waiting) = f.run(Utc::now() + days(365), false).await;
    assert_eq!(waiting.items_purging, 0, "kept while it is being processed");
    f.clock("ann", "up-1", "uploads", "processing_completed")
        .await;
    let (_, next) = f.run(Utc::now() + TimeDelta::seconds(1), false).await;
    assert_eq!(next.items_purging, 1, "purged by the next run");
    assert_eq!(refs(&f.jobs().await[0]), ["up-1"]);
}

#[tokio::test]
async fn a_shortened_rule_purges_what_is_already_held() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "photos", "period": "P90D"}),
    )
    .await;
    let created = at("2026-01-10T08:00:00Z");
    f.record("ann", "p-1", "photos", created).await;
    let (_, kept) = f.run(created + days(40), false).await;
    assert_eq!(kept.items_purging, 0);
    f.rule(&admin, Some("photos"), json!({"period": "P30D"}))
        .await;
    let (_, purged) = f.run(created + days(40), false).await;
    assert_eq!(purged.items_purging, 1);
}

#[tokio::test]
async fn held_items_and_categories_are_kept_and_reported() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "photos", "period": "P30D"}),
    )
    .await;
    f.rule(
        &admin,
        None,
        json!({"category": "server_logs", "period": "P30D", "legal_hold": true}),
    )
    .await;
    let created = at("2026-01-10T08:00:00Z");
    for item in ["p-1", "p-2", "p-3"] {
        f.record("ann", item, "photos", created).await;
    }
    f.record("ann", "log-1", "server_logs", created).await;
    // Zed restricted processing (GDPR Art 18(1)(c)): his data is kept too.
    f.record("zed", "z-1", "photos", created).await;
    subject::model::Entity::update_many()
        .col_expr(
            subject::model::Column::Restricted,
            sea_orm::prelude::Expr::value(true),
        )
        .filter(subject::model::Column::ExternalId.eq("zed"))
        .exec(f.app.state.db.conn())
        .await
        .unwrap();

    let viewer = f.app.key(Role::Viewer).await;
    let hold = json!({"held": true, "reason": "litigation 2026-17"});
    problem(
        f.hold(&viewer, "ann", "p-1", hold.clone()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        f.hold(&admin, "ann", "p-1", json!({"held": true, "reason": ""}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        f.hold(&admin, "ann", "nothing", hold.clone()).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let held = json(
        f.hold(&admin, "ann", "p-1", hold.clone()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(held["legal_hold"], true);

    let (_, report) = f.run(created + days(31), false).await;
    assert_eq!(report.items_purging, 2);
    assert_eq!(
        report.items_held, 3,
        "a held item, a held category, a restricted person"
    );
    let photos = report
        .categories
        .iter()
        .find(|c| c.category == "photos")
        .unwrap();
    assert_eq!((photos.purging, photos.held), (2, 2));
    let mut sent: Vec<String> = f.jobs().await.iter().flat_map(refs).collect();
    sent.sort();
    assert_eq!(sent, ["p-2", "p-3"]);
    // An item whose purge was sent cannot be held any more.
    problem(
        f.hold(&admin, "ann", "p-2", hold).await,
        StatusCode::CONFLICT,
    )
    .await;

    // Released, it goes with the next run; the release is audited.
    json(
        f.hold(
            &admin,
            "ann",
            "p-1",
            json!({"held": false, "reason": "case closed"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (_, next) = f.run(created + days(32), false).await;
    assert_eq!((next.items_purging, next.items_held), (1, 2));
    let audit = f
        .app
        .read("/v1/admin/audit?action=data_item.released", &viewer)
        .await;
    assert!(audit.to_string().contains("case closed"), "{audit}");
}

/// What a run leaves behind, to compare before and after a dry run.
async fn footprint(app: &TestApp) -> (u64, u64, u64, u64) {
    let conn = app.state.db.conn();
    let noticed = items::Entity::find()
        .filter(items::Column::NoticedAt.is_not_null())
        .count(conn)
        .await
        .unwrap();
    let purging = items::Entity::find()
        .filter(items::Column::PurgeBatchId.is_not_null())
        .count(conn)
        .await
        .unwrap();
    let queued = outbox::entity::Entity::find().count(conn).await.unwrap();
    let codes = consentry::request::model::codes::Entity::find()
        .count(conn)
        .await
        .unwrap();
    (noticed, purging, queued, codes)
}

#[tokio::test]
async fn a_dry_run_reports_exactly_what_the_real_run_then_does() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.rule(
        &admin,
        None,
        json!({"category": "photos", "period": "P30D", "notice_before": "P7D"}),
    )
    .await;
    f.rule(
        &admin,
        None,
        json!({"category": "server_logs", "period": "P3M", "legal_hold": true}),
    )
    .await;
    // Two days on, the verification code below is abandoned.
    let as_of = Utc::now() + days(2);
    for (who, n) in [("ann", 3), ("bob", 2), ("cy", 1)] {
        f.app
            .set_subject(who, Some(&format!("{who}@example.com")), None, None)
            .await;
        for i in 0..n {
            // Due, and entering the notice window.
            f.record(who, &format!("{who}-old-{i}"), "photos", as_of - days(40))
                .await;
            f.record(who, &format!("{who}-new-{i}"), "photos", as_of - days(25))
                .await;
        }
        f.record(who, &format!("{who}-log"), "server_logs", as_of - days(200))
            .await;
    }
    // Consentry's own data past its use: an abandoned verification code.
    json(
        f.app
            .post("/v1/requests")
            .json(&json!({"type": "access", "email": "dee@example.com"}))
            .send()
            .await
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;

    let before = footprint(&f.app).await;
    let (dry_run, dry) = f.run(as_of, true).await;
    assert!(dry_run.dry_run);
    assert_eq!(footprint(&f.app).await, before, "a dry run changes nothing");
    let (_, real) = f.run(as_of, false).await;
    assert_eq!(dry, real);
    assert_eq!((real.items_purging, real.items_noticed), (6, 6));
    assert_eq!((real.notices_queued, real.items_held), (3, 3));
    assert_eq!(real.own_data.verification_codes, 1);

    // Over HTTP: started at once, followed by id, listed.
    let started = json(
        f.app
            .post("/v1/admin/purge-runs")
            .bearer_auth(&admin)
            .json(&json!({"dry_run": true}))
            .send()
            .await
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    let id = started["id"].as_str().unwrap();
    let mut status = String::new();
    for _ in 0..200 {
        let run = f
            .app
            .read(&format!("/v1/admin/purge-runs/{id}"), &admin)
            .await;
        status = run["status"].as_str().unwrap().to_string();
        if status != "running" {
            assert_eq!(run["trigger"], "manual");
            assert_eq!(run["dry_run"], true);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, "completed");
    let listed = f.app.read("/v1/admin/purge-runs?limit=2", &admin).await;
    assert_eq!(listed[0]["id"], id, "newest first");
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let reviewer = f.reviewer.clone();
    problem(
        f.app
            .post("/v1/admin/purge-runs")
            .bearer_auth(&reviewer)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// `people` people with two due items each and one item entering its notice window, inserted
/// directly: the API would make the setup slower than the runs under test.
async fn many_items(app: &TestApp, people: usize) -> usize {
    let conn = app.state.db.conn();
    let created = Utc::now() - days(60);
    for chunk in (0..people).collect::<Vec<_>>().chunks(200) {
        let mut tx = app.state.db.begin().await.unwrap();
        let mut rows = Vec::new();
        for &i in chunk {
            let who = format!("person-{i:05}");
            let person = subject::find_or_create_locked(&mut tx, &who).await.unwrap();
            for (n, category, created) in [
                (0, "photos", created),
                (1, "photos", created),
                (2, "photos", Utc::now() - days(25)),
            ] {
                rows.push(item_registry::new_row(
                    &person.id,
                    item_registry::Recorded {
                        category: category.into(),
                        external_ref: format!("{who}-{n}"),
                        created_at: created,
                        clock_event: None,
                        clock_started_at: None,
                    },
                ));
            }
        }
        items::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    conn.execute_unprepared("UPDATE subjects SET email = 'someone@example.com'")
        .await
        .unwrap();
    let admin = app.key(Role::Admin).await;
    json(
        app.post("/v1/admin/retention-rules")
            .bearer_auth(admin)
            .json(&json!({"category": "photos", "period": "P30D", "notice_before": "P7D"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    people * 2
}

/// Every erasure job and notice queued, checked for doubles: returns (items sent, notices).
async fn sent_once(app: &TestApp) -> (usize, usize) {
    let conn = app.state.db.conn();
    let rows = outbox::entity::Entity::find().all(conn).await.unwrap();
    let mut sent: HashMap<String, usize> = HashMap::new();
    for row in rows.iter().filter(|r| r.topic == purge::PURGE_REQUESTED) {
        let body: Value = serde_json::from_str(&row.payload).unwrap();
        for item in refs(&body["data"]) {
            *sent.entry(item).or_default() += 1;
        }
    }
    assert!(
        sent.values().all(|n| *n == 1),
        "an item was sent to the main app twice"
    );
    let marked = items::Entity::find()
        .filter(items::Column::PurgeBatchId.is_not_null())
        .count(conn)
        .await
        .unwrap();
    assert_eq!(marked as usize, sent.len(), "every marked item was sent");
    let notices = rows
        .iter()
        .filter(|r| r.topic == "retention_notice")
        .count();
    let noticed = items::Entity::find()
        .filter(items::Column::NoticedAt.is_not_null())
        .count(conn)
        .await
        .unwrap();
    assert_eq!(notices as u64, noticed, "one notice per person, never two");
    (sent.len(), notices)
}

#[tokio::test]
async fn a_run_killed_mid_way_resumes_without_doing_anything_twice() {
    let f = fixture().await;
    let app = &f.app;
    let due = many_items(app, 6000).await;
    let mut child = command_for(app)
        .args(["purge"])
        .env("CONSENTRY_RETENTION__BATCH_SIZE", "50")
        .env("CONSENTRY_RETENTION__RUN_LEASE_SECONDS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let conn = app.state.db.conn();
    let mut seen = 0;
    for _ in 0..2000 {
        seen = items::Entity::find()
            .filter(items::Column::PurgeBatchId.is_not_null())
            .count(conn)
            .await
            .unwrap();
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (sent, _) = sent_once(app).await;
    assert!(
        seen > 0 && sent < due,
        "killed mid-run ({sent} of {due} sent)"
    );

    // The dead run's lease runs out; the next run finishes the work.
    let state = &app.state;
    let run = loop {
        match purge::start(&state.db, &state.config, false, Utc::now(), &Actor::Cli).await {
            Ok(run) => break run,
            Err(consentry::retention::RetentionError::Busy) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    consentry::actions::purges::execute(&state.db, &state.config, run)
        .await
        .unwrap();
    let (sent, notices) = sent_once(app).await;
    assert_eq!(sent, due, "nothing skipped");
    assert_eq!(notices, 6000);
    let runs = purge::list(conn, 10).await.unwrap();
    assert_eq!(runs[1].status, RunStatus::Interrupted);
    assert_eq!(runs[0].status, RunStatus::Completed);
    // The killed run's record shows what its committed chunks did, not zero.
    let by_killed = items::Entity::find()
        .filter(items::Column::PurgeRunId.eq(runs[1].id.as_str()))
        .count(conn)
        .await
        .unwrap();
    assert!(by_killed > 0);
    assert_eq!(runs[1].items_purged as u64, by_killed);
    assert_eq!(
        runs[0].items_purged as u64 + by_killed,
        due as u64,
        "each run counts its own"
    );
}

#[tokio::test]
async fn replicas_started_together_purge_each_item_once() {
    let f = fixture().await;
    let app = &f.app;
    let due = many_items(app, 1500).await;
    let replicas: Vec<_> = (0..2)
        .map(|_| {
            command_for(app)
                .env("CONSENTRY_LISTEN", "127.0.0.1:0")
                .env("CONSENTRY_RETENTION__PURGE_SCHEDULE", "* * * * * *")
                .env("CONSENTRY_OUTBOX__DISPATCH", "false")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let conn = app.state.db.conn();
    for _ in 0..600 {
        let done = items::Entity::find()
            .filter(items::Column::PurgeBatchId.is_not_null())
            .count(conn)
            .await
            .unwrap();
        if done as usize == due {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let both schedulers fire a few more times.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for mut replica in replicas {
        replica.kill().unwrap();
        replica.wait().unwrap();
    }
    let (sent, notices) = sent_once(app).await;
    assert_eq!((sent, notices), (due, 1500));
}

#[tokio::test]
async fn consentrys_own_data_goes_when_its_use_is_over() {
    let f = fixture().await;
    let admin = f.admin().await;
    f.app
        .create_purposes(&admin, &[crate::support::purpose_body("analytics")])
        .await;
    for who in ["ann", "bob"] {
        json(
            f.app
                .request(Method::PUT, "/v1/me/consents/analytics")
                .bearer_auth(crate::support::subject_token(who))
                .json(&json!({"granted": true, "policy_version": 2}))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
    }
    json(
        f.app
            .post("/v1/requests")
            .json(&json!({"type": "access", "email": "dee@example.com"}))
            .send()
            .await
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    f.drain().await;
    // Ann is erased, as an erasure request leaves her: a pseudonymous id and the proof.
    let conn = f.app.state.db.conn();
    let ann = subject::find(conn, "ann").await.unwrap().unwrap();
    subject::model::Entity::update_many()
        .col_expr(
            subject::model::Column::ErasedAt,
            sea_orm::prelude::Expr::value(Utc::now()),
        )
        .filter(subject::model::Column::Id.eq(&ann.id))
        .exec(conn)
        .await
        .unwrap();
    let events = || async {
        consentry::consent::model::events::Entity::find()
            .count(conn)
            .await
            .unwrap()
    };
    assert_eq!(events().await, 2);

    // A year on, the proof is still kept; the delivered messages and the code are not.
    let (_, year) = f.run(Utc::now() + days(365), false).await;
    assert_eq!(year.own_data.consent_proofs, 0);
    assert_eq!(year.own_data.verification_codes, 1);
    assert!(year.own_data.outbox_messages >= 1, "{:?}", year.own_data);
    let delivered = outbox::entity::Entity::find()
        .filter(outbox::entity::Column::Status.eq(outbox::Status::Delivered))
        .count(conn)
        .await
        .unwrap();
    assert_eq!(delivered, 0);

    // Three years after the erasure, the proof goes too, and the chain is reset.
    let (_, later) = f.run(Utc::now() + days(3 * 365 + 1), false).await;
    assert_eq!(later.own_data.consent_proofs, 1);
    assert_eq!(events().await, 1, "Bob's proof stays");
    let ann = subject::model::Entity::find_by_id(ann.id.as_str())
        .one(conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ann.consent_seq, 0);
    let (_, again) = f.run(Utc::now() + days(3 * 365 + 2), false).await;
    assert_eq!(again.own_data, Default::default());
}
