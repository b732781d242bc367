//! Prometheus metrics at `GET /metrics`, in the text exposition format: what an operator needs
//! to see that Consentry keeps its promises (requests answered in time, emails sent, purges
//! run). Counts of things in the database are read at scrape time, so every replica reports
//! the same cluster-wide figures; HTTP traffic and consent checks are counted per process.
//! Labels hold route templates, statuses, reasons and job names, never an email address or a
//! person's id.

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex, time::Duration};

use chrono::TimeDelta;
use sea_orm::DbErr;

use poem::{IntoResponse, Request, Response, handler, http::header, web::Data};

use crate::{
    AppState, clock, config::DatabaseKind, crypto, error::ApiError, lease, notify::outbox, policy,
    request, retention::purge,
};

/// `GET /metrics`: the exposition, behind `metrics.token` as a bearer token when one is set.
#[handler]
pub async fn endpoint(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.metrics.token {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Digests first, so that the comparison's time says nothing about the length either.
        let right = crypto::constant_time_eq(
            crypto::sha256_hex(presented.as_bytes()).as_bytes(),
            crypto::sha256_hex(token.expose().as_bytes()).as_bytes(),
        );
        if !right {
            return Err(ApiError::unauthorized(
                "the metrics need `Authorization: Bearer <metrics.token>`",
            ));
        }
    }
    let body = state.metrics.render(state).await?;
    Ok(body
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
        .into_response())
}

/// Upper bounds of the HTTP latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What this process counts between scrapes.
#[derive(Default)]
pub struct Metrics {
    /// (route template, method, status) → latency.
    http: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// Consent checks by the reason of their answer.
    checks: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// Counts one HTTP request. `route` is the matched template (`/v1/subjects/:external_id/...`),
    /// never the path itself, which may hold a person's id (poem-openapi names the parameters
    /// `:param0`, `:param1`, ...).
    pub fn observe_http(&self, route: &str, method: &str, status: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let h = http
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        for (bucket, bound) in h.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Counts one consent check by the reason of its answer.
    pub fn count_check(&self, reason: &'static str) {
        *self
            .checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// The exposition: this process's counters, then the database's figures.
    pub async fn render(&self, state: &AppState) -> Result<String, DbErr> {
        let mut out = String::new();
        family(
            &mut out,
            "consentry_build_info",
            "gauge",
            "The running version.",
        );
        line(
            &mut out,
            "consentry_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        self.render_http(&mut out);
        family(
            &mut out,
            "consentry_consent_checks_total",
            "counter",
            "Consent checks answered by this process, by the reason of the answer.",
        );
        for (reason, n) in self.checks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            line(
                &mut out,
                "consentry_consent_checks_total",
                &[("reason", reason)],
                *n as f64,
            );
        }
        let (reads, read) = state.checks.reads();
        family(
            &mut out,
            "consentry_consent_check_reads_total",
            "counter",
            "Queries made for single consent checks the cache could not answer; each reads every check waiting.",
        );
        line(
            &mut out,
            "consentry_consent_check_reads_total",
            &[],
            reads as f64,
        );
        family(
            &mut out,
            "consentry_consent_check_read_checks_total",
            "counter",
            "Single checks those queries answered; divided by the queries, the mean batch.",
        );
        line(
            &mut out,
            "consentry_consent_check_read_checks_total",
            &[],
            read as f64,
        );
        let (commits, units) = [state.group.counts(), state.decisions.counts()]
            .into_iter()
            .fold((0, 0), |(c, u), (commits, units)| (c + commits, u + units));
        family(
            &mut out,
            "consentry_group_commits_total",
            "counter",
            "Shared transactions committed for consent decisions and requests filed without login.",
        );
        line(
            &mut out,
            "consentry_group_commits_total",
            &[],
            commits as f64,
        );
        family(
            &mut out,
            "consentry_group_commit_units_total",
            "counter",
            "Units of work those transactions carried; divided by the commits, the mean batch.",
        );
        line(
            &mut out,
            "consentry_group_commit_units_total",
            &[],
            units as f64,
        );
        family(
            &mut out,
            "consentry_consent_sets_refused_total",
            "counter",
            "Groups of consent decisions the database refused as a set, then wrote one by one.",
        );
        line(
            &mut out,
            "consentry_consent_sets_refused_total",
            &[],
            state.decisions.batch().refused() as f64,
        );
        render_pool(&mut out, state);
        render_database(&mut out, state).await?;
        Ok(out)
    }

    fn render_http(&self, out: &mut String) {
        let name = "consentry_http_request_duration_seconds";
        family(
            out,
            name,
            "histogram",
            "HTTP requests by route template, method and status.",
        );
        let http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, method, status), h) in http.iter() {
            let status = status.to_string();
            let labels = [
                ("route", route.as_str()),
                ("method", method),
                ("status", &status),
            ];
            for (n, bound) in h.buckets.iter().zip(BUCKETS) {
                let le = bound.to_string();
                let mut with_le = labels.to_vec();
                with_le.push(("le", &le));
                line(out, &format!("{name}_bucket"), &with_le, *n as f64);
            }
            let mut inf = labels.to_vec();
            inf.push(("le", "+Inf"));
            line(out, &format!("{name}_bucket"), &inf, h.count as f64);
            line(out, &format!("{name}_sum"), &labels, h.sum);
            line(out, &format!("{name}_count"), &labels, h.count as f64);
        }
    }
}

