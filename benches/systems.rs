//! Requests reaching every system, against the release binary running as its own process, with
//! receivers in this process that verify each job's signature, apply each job once (by its
//! idempotency key) and report it done on the system's own signed path, retrying until the
//! service answers:
//!
//! 1. **Baseline**: 1,000 approved erasures with no system registered: one job each to the
//!    main app, reported with the service key.
//! 2. **Ten systems**: 1,000 more approved erasures, each a job for ten systems (10,000 jobs).
//!    Half-way through the reports the service is killed with SIGKILL and started again on the
//!    same database; the run ends when every request has completed.
//!
//! Afterwards it checks that nothing was lost or applied twice: every job was delivered and
//! done, each system's confirmation is in its request's history exactly once, every request
//! completed exactly once, and nothing is left in the outbox. It prints the time
//! from the approvals to the last completion, jobs per second, and the ratio to the baseline.
//!
//! `cargo bench --bench systems` (SQLite); `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL. `SYSTEMS_BENCH_REQUESTS` (default 1000) and `SYSTEMS_BENCH_SYSTEMS` (default 10)
//! scale it.

#[allow(dead_code)]
mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Service, api_key, database, engine, free_port};
use consentry::{
    audit::Actor,
    auth::Role,
    db::Db,
    request::{
        RequestStatus, RequestType,
        intake::{self, Intake},
        model,
    },
    subject,
};
use poem::{Request, Response, Server, listener::TcpAcceptor};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const MAIN_SECRET: &str = "whsec_YmVuY2gtbWFpbi1hcHAtc2VjcmV0LTAxMjM0NTY3";

