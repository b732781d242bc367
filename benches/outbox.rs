//! Outbox benchmarks, against a local SMTP server (aiosmtpd):
//!
//! 1. **Throughput**: queue N emails, drain them through the dispatcher, and compare with
//!    sending the same messages straight through lettre's pooled transport (the baseline: what
//!    SMTP itself allows on this machine). Prints the process's peak resident memory after each
//!    size: a flat peak means rows are claimed in batches, never loaded all at once.
//! 2. **A code behind a flood**: with 100,000 "policy changed" emails queued and being
//!    delivered by the service's own dispatcher, people file requests over HTTP; how long after
//!    the intake answered is each verification code handed to the SMTP server?
//!
//! `cargo bench --bench outbox` (SQLite); set `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL. `OUTBOX_BENCH_SIZES=1000,10000` picks the queue sizes of part 1,
//! `OUTBOX_BENCH_FLOOD=100000` the flood of part 2.

// Shared with the integration suite, which uses the parts that read messages back.
#[allow(dead_code)]
#[path = "../tests/api/support/smtp.rs"]
mod smtp;

// Shared by every bench; each uses some of it.
#[allow(dead_code)]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use common::{database, engine, peak_rss_mib};
use consentry::{
    config::Secret,
    notify::{
        dispatcher::Dispatcher,
        email::{EmailContent, Mailer, build_message},
        outbox,
        templates::Templates,
    },
};
use futures_util::{StreamExt, stream};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

