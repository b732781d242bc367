//! Consent ledger benchmarks, against the release binary running as its own process:
//!
//! 1. **Checks** (`GET /v1/subjects/{id}/consents/{purpose}`) with 100,000 subjects × 5
//!    purposes loaded, closed loop at full speed with 16 and then 64 connections (people drawn
//!    from all of them, then from the same 1,000 again and again, which the consent cache
//!    answers), compared with `GET /health/live` on the same server at the same concurrency (the
//!    trivial-endpoint baseline) and with `GET /health/ready` (one `SELECT 1`: the least a
//!    request that asks the database costs), then open loop at half each check's peak rate for
//!    its latency there.
//! 2. **Writes**: 16 and then 64 clients flipping consents through the portal endpoint, each
//!    request a real change; afterwards every touched subject's hash chain is verified. Then a
//!    second server process on the same database: how long after one process answered a
//!    withdrawal the other, which had just answered "allowed" for it, stops allowing it. Before
//!    that, on PostgreSQL, three server processes on the one database take checks and writes
//!    spread over them: their aggregate rates, against one process's in the same run.
//! 3. **A material policy change** affecting every subject, on a freshly started server: the
//!    time `POST /v1/admin/policies/{id}/publish` takes and the server's peak memory.
//!
//! `cargo bench --bench consent` (SQLite); `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL. `CONSENT_BENCH_SUBJECTS` (default 100000) and `CONSENT_BENCH_SECONDS`
//! (default 10) scale it; `CONSENT_BENCH_CHECKS_ONLY=true` stops after the checks.

