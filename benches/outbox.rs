//! Outbox throughput: queue N emails, drain them through the dispatcher to a local SMTP server
//! (aiosmtpd), and compare with sending the same messages straight through lettre's pooled
//! transport (the baseline: what SMTP itself allows on this machine).
//!
//! `cargo bench --bench outbox` (SQLite); set `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL. `OUTBOX_BENCH_SIZES=1000,10000` picks the queue sizes. Prints messages per second
//! and the process's peak resident memory after each size: a flat peak means rows are claimed
//! in batches, never loaded all at once.

// Shared with the integration suite, which uses the parts that read messages back.
#[allow(dead_code)]
#[path = "../tests/api/smtp.rs"]
mod smtp;

// Shared by every bench; each uses some of it.
#[allow(dead_code)]
mod common;

use std::{sync::Arc, time::Instant};

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
}