fn system_secret(n: usize) -> String {
    use base64::Engine as _;
    let raw = format!("bench-system-{n:02}-secret-0123456789ab");
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The release binary on `port` (so that it can be started again where it was), delivering
/// to the receivers at `hooks`.
async fn serve(url: &str, data_dir: &std::path::Path, port: u16, hooks: &str) -> Service {
    let level = std::env::var("SYSTEMS_BENCH_LOG").unwrap_or_else(|_| "error".into());
    Service::start(
        url,
        data_dir,
        port,
        &[
            ("CONSENTRY_WEBHOOK_SECRET", MAIN_SECRET),
            ("CONSENTRY_WEBHOOKS__URL", hooks),
            ("CONSENTRY_LOG__LEVEL", &level),
            // A job claimed by the killed process is claimed again this soon.
            ("CONSENTRY_OUTBOX__CLAIM_TIMEOUT_SECONDS", "5"),
            ("CONSENTRY_OUTBOX__BACKOFF_BASE_SECONDS", "1"),
        ],
    )
    .await
}

/// What the receivers saw.
#[derive(Default)]
struct Seen {
    deliveries: usize,
    bad_signatures: usize,
    webhook_ids: HashSet<String>,
    /// Idempotency key → times applied (always 1: a repeat is dropped).
    applied: HashMap<String, usize>,
}

/// A job to report done: which system (`None` for the main app) and the job's id.
type Done = (Option<usize>, String);

/// Receivers for the main app (`/main`) and each system (`/systems/{n}`).
async fn receivers(
    systems: usize,
    seen: Arc<Mutex<Seen>>,
    done: mpsc::UnboundedSender<Done>,
) -> String {
    let verifiers: Arc<Vec<standardwebhooks::Webhook>> = Arc::new(
        (0..systems)
            .map(|n| standardwebhooks::Webhook::new(&system_secret(n)).unwrap())
            .collect(),
    );
    let main = Arc::new(standardwebhooks::Webhook::new(MAIN_SECRET).unwrap());
    let endpoint = poem::endpoint::make(move |mut req: Request| {
        let (seen, done, verifiers, main) =
            (seen.clone(), done.clone(), verifiers.clone(), main.clone());
        async move {
            let body = req.take_body().into_bytes().await.unwrap_or_default();
            let system: Option<usize> = req
                .uri()
                .path()
                .strip_prefix("/systems/")
                .and_then(|n| n.parse().ok());
            let verifier = match system {
                Some(n) => &verifiers[n],
                None => &*main,
            };
            let mut seen = seen.lock().unwrap();
            seen.deliveries += 1;
            if verifier.verify(&body, req.headers()).is_err() {
                seen.bad_signatures += 1;
                return Response::builder()
                    .status(poem::http::StatusCode::UNAUTHORIZED)
                    .finish();
            }
            let id = req
                .headers()
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            seen.webhook_ids.insert(id);
            let envelope: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let job = envelope["data"]["fulfilment_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let first = !seen.applied.contains_key(&job);
            *seen.applied.entry(job.clone()).or_default() += usize::from(first);
            if first {
                let _ = done.send((system, job));
            }
            Response::builder().finish()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap()).run(endpoint),
    );
    base
}

/// Reports each job done, retrying every 100 ms until the service answers 200 (it may be
/// down); counts the reports answered.
fn reporters(
    base: String,
    service_key: String,
    mut done: mpsc::UnboundedReceiver<Done>,
    reported: Arc<AtomicUsize>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    tokio::spawn(async move {
        while let Some((system, job)) = done.recv().await {
            let permit = slots.clone().acquire_owned().await.unwrap();
            let (client, base, key, reported) = (
                client.clone(),
                base.clone(),
                service_key.clone(),
                reported.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let sent = match system {
                        Some(n) => {
                            let body =
                                json!({"status": "done", "evidence": {"counts": {"photos": 1}}})
                                    .to_string();
                            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                            let ts = chrono::Utc::now().timestamp();
                            let signature = standardwebhooks::Webhook::new(&system_secret(n))
                                .unwrap()
                                .sign(&id, ts, body.as_bytes())
                                .unwrap();
                            client
                                .post(format!("{base}/v1/systems/s{n:02}/fulfilments/{job}"))
                                .header("content-type", "application/json")
                                .header("webhook-id", id)
                                .header("webhook-timestamp", ts.to_string())
                                .header("webhook-signature", signature)
                                .body(body)
                                .send()
                                .await
                        }
                        None => {
                            client
                                .post(format!("{base}/v1/fulfilments/{job}/complete"))
                                .bearer_auth(&key)
                                .json(&json!({}))
                                .send()
                                .await
                        }
                    };
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        reported.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                drop(permit);
            });
        }
    });
}

/// Files `n` verified erasures for new people, in this process.
async fn file(db: &Db, config: &consentry::config::Config, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let mut tx = db.begin().await.unwrap();
        let person = subject::find_or_create_locked(&mut tx, &format!("{prefix}-{i}"))
            .await
            .unwrap();
        let request = intake::open_verified(
            &mut tx,
            config,
            &person,
            Intake {
                kind: RequestType::Erase,
                details: Default::default(),
                locale: Some("en".into()),
                jurisdiction: None,
            },
            "portal",
            &Actor::Subject,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.push(request.id);
    }
    ids
}

/// Approves every request over HTTP, eight at a time.
async fn approve(base: &str, key: &str, ids: &[String]) {
    let client = reqwest::Client::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for id in ids {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let request = client
            .post(format!("{base}/v1/admin/requests/{id}/approve"))
            .bearer_auth(key)
            .json(&json!({}));
        tasks.push(tokio::spawn(async move {
            let resp = request.send().await.unwrap();
            assert!(resp.status().is_success(), "approve: {}", resp.status());
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn completed(db: &Db, ids: &[String]) -> u64 {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += model::Entity::find()
            .filter(model::Column::Id.is_in(chunk.iter().map(String::as_str)))
            .filter(model::Column::Status.eq(RequestStatus::Completed))
            .count(db.conn())
            .await
            .unwrap();
    }
    n
}

async fn wait_until_completed(db: &Db, ids: &[String], limit: Duration) -> f64 {
    let started = Instant::now();
    while completed(db, ids).await < ids.len() as u64 {
        assert!(
            started.elapsed() < limit,
            "requests still open after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n = env_or("SYSTEMS_BENCH_REQUESTS", 1000);
    let systems = env_or("SYSTEMS_BENCH_SYSTEMS", 10);
    let dir = tempfile::tempdir().unwrap();
    let (url, db, config) = database(&dir, "systems").await;
    println!(
        "systems bench on {}: {n} erasures × {systems} systems",
        engine()
    );

    let baseline_ids = file(&db, &config, "base", n).await;
    let fanned_ids = file(&db, &config, "fan", n).await;
    let admin = api_key(&db, Role::Admin).await;
    let service = api_key(&db, Role::Service).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let (tx, rx) = mpsc::unbounded_channel();
    let hooks = receivers(systems, seen.clone(), tx).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let reported = Arc::new(AtomicUsize::new(0));
    reporters(base.clone(), service.clone(), rx, reported.clone());
    let server = serve(&url, &config.data_dir, port, &format!("{hooks}/main")).await;

    // 1. The baseline: the main app's single job per request.
    let started = Instant::now();
    approve(&base, &admin, &baseline_ids).await;
    wait_until_completed(&db, &baseline_ids, Duration::from_secs(600)).await;
    let baseline = started.elapsed().as_secs_f64();
    println!(
        "  no system registered   {n:>6} jobs   {baseline:>7.2} s   {:>8.1} jobs/s",
        n as f64 / baseline
    );

    // 2. Ten systems, and a SIGKILL (dropping the service) half-way through the reports.
    let client = reqwest::Client::new();
    for s in 0..systems {
        let resp = client
            .post(format!("{base}/v1/admin/systems"))
            .bearer_auth(&admin)
            .json(&json!({
                "key": format!("s{s:02}"), "name": format!("System {s}"),
                "endpoint": format!("{hooks}/systems/{s}"), "secret": system_secret(s),
                "request_types": ["erase"], "categories": ["photos"], "allowance_days": 7,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }
    let before = reported.load(Ordering::SeqCst);
    let jobs = n * systems;
    let started = Instant::now();
    approve(&base, &admin, &fanned_ids).await;
    while reported.load(Ordering::SeqCst) - before < jobs / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_kill = completed(&db, &fanned_ids).await;
    drop(server);
    let killed_at = started.elapsed().as_secs_f64();
    let server = serve(&url, &config.data_dir, port, &format!("{hooks}/main")).await;
    let restarted_at = started.elapsed().as_secs_f64();
    wait_until_completed(&db, &fanned_ids, Duration::from_secs(1200)).await;
    let fanned = started.elapsed().as_secs_f64();
    // Let what the completions queued go out before the counts below.
    let outbox_left = || async {
        consentry::notify::outbox::entity::Entity::find()
            .filter(
                consentry::notify::outbox::entity::Column::Status
                    .ne(consentry::notify::outbox::Status::Delivered),
            )
            .count(db.conn())
            .await
            .unwrap()
    };
    for _ in 0..600 {
        if outbox_left().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    println!(
        "  {systems} systems             {jobs:>6} jobs   {fanned:>7.2} s   {:>8.1} jobs/s   \
         killed at {killed_at:.2} s ({at_kill} of {n} requests completed), ready again at {restarted_at:.2} s",
        jobs as f64 / fanned
    );
    println!(
        "  per job, ten systems against the baseline: {:.2}× the time",
        (fanned / jobs as f64) / (baseline / n as f64)
    );

    // Nothing lost, nothing applied twice.
    let conn = db.conn();
    let mut jobs_done = 0;
    let mut confirmations = 0;
    for chunk in fanned_ids.chunks(500) {
        let ids = chunk.iter().map(String::as_str);
        jobs_done += model::fulfilments::Entity::find()
            .filter(model::fulfilments::Column::RequestId.is_in(ids.clone()))
            .filter(model::fulfilments::Column::Status.eq(model::FulfilmentStatus::Done))
            .count(conn)
            .await
            .unwrap();
        confirmations += model::events::Entity::find()
            .filter(model::events::Column::RequestId.is_in(ids))
            .filter(model::events::Column::Note.like("System % confirmed%"))
            .count(conn)
            .await
            .unwrap();
    }
    let waiting = outbox_left().await;
    let mut completions = 0;
    for chunk in baseline_ids.chunks(500).chain(fanned_ids.chunks(500)) {
        completions += model::events::Entity::find()
            .filter(model::events::Column::RequestId.is_in(chunk.iter().map(String::as_str)))
            .filter(model::events::Column::ToStatus.eq(RequestStatus::Completed))
            .count(conn)
            .await
            .unwrap();
    }
    let seen = seen.lock().unwrap();
    let applied_twice = seen.applied.values().filter(|n| **n != 1).count();
    println!(
        "  deliveries {} (distinct webhook-ids {}, repeats dropped {}), bad signatures {}, \
         jobs applied {} (twice: {applied_twice}), done {jobs_done}, confirmations in the \
         history {confirmations}, completions {completions}, messages not delivered {waiting}",
        seen.deliveries,
        seen.webhook_ids.len(),
        seen.deliveries - seen.applied.len(),
        seen.bad_signatures,
        seen.applied.len(),
    );
    assert_eq!(seen.bad_signatures, 0);
    assert_eq!(seen.applied.len(), n + jobs, "every job delivered");
    assert_eq!(applied_twice, 0);
    assert_eq!(jobs_done, jobs as u64, "every job done");
    assert_eq!(
        confirmations, jobs as u64,
        "each confirmation recorded once"
    );
    assert_eq!(completions, 2 * n as u64, "every request completed, once");
    assert_eq!(waiting, 0, "nothing left in the outbox");
    println!("  nothing lost, nothing applied twice");
}