fn content(n: usize) -> EmailContent {
    EmailContent::VerificationCode {
        code: format!("{n:06}"),
        request_type: "access".into(),
        expires_in_minutes: 15,
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("OUTBOX_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,20000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("sizes are numbers"))
        .collect();
    let sink = smtp::SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    println!(
        "outbox bench on {}, SMTP sink aiosmtpd on 127.0.0.1:{}",
        engine(),
        sink.port
    );
    println!(
        "{:>8}  {:>12}  {:>14}  {:>14}  {:>7}  {:>13}",
        "emails", "queue (s)", "outbox msg/s", "direct msg/s", "ratio", "peak RSS MiB"
    );
    let mut sent = 0;
    for (run, &n) in sizes.iter().enumerate() {
        let (_, db, mut config) = database(&dir, &format!("run{run}")).await;
        config.smtp_url = Some(Secret::new(sink.url()));

        // Baseline: the same messages straight to SMTP with the same concurrency, no outbox.
        let mailer = Arc::new(Mailer::from_config(&config).unwrap());
        let templates = Templates::load(&config.templates_dir).unwrap();
        let started = Instant::now();
        stream::iter(0..n)
            .map(|i| {
                let mailer = mailer.clone();
                let data = serde_json::to_value(content(i)).unwrap()["data"].clone();
                let rendered = templates.render("verification_code", "en", &data).unwrap();
                let message = build_message(
                    &config.mail,
                    "bench@example.com",
                    &uuid::Uuid::now_v7().to_string(),
                    rendered,
                )
                .unwrap();
                async move { mailer.send(message).await.unwrap() }
            })
            .buffer_unordered(config.outbox.concurrency)
            .collect::<Vec<_>>()
            .await;
        let direct = n as f64 / started.elapsed().as_secs_f64();

        let started = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            let mut txn = db.begin().await.unwrap();
            for &i in chunk {
                outbox::enqueue_email(
                    &mut txn,
                    &format!("bench:{i}"),
                    "bench@example.com",
                    "en",
                    &content(i),
                )
                .await
                .unwrap();
            }
            txn.commit().await.unwrap();
        }
        let queued = started.elapsed().as_secs_f64();

        let dispatcher = Dispatcher::new(&config, db.clone()).unwrap();
        let started = Instant::now();
        let report = dispatcher.drain_once(Utc::now()).await.unwrap();
        let drained = started.elapsed().as_secs_f64();
        assert_eq!(report.delivered as usize, n, "every message delivered");
        let through_outbox = n as f64 / drained;
        sent += 2 * n;
        // Counting the sink's files (not reading them) keeps this process's memory to the
        // dispatcher's own.
        for _ in 0..400 {
            if sink.count() >= sent {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(sink.count(), sent, "the SMTP server got everything");
        println!(
            "{n:>8}  {queued:>12.2}  {through_outbox:>14.0}  {direct:>14.0}  {:>7.2}  {:>13.1}",
            through_outbox / direct,
            peak_rss_mib()
        );
        db.close().await.unwrap();
    }
    code_behind_a_flood(&sink, &dir).await;
}

/// Part 2: verification codes filed while a flood of bulk notices is being delivered.
async fn code_behind_a_flood(sink: &smtp::SmtpSink, dir: &tempfile::TempDir) {
    const SAMPLES: usize = 20;
    let flood: usize = std::env::var("OUTBOX_BENCH_FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let (_, db, mut config) = database(dir, "flood").await;
    let started = Instant::now();
    let notice = EmailContent::PolicyChanged {
        policy_title: "Lumora Privacy Policy".into(),
        version: 3,
        effective_at: Utc::now(),
        change_summary: "Server logs are kept six months.".into(),
        policy_url: "https://consentry.example/portal/policies/privacy-policy".into(),
        diff_url: "https://consentry.example/portal/policies/privacy-policy/diff".into(),
        shown_in: None,
    };
    for chunk in (0..flood).collect::<Vec<_>>().chunks(10_000) {
        let mut txn = db.begin().await.unwrap();
        let emails = chunk
            .iter()
            .map(|i| outbox::QueuedEmail {
                dedupe_key: format!("flood:{i}"),
                to: format!("reader-{i}@example.com"),
                locale: "en".into(),
                content: notice.clone(),
            })
            .collect();
        outbox::enqueue_emails(&mut txn, emails).await.unwrap();
        txn.commit().await.unwrap();
    }
    println!(
        "\n2. {flood} policy-change emails queued in {:.1} s; requests filed while they go out",
        started.elapsed().as_secs_f64()
    );
    db.close().await.unwrap();

    config.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp_url = Some(Secret::new(sink.url()));
    config.outbox.dispatch = true;
    config.rate_limit.per_minute = 100_000;
    let app = consentry::App::build(config).await.unwrap();
    let base = format!("http://{}", app.addr());
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    // Let the flood get going.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut waits = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let email = format!("filer-{i}@example.com");
        let resp = client
            .post(format!("{base}/v1/requests"))
            .json(&serde_json::json!({"email": email, "type": "access"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let answered = Instant::now();
        let filed: serde_json::Value = resp.json().await.unwrap();
        // Delivered messages keep no address: the code is found by its request.
        let key = format!("request:{}:code:1", filed["id"].as_str().unwrap());
        loop {
            let delivered = outbox::entity::Entity::find()
                .filter(outbox::entity::Column::DedupeKey.eq(&key))
                .filter(outbox::entity::Column::Status.eq(outbox::Status::Delivered))
                .one(state.db.conn())
                .await
                .unwrap();
            if delivered.is_some() {
                break;
            }
            assert!(
                answered.elapsed() < Duration::from_secs(120),
                "the code was not delivered within two minutes"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        waits.push(answered.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let still_queued = outbox::entity::Entity::find()
        .filter(outbox::entity::Column::Topic.eq("policy_changed"))
        .filter(outbox::entity::Column::Status.ne(outbox::Status::Delivered))
        .count(state.db.conn())
        .await
        .unwrap();
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
    waits.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = waits[((waits.len() as f64 * 0.99).ceil() as usize).clamp(1, waits.len()) - 1];
    println!(
        "{SAMPLES} codes handed to SMTP after the intake answered: p50 {:.0} ms, p99 {:.0} ms, \
         max {:.0} ms; {still_queued} notices still queued; peak RSS {:.0} MiB",
        ms(waits[waits.len() / 2]),
        ms(p99),
        ms(*waits.last().unwrap()),
        peak_rss_mib()
    );
}
