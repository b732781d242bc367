//! Console sign-ins beside the API: `GET /health/live` latency on its own, then again while 200
//! clients try passwords over and over, as credential stuffing does (each attempt a different
//! email, so no lock stops the hashing, and only a failure count is written). Each attempt
//! verifies an argon2id hash (19 MiB, milliseconds of CPU); the hashing runs on the blocking
//! pool, one per core, so the executor threads that answer the API are not the ones it stalls.
//!
//! `cargo bench --bench signin` (SQLite); `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL.

#[allow(dead_code)]
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{MakeRequest, database, engine, open_loop, peak_rss_mib, print_row};
use consentry::App;

const SIGNERS: usize = 200;
const HEALTH_RATE: f64 = 200.0;
const SECONDS: u64 = 5;
const PASSWORD: &str = "correct horse battery staple";

/// The CSRF cookie and token of a fresh sign-in form.
async fn form(client: &reqwest::Client, base: &str) -> (String, String) {
    let resp = client
        .get(format!("{base}/console/signin"))
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let body = resp.text().await.unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).unwrap() + marker.len();
    let token = body[start..].split('"').next().unwrap().to_string();
    (cookie, token)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (_, db, mut config) = database(&dir, "signin").await;
    db.close().await.unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.rate_limit.per_minute = 1_000_000;
    config.outbox.dispatch = false;
    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let health: MakeRequest = {
        let url = format!("{base}/health/live");
        Arc::new(move |c: &reqwest::Client, _: &mut u64| c.get(&url))
    };
    // Warm up the connections.
    open_loop(&client, HEALTH_RATE, 1, health.clone()).await;

    println!(
        "signin ({}; {SIGNERS} clients signing in, /health/live at {HEALTH_RATE}/s, open loop)",
        engine()
    );
    println!(
        "{:<40} {:>5} {:>9} {:>8} {:>8} {:>9}",
        "", "conns", "req/s", "p50 ms", "p99 ms", "ratio"
    );
    let mut alone = open_loop(&client, HEALTH_RATE, SECONDS, health.clone()).await;
    let alone_p99 = alone.percentile_ms(0.99);
    print_row("/health/live alone", 0, &mut alone, f64::NAN);

    let running = Arc::new(AtomicBool::new(true));
    let attempts = Arc::new(AtomicU64::new(0));
    let mut signers = Vec::with_capacity(SIGNERS);
    for signer in 0..SIGNERS {
        let (client, base) = (client.clone(), base.clone());
        let (running, attempts) = (running.clone(), attempts.clone());
        signers.push(tokio::spawn(async move {
            let (cookie, token) = form(&client, &base).await;
            let mut attempt = 0;
            while running.load(Ordering::Relaxed) {
                attempt += 1;
                let email = format!("guess-{signer}-{attempt}@example.com");
                let resp = client
                    .post(format!("{base}/console/signin"))
                    .header("cookie", &cookie)
                    .form(&[
                        ("csrf", token.as_str()),
                        ("email", email.as_str()),
                        ("password", PASSWORD),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
                attempts.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = attempts.load(Ordering::Relaxed);
    let mut busy = open_loop(&client, HEALTH_RATE, SECONDS, health).await;
    let per_second = (attempts.load(Ordering::Relaxed) - before) as f64 / SECONDS as f64;
    let busy_p99 = busy.percentile_ms(0.99);
    print_row(
        "/health/live with 200 sign-in clients",
        0,
        &mut busy,
        f64::NAN,
    );
    running.store(false, Ordering::Relaxed);
    for s in signers {
        s.await.unwrap();
    }
    println!(
        "p99 with {SIGNERS} clients trying passwords / alone: {:.2} ({busy_p99:.2} ms / {alone_p99:.2} ms); \
         {per_second:.0} attempts/s; peak RSS {:.0} MiB",
        busy_p99 / alone_p99,
        peak_rss_mib()
    );
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
