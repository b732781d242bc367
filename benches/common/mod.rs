//! What the benchmarks share: a fresh database per run (SQLite in a temporary folder, or a new
//! PostgreSQL database when `CONSENTRY_BENCH_DATABASE_URL` names a server) and memory readings.

use consentry::{
    audit::Actor,
    auth::{Role, keys},
    config::{Config, Secret},
    db::Db,
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
            let name = format!("consentry_bench_{label}_{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(&server).await.unwrap();
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