fn render_pool(out: &mut String, state: &AppState) {
    let (size, idle) = match state.db.kind() {
        DatabaseKind::Sqlite => {
            let pool = state.db.conn().get_sqlite_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
        DatabaseKind::Postgres => {
            let pool = state.db.conn().get_postgres_connection_pool();
            (pool.size(), pool.num_idle() as u32)
        }
    };
    let name = "consentry_db_pool_connections";
    family(
        out,
        name,
        "gauge",
        "Database pool connections of this process, by state.",
    );
    line(
        out,
        name,
        &[("state", "in_use")],
        size.saturating_sub(idle) as f64,
    );
    line(out, name, &[("state", "idle")], idle as f64);
    gauge(
        out,
        "consentry_db_pool_max_connections",
        "The pool's limit.",
        state.config.database_max_connections as f64,
    );
}

async fn render_database(out: &mut String, state: &AppState) -> Result<(), DbErr> {
    let conn = state.db.conn();
    let now = clock::now();

    let name = "consentry_outbox_messages";
    family(
        out,
        name,
        "gauge",
        "Outbox messages by status (pending, delivered, dead), kind and priority.",
    );
    let rows = outbox::counts_by_priority(conn).await?;
    for (status, kind, priority, n) in rows {
        let status = format!("{status:?}").to_lowercase();
        let kind = format!("{kind:?}").to_lowercase();
        let priority = ["urgent", "normal", "bulk"]
            .get(priority as usize)
            .copied()
            .unwrap_or("other");
        line(
            out,
            name,
            &[("status", &status), ("kind", &kind), ("priority", priority)],
            n as f64,
        );
    }
    let oldest = outbox::oldest_pending(conn).await?;
    gauge(
        out,
        "consentry_outbox_oldest_pending_age_seconds",
        "Age of the oldest message still waiting to go out; 0 when none waits.",
        oldest.map_or(0.0, |t| seconds(now - t)),
    );

    let name = "consentry_requests_open";
    family(
        out,
        name,
        "gauge",
        "Data-subject requests being worked on, by status and law.",
    );
    let rows = request::open_by_status_and_law(conn).await?;
    for (status, law, n) in rows {
        let status = sea_orm::ActiveEnum::to_value(&status);
        let law = sea_orm::ActiveEnum::to_value(&law);
        line(out, name, &[("status", &status), ("law", &law)], n as f64);
    }
    let within = TimeDelta::days(i64::from(state.config.requests.digest_due_within_days));
    let (overdue, due_soon) = request::deadline_counts(conn, now.date_naive(), within).await?;
    gauge(
        out,
        "consentry_requests_overdue",
        "Requests past their legal due date and not finished.",
        overdue as f64,
    );
    gauge(
        out,
        "consentry_requests_due_soon",
        "Requests due within requests.digest_due_within_days.",
        due_soon as f64,
    );

    let name = "consentry_fulfilment_jobs_overdue";
    family(
        out,
        name,
        "gauge",
        "Systems' jobs past their time allowance and not done, by system key.",
    );
    for (system, n) in request::jobs::overdue(conn, now).await? {
        line(out, name, &[("system", &system)], n as f64);
    }

    let name = "consentry_purge_runs";
    family(
        out,
        name,
        "gauge",
        "Retention purge runs recorded (dry runs apart), by status.",
    );
    let summary = purge::run_summary(conn).await?;
    for (dry_run, status, n) in &summary.runs {
        let status = sea_orm::ActiveEnum::to_value(status);
        let dry = if *dry_run { "true" } else { "false" };
        line(
            out,
            name,
            &[("status", &status), ("dry_run", dry)],
            *n as f64,
        );
    }
    gauge(
        out,
        "consentry_purge_last_success_timestamp_seconds",
        "When the last real purge run completed (Unix time); 0 if never.",
        summary.last_success.map_or(0.0, |t| t.timestamp() as f64),
    );
    gauge(
        out,
        "consentry_purge_items_purged",
        "Items sent for purging by all recorded real runs.",
        summary.items_purged as f64,
    );

    let stored = crate::consent::ledger::event_count(conn).await?;
    gauge(
        out,
        "consentry_consent_events_stored",
        "Consent events in the ledger (grants, withdrawals, refusals).",
        stored as f64,
    );

    let rolling = policy::rollouts_running(conn).await?;
    gauge(
        out,
        "consentry_reconsent_rollouts_running",
        "Published policy versions whose re-consent rollout has not finished.",
        rolling as f64,
    );

    let name = "consentry_job_lease_held";
    family(
        out,
        name,
        "gauge",
        "Scheduled jobs whose lease a replica holds now (holder: a process id).",
    );
    for lease in lease::held(conn, now).await? {
        line(
            out,
            name,
            &[("job", &lease.name), ("holder", &lease.holder)],
            1.0,
        );
    }
    Ok(())
}

fn seconds(d: TimeDelta) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

/// A gauge of one value, without labels.
fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    line(out, name, &[], value);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn line(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{key}=\"{value}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}
