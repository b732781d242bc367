//! The notification pipeline against real peers: an SMTP server (aiosmtpd) and an HTTP receiver
//! that verifies Standard Webhooks signatures.

use chrono::{TimeDelta, Utc};
use consentry::{
    auth::Role,
    notify::{
        email::EmailContent,
        outbox::{self, Status},
    },
};
use reqwest::StatusCode;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::support::{
    SmtpSink, TestApp, WebhookReceiver, free_port, json, problem, spawn_app, spawn_app_with,
};

pub(crate) fn code(n: u32) -> EmailContent {
    EmailContent::VerificationCode {
        code: format!("{n:06}"),
        request_type: "access".into(),
        expires_in_minutes: 15,
    }
}

async fn queue_email(app: &TestApp, key: &str, to: &str, locale: &str, content: &EmailContent) {
    let mut txn = app.state.db.begin().await.unwrap();
    outbox::enqueue_email(&mut txn, key, to, locale, content)
        .await
        .unwrap();
    txn.commit().await.unwrap();
}

async fn queue_webhook(app: &TestApp, key: &str) {
    let mut txn = app.state.db.begin().await.unwrap();
    outbox::enqueue_webhook(
        &mut txn,
        key,
        "consent.withdrawn",
        json!({ "subject": "u-1" }),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
}

async fn messages(app: &TestApp) -> Vec<outbox::OutboxMessage> {
    outbox::entity::Entity::find()
        .all(app.state.db.conn())
        .await
        .unwrap()
}

async fn app_with_smtp(sink_url: String) -> TestApp {
    spawn_app_with(move |c| {
        c.smtp_url = Some(consentry::config::Secret::new(sink_url));
        c.mail.from = "Privacy Team <privacy@example.com>".into();
        c.mail.reply_to = Some("dpo@example.com".into());
    })
    .await
}

#[tokio::test]
async fn a_queued_email_arrives_once_with_its_headers_and_content() {
    let sink = SmtpSink::start().await;
    let app = app_with_smtp(sink.url()).await;
    queue_email(&app, "code:1", "person@example.com", "en", &code(482913)).await;

    let report = app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    assert_eq!(report.delivered, 1);
    let again = app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    assert_eq!(again.delivered, 0, "a delivered message is not sent again");

    let mail = sink.wait_for(1).await;
    assert_eq!(mail.len(), 1);
    let m = &mail[0];
    assert!(m.to.contains("person@example.com"));
    assert!(m.from.contains("privacy@example.com"));
    assert_eq!(m.reply_to.as_deref(), Some("dpo@example.com"));
    assert!(m.subject.contains("482913"), "{}", m.subject);
    assert!(m.text.contains("482913") && m.html.contains("482913"));
    let row = &messages(&app).await[0];
    assert_eq!(m.message_id, format!("<{}@example.com>", row.id));
    assert_eq!(row.status, Status::Delivered);
    assert!(row.delivered_at.is_some());
    // What was sent stays out of the database (and its backups): the message keeps what it was.
    assert_eq!(row.payload, outbox::DELIVERED_PAYLOAD);
    assert!(row.recipient.is_none());
    assert_eq!(
        (
            row.topic.as_str(),
            row.locale.as_deref(),
            row.dedupe_key.as_str()
        ),
        ("verification_code", Some("en"), "code:1")
    );
}

#[tokio::test]
async fn a_chinese_locale_gets_the_chinese_template() {
    let sink = SmtpSink::start().await;
    let app = app_with_smtp(sink.url()).await;
    queue_email(&app, "code:zh", "li@example.com", "zh-CN", &code(111222)).await;
    queue_email(&app, "code:fr", "marie@example.com", "fr-FR", &code(333444)).await;
    app.state.dispatcher.drain_once(Utc::now()).await.unwrap();

    let mail = sink.wait_for(2).await;
    let zh = mail.iter().find(|m| m.to.contains("li@")).unwrap();
    let fr = mail.iter().find(|m| m.to.contains("marie@")).unwrap();
    assert!(zh.subject.contains("验证码"), "{}", zh.subject);
    assert!(zh.text.contains("验证码") && zh.text.contains("111222"));
    assert!(
        fr.subject.contains("verification code"),
        "English is the fallback"
    );
}

#[tokio::test]
async fn work_registered_on_a_transaction_runs_after_its_commit_and_never_after_a_rollback() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let app = spawn_app().await;
    let ran = Arc::new(AtomicUsize::new(0));
    let register = |tx: &mut consentry::db::Tx| {
        let ran = ran.clone();
        tx.after_commit(move || {
            ran.fetch_add(1, Ordering::SeqCst);
        });
    };
    {
        let mut tx = app.state.db.begin().await.unwrap();
        register(&mut tx);
        // Dropped without commit.
    }
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "nothing runs after a rollback"
    );
    let mut tx = app.state.db.begin().await.unwrap();
    register(&mut tx);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "nothing runs before the commit"
    );
    tx.commit().await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_commit_that_queues_an_email_wakes_the_dispatcher_without_waiting_for_its_poll() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(move |c| {
        c.smtp_url = Some(consentry::config::Secret::new(url));
        c.outbox.dispatch = true;
        // Far longer than the test waits: only the wake-up can deliver in time.
        c.outbox.poll_interval_ms = 600_000;
    })
    .await;
    // The dispatcher's first pass finds nothing; it then sleeps.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    queue_email(&app, "wake:1", "woken@example.com", "en", &code(7)).await;
    let mail = sink.wait_for(1).await;
    assert_eq!(mail.len(), 1, "delivered within seconds of the commit");
    assert!(mail[0].to.contains("woken@example.com"));
}