#[allow(dead_code)]
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    MakeRequest, Run, Service, api_key, closed_loop, database, engine, free_port, memory_mib,
    open_loop, pick, print_row,
};
use consentry::{
    audit::Actor,
    auth::{Role, token::SubjectTokens},
    clock,
    config::Secret,
    consent::{
        ledger,
        model::{Action, ConsentActor, ConsentStatus, consents, events},
    },
    db::Db,
    policy,
    subject::{self, AgeStatus, GENESIS_HASH, model as subjects},
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;

const PURPOSES: [&str; 5] = [
    "analytics",
    "marketing_email",
    "personalisation",
    "cloud_training",
    "crash_reports",
];
/// Subjects per multi-row insert: 5 events of 18 columns each stay under SQLite's limit of
/// 32,766 bound variables.
const SUBJECTS_PER_INSERT: usize = 200;
/// Withdrawals timed until a second server process stops allowing them.
const STALENESS_SAMPLES: usize = 200;
const TOKEN_SECRET: &str = "bench-subject-token-secret-0123456789abcdef";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Inserts `n` subjects, each with an email and a granted consent for every purpose under the
/// `*` English version 2 of the shipped policy, with valid hash chains.
async fn load(db: &Db, n: usize) {
    let conn = db.conn();
    let v2 = policy::of_version(conn, "privacy-policy", 2, Some("DE"), Some("en"))
        .await
        .unwrap()
        .unwrap();
    let now = clock::now();
    for start in (0..n).step_by(SUBJECTS_PER_INSERT) {
        let txn = db.begin().await.unwrap();
        let mut people = Vec::new();
        let mut states = Vec::new();
        let mut ledger_rows = Vec::new();
        for i in start..(start + SUBJECTS_PER_INSERT).min(n) {
            let subject_id = uuid::Uuid::now_v7().to_string();
            let mut prev = GENESIS_HASH.to_string();
            for (p, purpose) in PURPOSES.iter().enumerate() {
                let mut e = events::Model {
                    id: uuid::Uuid::now_v7().to_string(),
                    subject_id: subject_id.clone(),
                    seq: p as i64 + 1,
                    purpose_key: purpose.to_string(),
                    action: Action::Grant,
                    policy_id: v2.id.clone(),
                    policy_sha256: v2.content_sha256.clone(),
                    actor: ConsentActor::Import,
                    channel: "bench".into(),
                    language: "en".into(),
                    jurisdiction: "DE".into(),
                    user_agent: None,
                    ip: None,
                    reason: None,
                    occurred_at: now,
                    recorded_at: now,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = ledger::event_hash(&e);
                prev = e.hash.clone();
                states.push(consents::ActiveModel::from(consents::Model {
                    subject_id: subject_id.clone(),
                    purpose_key: purpose.to_string(),
                    status: ConsentStatus::Granted,
                    policy_id: v2.id.clone(),
                    policy_key: v2.key.clone(),
                    policy_version: v2.version,
                    policy_jurisdiction: v2.jurisdiction.clone(),
                    last_event_id: e.id.clone(),
                    channel: "portal".into(),
                    needs_reconsent: false,
                    reconsent_due_at: None,
                    updated_at: now,
                }));
                ledger_rows.push(events::ActiveModel::from(e));
            }
            people.push(subjects::ActiveModel::from(subjects::Model {
                id: subject_id,
                external_id: format!("user-{i}"),
                email: Some(format!("user-{i}@example.com")),
                display_name: None,
                locale: Some(if i % 3 == 0 { "zh-CN" } else { "en" }.into()),
                jurisdiction: Some("DE".into()),
                birth_date: None,
                age_status: AgeStatus::Adult,
                age_band: None,
                guardian_email: None,
                guardian_verified_at: None,
                minor_pending_since: None,
                restricted: false,
                consent_seq: PURPOSES.len() as i64,
                consent_hash: prev,
                created_at: now,
                updated_at: now,
                erased_at: None,
                restriction_lifts_at: None,
            }));
        }
        subjects::Entity::insert_many(people)
            .exec_without_returning(&txn)
            .await
            .unwrap();
        events::Entity::insert_many(ledger_rows)
            .exec_without_returning(&txn)
            .await
            .unwrap();
        consents::Entity::insert_many(states)
            .exec_without_returning(&txn)
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
}

/// The release binary on a free port, its outbox left alone.
async fn serve(url: &str, data_dir: &std::path::Path) -> Service {
    Service::start(
        url,
        data_dir,
        free_port(),
        &[
            ("CONSENTRY_SUBJECT_TOKEN_SECRET", TOKEN_SECRET),
            ("CONSENTRY_OUTBOX__DISPATCH", "false"),
        ],
    )
    .await
}

#[tokio::main]
async fn main() {
    let n: usize = env_or("CONSENT_BENCH_SUBJECTS", 100_000);
    let secs: u64 = env_or("CONSENT_BENCH_SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    let (url, db, config) = database(&dir, "consent").await;
    println!(
        "consent bench on {}: {n} subjects × {} purposes",
        engine(),
        PURPOSES.len()
    );

    consentry::actions::policies::import(&db, &config, &config.policies_dir, &Actor::Cli)
        .await
        .unwrap();
    let conn = db.conn();
    let mut tx = db.begin().await.unwrap();
    for key in PURPOSES {
        consentry::purpose::create(
            &mut tx,
            key,
            consentry::purpose::PurposeFields {
                texts: [(
                    "en".to_string(),
                    consentry::purpose::PurposeText {
                        title: key.into(),
                        description: String::new(),
                        guardian: None,
                    },
                )]
                .into(),
                legal_basis: consentry::purpose::LegalBasis::Consent,
                required: false,
                separate_consent: false,
                separate_consent_reason: None,
                direct_marketing: false,
                recipients: vec![],
                data_categories: vec![],
                retention_period: None,
            },
            &Actor::Cli,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let started = Instant::now();
    load(&db, n).await;
    // As after any bulk load: fresh statistics for the planner and, on PostgreSQL, every row
    // marked visible, which autovacuum would otherwise do in the middle of a measured run.
    let settle = match db.kind() {
        consentry::config::DatabaseKind::Sqlite => "ANALYZE",
        consentry::config::DatabaseKind::Postgres => "VACUUM (ANALYZE)",
    };
    conn.execute_unprepared(settle).await.unwrap();
    println!("loaded in {:.1} s", started.elapsed().as_secs_f64());
    let service = api_key(&db, Role::Service).await;
    let admin = api_key(&db, Role::Admin).await;

    let server = serve(&url, &config.data_dir).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let base = server.base.clone();

    // 1. Checks against the trivial endpoint.
    let health: MakeRequest = {
        let base = base.clone();
        Arc::new(move |c: &reqwest::Client, _: &mut u64| c.get(format!("{base}/health/live")))
    };
    // The least a request that asks the database anything costs: `SELECT 1`.
    let ready: MakeRequest = {
        let base = base.clone();
        Arc::new(move |c: &reqwest::Client, _: &mut u64| c.get(format!("{base}/health/ready")))
    };
    // Each run of checks "from all" is moved to other people (the workers' seeds repeat from
    // run to run), so that no run is answered from what an earlier one left in the cache.
    let shift = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let next_people = || shift.fetch_add(n / 7 + 1, Ordering::Relaxed);
    let check: MakeRequest = {
        let (base, service, shift) = (base.clone(), service.clone(), shift.clone());
        Arc::new(move |c: &reqwest::Client, seed: &mut u64| {
            let who = (pick(seed, n) + shift.load(Ordering::Relaxed)) % n;
            let purpose = PURPOSES[pick(seed, PURPOSES.len())];
            c.get(format!("{base}/v1/subjects/user-{who}/consents/{purpose}"))
                .bearer_auth(&service)
        })
    };
    // For the three processes of part 2b, against one.
    let check_all = check.clone();
    // The same 1,000 people checked again and again, as a main app checks its active users:
    // answered from the consent cache after the first time.
    let hot: MakeRequest = {
        let (base, service) = (base.clone(), service.clone());
        let people = n.min(1000);
        Arc::new(move |c: &reqwest::Client, seed: &mut u64| {
            let who = pick(seed, people);
            let purpose = PURPOSES[pick(seed, PURPOSES.len())];
            c.get(format!("{base}/v1/subjects/user-{who}/consents/{purpose}"))
                .bearer_auth(&service)
        })
    };
    closed_loop(&client, 32, 2, check.clone()).await; // warm-up
    println!("\n1. consent check over HTTP, {secs} s per row");
    println!(
        "{:<40} {:>5} {:>9} {:>8} {:>8} {:>9}",
        "", "conns", "req/s", "p50 ms", "p99 ms", "/baseline"
    );
    // Peak rates at 16 connections: the check's from all, the check's of 1,000.
    let mut peaks = Vec::new();
    for conns in [16, 64] {
        let baseline = closed_loop(&client, conns, secs, health.clone()).await;
        next_people();
        let mut rows = [
            ("GET /health/live (baseline)", baseline),
            (
                "GET /health/ready (SELECT 1)",
                closed_loop(&client, conns, secs, ready.clone()).await,
            ),
            (
                "check, people drawn from all",
                closed_loop(&client, conns, secs, check.clone()).await,
            ),
            (
                "check, the same 1,000 people",
                closed_loop(&client, conns, secs, hot.clone()).await,
            ),
        ];
        let base_rate = rows[0].1.rate();
        for (name, run) in &mut rows {
            print_row(name, conns, run, base_rate);
        }
        peaks.push((rows[2].1.rate(), rows[3].1.rate()));
    }
    // Open loop: what a steady load waits; the baseline at the same rate shows what the load
    // generator itself adds on these shared cores.
    let (all_peak, hot_peak) = peaks[0];
    for (name, rate, request) in [
        ("baseline, same rate (open)", all_peak / 2.0, health.clone()),
        (
            "check from all, half its peak (open)",
            all_peak / 2.0,
            check,
        ),
        ("baseline, same rate (open)", hot_peak / 2.0, health),
        ("check of 1,000, half its peak (open)", hot_peak / 2.0, hot),
    ] {
        next_people();
        let mut paced = open_loop(&client, rate, secs, request).await;
        print_row(name, 0, &mut paced, f64::NAN);
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    let (reads, read_checks) = (
        counter("consentry_consent_check_reads_total"),
        counter("consentry_consent_check_read_checks_total"),
    );
    println!(
        "checks read from the database: {read_checks:.0} in {reads:.0} queries (mean batch {:.1})",
        read_checks / reads
    );
    println!(
        "server memory: {:.0} MiB resident, peak {:.0} MiB",
        memory_mib(&server.pid(), "VmRSS:"),
        memory_mib(&server.pid(), "VmHWM:")
    );
    if env_or("CONSENT_BENCH_CHECKS_ONLY", false) {
        return;
    }

    // 2. Writes: clients flip consents of 10,000 subjects through the portal, every request a
    // real change.
    let tokens = SubjectTokens::new(Secret::new(TOKEN_SECRET), None, None);
    let exp = chrono::Utc::now().timestamp() + 3600;
    let pool = n.min(10_000);
    let minted: Arc<Vec<String>> = Arc::new(
        (0..pool)
            .map(|i| tokens.mint(&format!("user-{i}"), exp))
            .collect(),
    );
    // Whether each subject's `analytics` is granted now (all start granted).
    let granted: Arc<Vec<AtomicBool>> =
        Arc::new((0..pool).map(|_| AtomicBool::new(true)).collect());
    let toggle: MakeRequest = {
        let (base, minted) = (base.clone(), minted.clone());
        Arc::new(move |c: &reqwest::Client, seed: &mut u64| {
            let who = pick(seed, minted.len());
            let grant = !granted[who].fetch_xor(true, Ordering::Relaxed);
            c.put(format!("{base}/v1/me/consents/analytics"))
                .bearer_auth(&minted[who])
                .json(&json!({"granted": grant, "policy_version": 2}))
        })
    };
    println!("\n2. consent writes through the portal, {secs} s per row");
    println!(
        "{:<40} {:>5} {:>9} {:>8} {:>8} {:>9}",
        "", "clients", "req/s", "p50 ms", "p99 ms", "events/s"
    );
    for clients in [16, 64] {
        let events_before = count_events(&db).await;
        let mut writes = closed_loop(&client, clients, secs, toggle.clone()).await;
        let written = count_events(&db).await - events_before;
        let events_rate = written as f64 / writes.elapsed.as_secs_f64();
        println!(
            "{:<40} {clients:>5} {:>9.0} {:>8.2} {:>8.2} {events_rate:>9.0}",
            "PUT /v1/me/consents/analytics",
            writes.rate(),
            writes.percentile_ms(0.5),
            writes.percentile_ms(0.99),
        );
    }
    let mut broken = 0;
    for i in 0..pool {
        let s = subject::find(conn, &format!("user-{i}"))
            .await
            .unwrap()
            .unwrap();
        if !ledger::verify(conn, &s).await.unwrap().ok {
            broken += 1;
        }
    }
    println!(
        "chains verified: {pool}, broken: {broken}; server memory: {:.0} MiB resident, peak {:.0} MiB",
        memory_mib(&server.pid(), "VmRSS:"),
        memory_mib(&server.pid(), "VmHWM:")
    );
    assert_eq!(broken, 0, "every chain verifies");

    // 2b. Three replicas on one PostgreSQL: checks and writes spread over them. (SQLite is the
    // embedded default: one process writes it.)
    let other = serve(&url, &config.data_dir).await;
    if engine() == "postgres" {
        let third = serve(&url, &config.data_dir).await;
        let bases: Arc<Vec<String>> =
            Arc::new(vec![base.clone(), other.base.clone(), third.base.clone()]);
        let spread_check: MakeRequest = {
            let (bases, service) = (bases.clone(), service.clone());
            Arc::new(move |c: &reqwest::Client, seed: &mut u64| {
                let base = &bases[pick(seed, bases.len())];
                let who = pick(seed, n);
                let purpose = PURPOSES[pick(seed, PURPOSES.len())];
                c.get(format!("{base}/v1/subjects/user-{who}/consents/{purpose}"))
                    .bearer_auth(&service)
            })
        };
        let spread_toggle: MakeRequest = {
            let (bases, minted) = (bases.clone(), minted.clone());
            let granted: Arc<Vec<AtomicBool>> =
                Arc::new((0..pool).map(|_| AtomicBool::new(true)).collect());
            Arc::new(move |c: &reqwest::Client, seed: &mut u64| {
                let base = &bases[pick(seed, bases.len())];
                let who = pick(seed, minted.len());
                let grant = !granted[who].fetch_xor(true, Ordering::Relaxed);
                c.put(format!("{base}/v1/me/consents/marketing_email"))
                    .bearer_auth(&minted[who])
                    .json(&json!({"granted": grant, "policy_version": 2}))
            })
        };
        println!(
            "\n2b. three server processes on one database, requests spread over them, {secs} s per row"
        );
        println!(
            "{:<40} {:>5} {:>9} {:>8} {:>8} {:>9}",
            "", "conns", "req/s", "p50 ms", "p99 ms", "/1 process"
        );
        // One write before each run moves every process's change count (NOTIFY), so that
        // both runs start with nothing current in any consent cache.
        let forget = || async {
            let mut seed = 7;
            let resp = toggle(&client, &mut seed).send().await.unwrap();
            assert!(resp.status().is_success());
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for conns in [16, 64] {
            forget().await;
            let one = closed_loop(&client, conns, secs, check_all.clone()).await;
            forget().await;
            let mut three = closed_loop(&client, conns, secs, spread_check.clone()).await;
            print_row(
                "checks from all, three processes",
                conns,
                &mut three,
                one.rate(),
            );
        }
        for clients in [16, 64] {
            let events_before = count_events(&db).await;
            let mut writes = closed_loop(&client, clients, secs, spread_toggle.clone()).await;
            let written = count_events(&db).await - events_before;
            println!(
                "{:<40} {clients:>5} {:>9.0} {:>8.2} {:>8.2} {:>9.0} events/s",
                "writes, three processes",
                writes.rate(),
                writes.percentile_ms(0.5),
                writes.percentile_ms(0.99),
                written as f64 / writes.elapsed.as_secs_f64(),
            );
        }
        drop(third);
    }

    // 2c. A withdrawal recorded by one process, checked on another that remembered the grant.
    let mut stale = Vec::new();
    for i in 0..STALENESS_SAMPLES.min(pool) {
        let check = || {
            client
                .get(format!(
                    "{}/v1/subjects/user-{i}/consents/crash_reports",
                    other.base
                ))
                .bearer_auth(&service)
                .send()
        };
        let allowed = |r: serde_json::Value| r["allowed"].as_bool().unwrap();
        assert!(allowed(check().await.unwrap().json().await.unwrap()));
        let resp = client
            .put(format!("{base}/v1/me/consents/crash_reports"))
            .bearer_auth(&minted[i])
            .json(&json!({"granted": false, "policy_version": 2}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let answered = Instant::now();
        while allowed(check().await.unwrap().json().await.unwrap()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stale.push(answered.elapsed().as_micros() as u64);
    }
    drop(other);
    let mut stale = Run {
        latencies: stale,
        elapsed: Duration::from_secs(1),
    };
    println!(
        "\n2c. a withdrawal seen by a second server process: {} samples, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        stale.latencies.len(),
        stale.percentile_ms(0.5),
        stale.percentile_ms(0.99),
        stale.percentile_ms(1.0)
    );
    drop(server);

    // 3. A material change for everyone, on a fresh server process.
    let server = serve(&url, &config.data_dir).await;
    let draft = client
        .post(format!("{}/v1/admin/policies", server.base))
        .bearer_auth(&admin)
        .json(
            &json!({"key": "privacy-policy", "language": "en", "authoritative": true,
                      "title": "Lumora Privacy Policy", "body": "Version three.\n",
                      "material": true, "change_summary": "Logs are kept six months.",
                      "effective_at": "2026-12-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    let draft: serde_json::Value = draft.json().await.unwrap();
    let rss_before = memory_mib(&server.pid(), "VmRSS:");
    let started = Instant::now();
    let resp = client
        .post(format!(
            "{}/v1/admin/policies/{}/publish",
            server.base,
            draft["id"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let answered = started.elapsed();
    // The rollout runs in the background; it is done when the policy says so.
    let policy_url = format!(
        "{}/v1/admin/policies/{}",
        server.base,
        draft["id"].as_str().unwrap()
    );
    loop {
        let policy: serde_json::Value = client
            .get(&policy_url)
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if policy["reconsent_done_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let peak_hwm = memory_mib(&server.pid(), "VmHWM:");
    let marked = consents::Entity::find()
        .filter(consents::Column::NeedsReconsent.eq(true))
        .all(conn)
        .await
        .map(|v| v.len())
        .unwrap_or(0);
    let emails = consentry::notify::outbox::entity::Entity::find()
        .filter(consentry::notify::outbox::entity::Column::Topic.eq("policy_changed"))
        .all(conn)
        .await
        .unwrap()
        .len();
    println!("\n3. publishing a material change");
    println!(
        "publish answered in {:.0} ms; the rollout finished in the background:",
        answered.as_secs_f64() * 1000.0
    );
    println!(
        "{marked} consents marked, {emails} emails queued in {:.1} s ({:.0} subjects/s); server RSS {:.0} MiB before, peak (VmHWM) {:.0} MiB",
        took.as_secs_f64(),
        emails as f64 / took.as_secs_f64(),
        rss_before,
        peak_hwm
    );
    assert_eq!(emails, n, "one email per subject");
}

async fn count_events(db: &Db) -> u64 {
    use sea_orm::PaginatorTrait;
    events::Entity::find().count(db.conn()).await.unwrap()
}
