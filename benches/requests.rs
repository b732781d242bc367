//! Data-subject request benchmarks, in one process with the service:
//!
//! 1. **Export packages** for one subject with 10,000 consent events and 10,000 data items (and
//!    again with five times as much, to show that memory stays flat): the time to build the
//!    encrypted JSON package (access) and ZIP package (export), against the baseline of only
//!    reading the same rows from the database.
//! 2. **The reviewers' queue** with 1,000 open requests: latency of filtered
//!    `GET /v1/admin/requests` over HTTP, against `GET /health/live` on the same server.
//! 3. **Intake without login** (`POST /v1/requests`, each a new person's access request that
//!    queues a verification code) at 16 and 64 connections, against `GET /health/live` at the
//!    same concurrency; then every audit chain is verified.
//!
//! `cargo bench --bench requests` (SQLite); `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL.

#[allow(dead_code)]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::{MakeRequest, api_key, closed_loop, database, engine, peak_rss_mib, pick, print_row};
use consentry::{
    App,
    audit::Actor,
    auth::Role,
    clock,
    consent::{
        self,
        model::{Action, ConsentActor},
    },
    db::Db,
    policy,
    request::{Law, RequestStatus, RequestType, export, intake, model},
    retention::items,
    subject,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

const ROWS_PER_INSERT: usize = 500;
const QUEUE_SIZE: usize = 1000;
const LATENCY_SAMPLES: usize = 2000;
const INTAKE_SECONDS: u64 = 5;

/// One subject with `n` consent events and `n` data items.
async fn load_subject(db: &Db, external_id: &str, n: usize) -> subject::Subject {
    let conn = db.conn();
    let mut tx = db.begin().await.unwrap();
    let person = subject::find_or_create_locked(&mut tx, external_id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v2 = policy::of_version(conn, "privacy-policy", 2, Some("DE"), Some("en"))
        .await
        .unwrap()
        .unwrap();
    let now = clock::now();
    for start in (0..n).step_by(ROWS_PER_INSERT) {
        let end = (start + ROWS_PER_INSERT).min(n);
        let events = (start..end).map(|i| {
            consent::model::events::ActiveModel::from(consent::model::events::Model {
                id: uuid::Uuid::now_v7().to_string(),
                subject_id: person.id.clone(),
                seq: i as i64 + 1,
                purpose_key: ["analytics", "marketing_email"][i % 2].into(),
                action: if i % 4 < 2 {
                    Action::Grant
                } else {
                    Action::Withdraw
                },
                policy_id: v2.id.clone(),
                policy_sha256: v2.content_sha256.clone(),
                actor: ConsentActor::Subject,
                channel: "bench".into(),
                language: "en".into(),
                jurisdiction: "DE".into(),
                user_agent: Some("Mozilla/5.0 (bench)".into()),
                ip: Some("192.0.2.0".into()),
                reason: None,
                occurred_at: now,
                recorded_at: now,
                prev_hash: "0".repeat(64),
                hash: "1".repeat(64),
            })
        });
        consent::model::events::Entity::insert_many(events)
            .exec_without_returning(conn)
            .await
            .unwrap();
        let data = (start..end).map(|i| {
            items::new_row(
                &person.id,
                items::Recorded {
                    category: "generated_images".into(),
                    external_ref: format!("{external_id}-img-{i}"),
                    created_at: now,
                    clock_event: None,
                    clock_started_at: None,
                },
            )
        });
        items::entity::Entity::insert_many(data)
            .exec_without_returning(conn)
            .await
            .unwrap();
    }
    person
}

/// Seconds to read every row the package holds, page by page, without writing anything.
async fn read_only(db: &Db, subject_id: &str) -> f64 {
    let started = Instant::now();
    let conn = db.conn();
    let mut events = consent::model::events::Entity::find()
        .filter(consent::model::events::Column::SubjectId.eq(subject_id))
        .into_json()
        .paginate(conn, 1000);
    while events.fetch_and_next().await.unwrap().is_some() {}
    let mut data = items::entity::Entity::find()
        .filter(items::entity::Column::SubjectId.eq(subject_id))
        .into_json()
        .paginate(conn, 1000);
    while data.fetch_and_next().await.unwrap().is_some() {}
    started.elapsed().as_secs_f64()
}

async fn packages(db: &Db, config: &consentry::config::Config, n: usize) {
    let person = load_subject(db, &format!("export-{n}"), n).await;
    let baseline = read_only(db, &person.id).await;
    for kind in [RequestType::Access, RequestType::Export] {
        let mut txn = db.begin().await.unwrap();
        let filed = intake::open_verified(
            &mut txn,
            config,
            &person,
            intake::Intake {
                kind,
                details: Default::default(),
                locale: None,
                jurisdiction: None,
            },
            "portal",
            &Actor::Subject,
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        let started = Instant::now();
        export::build(db.conn(), config, &filed, &export::Parts::default())
            .await
            .unwrap();
        let took = started.elapsed().as_secs_f64();
        let size = std::fs::metadata(config.data_dir.join(format!("exports/{}.pkg", filed.id)))
            .unwrap()
            .len();
        println!(
            "  {:>6} events + {:>6} items  {:<7} {:>8.3} s  read-only {:>7.3} s  ratio {:>5.1}  {:>7.1} MiB file  peak RSS {:>6.1} MiB",
            n,
            n,
            if kind == RequestType::Access {
                "access"
            } else {
                "export"
            },
            took,
            baseline,
            took / baseline,
            size as f64 / 1048576.0,
            peak_rss_mib(),
        );
    }
}

/// `QUEUE_SIZE` open requests with spread-out deadlines, laws and types.
async fn load_queue(db: &Db) {
    let now = clock::now();
    let today = now.date_naive();
    let kinds = [
        RequestType::Access,
        RequestType::Export,
        RequestType::Erase,
        RequestType::Rectify,
    ];
    for start in (0..QUEUE_SIZE).step_by(ROWS_PER_INSERT) {
        let mut txn = db.begin().await.unwrap();
        let mut rows = Vec::new();
        for i in start..(start + ROWS_PER_INSERT).min(QUEUE_SIZE) {
            let person = subject::find_or_create_locked(&mut txn, &format!("queue-{i}"))
                .await
                .unwrap();
            rows.push(model::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                subject_id: Set(Some(person.id)),
                kind: Set(kinds[i % kinds.len()]),
                status: Set([RequestStatus::Verified, RequestStatus::InReview][i % 2]),
                source: Set("portal".into()),
                details: Set("{}".into()),
                received_at: Set(now),
                updated_at: Set(now),
                law: Set(if i % 5 == 0 { Law::Pipl } else { Law::Gdpr }),
                email: Set(None),
                locale: Set(None),
                jurisdiction: Set(None),
                verified_at: Set(Some(now)),
                due_date: Set(Some(
                    today + chrono::Days::new((i % 40) as u64) - chrono::Days::new(5),
                )),
                extension_reason: Set(None),
                extended_at: Set(None),
                duplicate_of: Set(None),
                reviewer: Set(None),
                decision_reason: Set(None),
                outcome: Set(None),
                closed_at: Set(None),
                on_behalf_of: Set(None),
            });
        }
        model::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
}

/// p50 and p99 of `LATENCY_SAMPLES` sequential GETs, in milliseconds.
async fn latency(client: &reqwest::Client, url: &str, key: &str) -> (f64, f64) {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for _ in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        let resp = client.get(url).bearer_auth(key).send().await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.bytes().await.unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(at(0.50)), ms(at(0.99)))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, mut config) = database(&dir, "requests").await;
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.outbox.dispatch = false;
    // Intake is measured, not its abuse limits.
    config.rate_limit.per_minute = 1_000_000_000;
    config.rate_limit.per_email_per_minute = 1_000_000_000;
    config.rate_limit.filings_per_email_per_day = 1_000_000_000;
    let app = App::build(config).await.unwrap();
    let state = app.state().clone();
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let admin = api_key(&state.db, Role::Admin).await;
    for key in ["analytics", "marketing_email"] {
        let created = client
            .post(format!("{base}/v1/admin/purposes"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "key": key,
                "texts": {"en": {"title": key, "description": "Bench purpose."}},
                "legal_basis": "consent",
                "data_categories": ["photos"],
            }))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
    }

    println!("request bench on {}", engine());
    println!("export packages (baseline: reading the same rows only):");
    packages(&state.db, &state.config, 10_000).await;
    packages(&state.db, &state.config, 50_000).await;

    load_queue(&state.db).await;
    let key = api_key(&state.db, Role::Viewer).await;
    println!("queue of {QUEUE_SIZE} open requests, {LATENCY_SAMPLES} sequential requests each:");
    let (b50, b99) = latency(&client, &format!("{base}/health/live"), &key).await;
    println!(
        "  {:<58} p50 {b50:>6.2} ms  p99 {b99:>6.2} ms",
        "GET /health/live (baseline)"
    );
    for query in [
        "?limit=50",
        "?status=verified&type=access&limit=50",
        "?law=gdpr&due_within=P3D&limit=50",
        "?overdue=true&limit=50",
    ] {
        let (p50, p99) = latency(&client, &format!("{base}/v1/admin/requests{query}"), &key).await;
        println!(
            "  {:<58} p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  p99 ratio {:>5.1}",
            format!("GET /v1/admin/requests{query}"),
            p99 / b99
        );
    }

    let health: MakeRequest = {
        let base = base.clone();
        Arc::new(move |c: &reqwest::Client, _: &mut u64| c.get(format!("{base}/health/live")))
    };
    let intake: MakeRequest = {
        let base = base.clone();
        Arc::new(move |c: &reqwest::Client, seed: &mut u64| {
            let who = pick(seed, usize::MAX);
            c.post(format!("{base}/v1/requests")).json(
                &serde_json::json!({"email": format!("filer-{who}@example.com"), "type": "access"}),
            )
        })
    };
    println!("\nintake without login, {INTAKE_SECONDS} s per row:");
    println!(
        "{:<40} {:>5} {:>9} {:>8} {:>8} {:>9}",
        "", "conns", "req/s", "p50 ms", "p99 ms", "/baseline"
    );
    for conns in [16, 64] {
        let mut baseline = closed_loop(&client, conns, INTAKE_SECONDS, health.clone()).await;
        let mut filed = closed_loop(&client, conns, INTAKE_SECONDS, intake.clone()).await;
        let base_rate = baseline.rate();
        print_row(
            "GET /health/live (baseline)",
            conns,
            &mut baseline,
            base_rate,
        );
        print_row("POST /v1/requests", conns, &mut filed, base_rate);
    }
    let audit = consentry::audit::verify(state.db.conn()).await.unwrap();
    println!(
        "audit chains after intake: {} entries hold, broken: {:?}",
        audit.checked, audit.broken
    );
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    let _ = stop.send(());
    let _ = server.await;
}