/// A replica that only serves HTTP queues a code; the replica that delivers hears of the
/// commit (`NOTIFY` on PostgreSQL, `data_version` on SQLite) instead of waiting for its poll.
#[tokio::test]
async fn a_commit_on_another_replica_wakes_this_dispatcher() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let serving = spawn_app().await;
    let database = serving.state.config.database_url();
    let _delivering = spawn_app_with(move |c| {
        c.database_url = Some(database);
        c.smtp_url = Some(consentry::config::Secret::new(url));
        c.outbox.dispatch = true;
        c.outbox.poll_interval_ms = 600_000;
        c.consent_cache.enabled = false;
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    queue_email(&serving, "wake:2", "elsewhere@example.com", "en", &code(8)).await;
    let mail = sink.wait_for(1).await;
    assert_eq!(
        mail.len(),
        1,
        "delivered within seconds of the other replica's commit"
    );
    assert!(mail[0].to.contains("elsewhere@example.com"));
}

#[tokio::test]
async fn a_rolled_back_change_leaves_no_message() {
    let app = spawn_app().await;
    {
        let mut txn = app.state.db.begin().await.unwrap();
        outbox::enqueue_email(&mut txn, "k", "a@example.com", "en", &code(1))
            .await
            .unwrap();
        // Dropped without commit: the change and its message roll back together.
    }
    assert!(messages(&app).await.is_empty());
}

#[tokio::test]
async fn the_same_dedupe_key_is_one_message() {
    let app = spawn_app().await;
    queue_email(&app, "same", "a@example.com", "en", &code(1)).await;
    queue_email(&app, "same", "a@example.com", "en", &code(2)).await;
    assert_eq!(messages(&app).await.len(), 1);
}

#[tokio::test]
async fn without_smtp_mail_is_written_to_the_data_folder() {
    let app = spawn_app().await;
    queue_email(&app, "file", "a@example.com", "en", &code(777888)).await;
    let report = app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    assert_eq!(report.delivered, 1);
    let dir = app.state.config.data_dir.join("mail");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(eml.contains("777888"));
}

#[tokio::test]
async fn mail_queued_while_smtp_is_down_arrives_once_it_is_back() {
    let port = free_port();
    let app = app_with_smtp(format!("smtp://127.0.0.1:{port}")).await;
    for i in 0..3 {
        queue_email(&app, &format!("down:{i}"), "a@example.com", "en", &code(i)).await;
    }
    let now = Utc::now();
    let report = app.state.dispatcher.drain_once(now).await.unwrap();
    assert_eq!((report.delivered, report.retrying), (0, 3));
    for row in messages(&app).await {
        assert_eq!(row.status, Status::Pending);
        assert_eq!(row.attempts, 1);
        let error = row.last_error.unwrap();
        assert!(
            !error.contains("a@example.com"),
            "no personal data in errors: {error}"
        );
    }

    let sink = SmtpSink::start_on(port).await;
    let early = app.state.dispatcher.drain_once(now).await.unwrap();
    assert_eq!(early.delivered, 0, "nothing is retried before its backoff");
    let later = app
        .state
        .dispatcher
        .drain_once(now + TimeDelta::hours(1))
        .await
        .unwrap();
    assert_eq!(later.delivered, 3);
    assert_eq!(sink.wait_for(3).await.len(), 3);
    app.state
        .dispatcher
        .drain_once(now + TimeDelta::hours(2))
        .await
        .unwrap();
    assert_eq!(sink.count(), 3, "each message arrives once");
}

#[tokio::test]
async fn a_webhook_refused_three_times_is_delivered_signed_with_one_id() {
    let receiver = WebhookReceiver::start(3).await;
    let url = receiver.url.clone();
    let app = spawn_app_with(move |c| c.webhooks.url = Some(url)).await;
    queue_webhook(&app, "withdrawn:1").await;

    let mut now = Utc::now();
    let mut delivered = 0;
    for _ in 0..4 {
        delivered += app
            .state
            .dispatcher
            .drain_once(now)
            .await
            .unwrap()
            .delivered;
        now += TimeDelta::days(1);
    }
    assert_eq!(delivered, 1);
    let hooks = receiver.received();
    assert_eq!(hooks.len(), 4, "three refusals and one success");
    assert!(
        hooks.iter().all(|h| h.signature_valid),
        "every attempt is signed"
    );
    assert!(
        hooks.iter().all(|h| h.id == hooks[0].id),
        "one webhook-id for all attempts"
    );
    assert_eq!(hooks[0].body["type"], "consent.withdrawn");
    assert_eq!(hooks[0].body["data"]["subject"], "u-1");
    assert!(hooks[0].body["occurred_at"].is_string());
    let row = &messages(&app).await[0];
    assert_eq!((row.status, row.attempts), (Status::Delivered, 4));
    assert_eq!(hooks[0].id, format!("msg_{}", row.id));
}

#[tokio::test]
async fn a_crash_between_claim_and_mark_sends_again_under_the_same_id() {
    let receiver = WebhookReceiver::start(0).await;
    let url = receiver.url.clone();
    let app = spawn_app_with(move |c| c.webhooks.url = Some(url)).await;
    queue_webhook(&app, "withdrawn:crash").await;

    let now = Utc::now();
    let lease = TimeDelta::seconds(300);
    let mut txn = app.state.db.begin().await.unwrap();
    let claimed = outbox::claim(&mut txn, now, 10, lease, None).await.unwrap();
    txn.commit().await.unwrap();
    assert_eq!(claimed.len(), 1);
    app.state.dispatcher.deliver(&claimed[0]).await.unwrap();
    // The process dies here: the delivery happened, the mark did not.

    let during_lease = app.state.dispatcher.drain_once(now).await.unwrap();
    assert_eq!(
        during_lease.delivered, 0,
        "a claimed row is left alone while leased"
    );
    let after = app
        .state
        .dispatcher
        .drain_once(now + lease + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(after.delivered, 1, "the message is not lost");
    let hooks = receiver.received();
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        hooks[0].id, hooks[1].id,
        "the repeat carries the same webhook-id"
    );
    assert_eq!(hooks[0].body, hooks[1].body);
}

#[tokio::test]
async fn a_message_out_of_attempts_is_dead_until_an_admin_retries_it() {
    let receiver = WebhookReceiver::start(usize::MAX).await;
    let url = receiver.url.clone();
    let app = spawn_app_with(move |c| {
        c.webhooks.url = Some(url);
        c.outbox.max_attempts = 2;
    })
    .await;
    queue_webhook(&app, "withdrawn:dead").await;
    let now = Utc::now();
    app.state.dispatcher.drain_once(now).await.unwrap();
    let last = app
        .state
        .dispatcher
        .drain_once(now + TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!(last.dead, 1);

    let viewer = app.key(Role::Viewer).await;
    let admin = app.key(Role::Admin).await;
    let page = app.read("/v1/admin/outbox?status=dead", &viewer).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap().to_string();
    assert!(items[0]["last_error"].as_str().unwrap().contains("500"));
    assert!(items[0].get("payload").is_none() && items[0].get("recipient").is_none());

    let stats = app.read("/v1/admin/outbox/stats", &viewer).await;
    assert_eq!(stats["dead"], 1);

    let path = format!("/v1/admin/outbox/{id}/retry");
    problem(
        app.post(&path).bearer_auth(&viewer).send().await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    receiver.fail_next(0);
    let retried = json(
        app.post(&path).bearer_auth(&admin).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(retried["status"], "pending");
    let report = app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    assert_eq!(report.delivered, 1);

    let audit = app
        .read("/v1/admin/audit?action=outbox.retried", &viewer)
        .await;
    assert_eq!(audit["items"][0]["target_id"], id);
    problem(
        app.post("/v1/admin/outbox/nope/retry")
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn the_background_dispatcher_delivers_without_being_asked() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(move |c| {
        c.smtp_url = Some(consentry::config::Secret::new(url));
        c.outbox.dispatch = true;
        c.outbox.poll_interval_ms = 50;
    })
    .await;
    queue_email(&app, "bg", "a@example.com", "en", &code(5)).await;
    assert_eq!(sink.wait_for(1).await.len(), 1);
}

#[tokio::test]
async fn ten_thousand_queued_emails_drain_to_smtp() {
    let sink = SmtpSink::start().await;
    let app = app_with_smtp(sink.url()).await;
    for chunk in 0..20 {
        let mut txn = app.state.db.begin().await.unwrap();
        for i in 0..500 {
            let n = chunk * 500 + i;
            outbox::enqueue_email(
                &mut txn,
                &format!("bulk:{n}"),
                "bulk@example.com",
                "en",
                &code(n),
            )
            .await
            .unwrap();
        }
        txn.commit().await.unwrap();
    }
    let report = app.state.dispatcher.drain_once(Utc::now()).await.unwrap();
    assert_eq!(report.delivered, 10_000);
    let pending = outbox::entity::Entity::find()
        .all(app.state.db.conn())
        .await
        .unwrap()
        .iter()
        .filter(|m| m.status != Status::Delivered)
        .count();
    assert_eq!(pending, 0);
    assert_eq!(sink.wait_for(10_000).await.len(), 10_000);
    let rows = outbox::entity::Entity::find()
        .count(app.state.db.conn())
        .await
        .unwrap();
    assert_eq!(rows, 10_000);
}

/// A code someone is waiting for, and a webhook, are claimed before bulk notices queued earlier.
#[tokio::test]
async fn urgent_messages_are_claimed_before_bulk_ones_queued_earlier() {
    let app = spawn_app().await;
    let digest = EmailContent::AdminDigest {
        generated_at: Utc::now(),
        overdue: Vec::new(),
        due_soon: Vec::new(),
        dead_letters: 0,
        purge_summary: None,
        overdue_systems: Vec::new(),
    };
    for n in 0..50 {
        queue_email(
            &app,
            &format!("digest:{n}"),
            "dpo@example.com",
            "en",
            &digest,
        )
        .await;
    }
    queue_webhook(&app, "withdrawn:urgent").await;
    queue_email(&app, "code:urgent", "person@example.com", "en", &code(1)).await;

    let mut txn = app.state.db.begin().await.unwrap();
    let lease = TimeDelta::seconds(300);
    let first = outbox::claim(&mut txn, Utc::now(), 2, lease, None)
        .await
        .unwrap();
    let mut topics: Vec<&str> = first.iter().map(|m| m.topic.as_str()).collect();
    topics.sort();
    assert_eq!(topics, ["consent.withdrawn", "verification_code"]);
    // Nothing more urgent than a digest is left.
    let above = outbox::claim(&mut txn, Utc::now(), 10, lease, Some(2))
        .await
        .unwrap();
    assert!(above.is_empty(), "{above:?}");
    txn.commit().await.unwrap();
}
