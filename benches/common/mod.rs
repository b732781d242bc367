//! What the benchmarks share: a fresh database per run (SQLite in a temporary folder, or a new
//! PostgreSQL database when `CONSENTRY_BENCH_DATABASE_URL` names a server), the release binary
//! as a process of its own, memory readings, and HTTP load in closed and open loops with their
//! table rows.

use consentry::{
    audit::Actor,
    auth::{Role, keys},
    config::{Config, Secret},
    db::Db,
};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::ConnectionTrait;

/// `postgres` when `CONSENTRY_BENCH_DATABASE_URL` is set, else `sqlite`.
pub fn engine() -> &'static str {
    if std::env::var("CONSENTRY_BENCH_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    }
}

/// A resident-memory figure of a process from `/proc/<pid>/status`, in MiB: `VmHWM:` (peak) or
/// `VmRSS:` (now).
pub fn memory_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident set size of this process, in MiB.
pub fn peak_rss_mib() -> f64 {
    memory_mib("self", "VmHWM:")
}

/// A new API key of `role`, created as `consentry keys create` does.
pub async fn api_key(db: &Db, role: Role) -> String {
    let mut tx = db.begin().await.unwrap();
    let issued = keys::create(&mut tx, role, "bench", &Actor::Cli)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    issued.secret.expose().to_string()
}

/// A new, migrated database and a configuration pointing at it.
pub async fn database(dir: &tempfile::TempDir, label: &str) -> (String, Db, Config) {
    let url = match std::env::var("CONSENTRY_BENCH_DATABASE_URL") {
        Ok(server) => {
            let prefix = format!("consentry_bench_{label}_");
            let name = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(&server).await.unwrap();
            // Databases earlier runs of this bench left behind are dropped first: autovacuum
            // working through them would otherwise take cores from this run's measurements.
            let existing = admin
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT datname FROM pg_database",
                ))
                .await
                .unwrap();
            for row in existing {
                let old: String = row.try_get_by_index(0).unwrap();
                let earlier = old
                    .strip_prefix(&prefix)
                    .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
                if earlier {
                    admin
                        .execute_unprepared(&format!("DROP DATABASE {old} WITH (FORCE)"))
                        .await
                        .unwrap();
                }
            }
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let mut url = url::Url::parse(&server).unwrap();
            url.set_path(&name);
            url.to_string()
        }
        Err(_) => format!("sqlite://{}/{label}.db?mode=rwc", dir.path().display()),
    };
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = Config {
        data_dir: dir.path().join("data"),
        database_url: Some(Secret::new(url.clone())),
        templates_dir: root.join("templates"),
        policies_dir: root.join("policies"),
        ..Config::default()
    };
    let db = Db::connect(&config).await.unwrap();
    db.migrate().await.unwrap();
    (url, db, config)
}

/// Builds the next request; the seed picks whom it is about.
pub type MakeRequest =
    Arc<dyn Fn(&reqwest::Client, &mut u64) -> reqwest::RequestBuilder + Send + Sync>;

/// Latencies in microseconds, and how many requests completed in how long.
pub struct Run {
    pub latencies: Vec<u64>,
    pub elapsed: Duration,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1] as f64 / 1000.0
    }
}

/// A cheap deterministic sequence for picking subjects and purposes.
pub fn pick(seed: &mut u64, n: usize) -> usize {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as usize) % n
}

/// Closed loop: `clients` workers send as fast as answers come back, for `secs`.
pub async fn closed_loop(
    client: &reqwest::Client,
    clients: usize,
    secs: u64,
    request: MakeRequest,
) -> Run {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|w| {
            let client = client.clone();
            let request = request.clone();
            tokio::spawn(async move {
                let mut seed = w as u64 + 1;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let resp = request(&client, &mut seed).send().await.unwrap();
                    assert!(resp.status().is_success(), "{}", resp.status());
                    resp.bytes().await.unwrap();
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    Run {
        latencies,
        elapsed: started.elapsed(),
    }
}

/// Requests an open loop keeps in flight at most: each is a connection, and a server that falls
/// behind would otherwise take the load generator past its open-file limit.
const MAX_IN_FLIGHT: usize = 2048;

/// Open loop: requests start on a fixed schedule at `rate` per second, and latency counts from
/// the scheduled start, so a stall is not hidden by sending less (coordinated omission).
pub async fn open_loop(
    client: &reqwest::Client,
    rate: f64,
    secs: u64,
    request: MakeRequest,
) -> Run {
    let total = (rate * secs as f64) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut seed = 7;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let req = request(client, &mut seed);
        // Past the cap a request waits for a connection to come back; its latency still
        // counts from when it was due.
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_success());
            resp.bytes().await.unwrap();
            due.elapsed().as_micros() as u64
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    Run {
        latencies,
        elapsed: started.elapsed(),
    }
}

/// One line of a table: rate, median and 99th percentile, and the rate's ratio to `baseline`
/// (left out when it is not a number).
pub fn print_row(name: &str, conns: usize, run: &mut Run, baseline: f64) {
    let ratio = if baseline.is_nan() {
        String::new()
    } else {
        format!("{:.2}", run.rate() / baseline)
    };
    let conns = if conns == 0 {
        "-".to_string()
    } else {
        conns.to_string()
    };
    println!(
        "{name:<40} {conns:>5} {:>9.0} {:>8.2} {:>8.2} {ratio:>9}",
        run.rate(),
        run.percentile_ms(0.5),
        run.percentile_ms(0.99),
    );
}

/// The release binary serving the bench database on `port`; killed (SIGKILL) when dropped.
pub struct Service {
    child: std::process::Child,
    pub base: String,
}

impl Service {
    /// Starts it with the settings every bench needs and `env` on top, and waits until it is
    /// ready.
    pub async fn start(
        url: &str,
        data_dir: &std::path::Path,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_consentry"));
        command
            .arg("serve")
            // The bench's own setting is not one of the service's.
            .env_remove("CONSENTRY_BENCH_DATABASE_URL")
            .env("DATABASE_URL", url)
            .env("CONSENTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("CONSENTRY_DATA_DIR", data_dir)
            .env("CONSENTRY_POLICIES_DIR", format!("{root}/policies"))
            .env("CONSENTRY_TEMPLATES_DIR", format!("{root}/templates"))
            .env("CONSENTRY_LOG__LEVEL", "warn")
            // SQLite runs each connection on a thread of its own: few connections mean fewer
            // thread switches; PostgreSQL runs transactions side by side.
            .env(
                "CONSENTRY_DATABASE_MAX_CONNECTIONS",
                if engine() == "sqlite" { "4" } else { "16" },
            )
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null());
        let service = Self {
            child: command.spawn().expect("the release binary starts"),
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if let Ok(r) = client
                .get(format!("{}/health/ready", service.base))
                .send()
                .await
                && r.status().is_success()
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not become ready");
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
