//! Consentry: a self-hosted privacy compliance and consent management service for GDPR and PIPL.
//!
//! # Layout
//!
//! - [`vocab`] and [`crypto`]: the words and primitives every other room may name; they import
//!   none of them.
//! - [`config`]: defaults < `consentry.toml` < `CONSENTRY_*` environment variables.
//! - [`db`]: the connection pool and write transactions for SQLite and PostgreSQL.
//! - [`http`]: the OpenAPI service, documentation routes and request middleware.
//! - [`error`]: the one place where errors become RFC 9457 problems.
//! - [`auth`]: API keys with roles for the main app and admin console, subject tokens for the
//!   portal.
//! - [`audit`]: the append-only, hash-chained audit log.
//! - [`notify`]: the transactional outbox, email (templates, SMTP) and outgoing webhooks.
//! - [`policy`]: privacy policy versions per jurisdiction and language, imported from
//!   `policies/` or drafted by admins; material changes trigger re-consent.
//! - [`purpose`]: purposes of processing, their legal basis, recipients and retention.
//! - [`consent`]: the hash-chained consent ledger, receipts and the consent check.
//! - [`subject`]: the people the main app knows, by its user id.
//! - [`law`]: the law in one place: which regime applies where, ages of digital consent,
//!   request deadlines and extensions, separate consent, remedies; pure functions and one table.
//! - [`age`]: the age gate: thresholds per country, pure.
//! - [`guardian`]: guardian consent for minors: the emailed link and the guardian's decisions.
//! - [`hooks`]: signed events from the main app.
//! - [`request`]: data-subject requests: intake and email verification, GDPR and PIPL
//!   deadlines, review, fulfilment through the main app, encrypted export packages.
//! - [`retention`]: retention rules per data category, the registry of data items and each
//!   item's purge date, and the purge runs.
//! - [`jobs`]: scheduled jobs (cron): the minor sweep, the reviewers' digest, expired exports.
//! - [`lease`]: leases that let one replica at a time run a job.
//! - [`tasks`]: the supervisor of background tasks, stopped before the database closes.
//! - [`actions`]: what someone does that spans rooms or that several front ends do: the minor
//!   sweep, a policy's drafts, publication and re-consent rollout, a reviewer's decisions,
//!   retention rules and holds, purge runs, receipts. The front ends call them; the rooms never
//!   do.
//! - [`cli`]: the command-line interface behind `main`.
//!
//! Each domain folder is a room: its `api` module parses, authorises and calls the domain's
//! functions; each table has one room that writes it, and other rooms go through that room's
//! functions. [`App::build`] assembles everything from a [`config::Config`]; `main` and the
//! tests both use it.
//!
//! # Transactions
//!
//! A write is one [`db::Tx`], begun by an edge (an API handler, a scheduled job or one batch of
//! it, a CLI command) and committed once by that edge. Service functions take `&mut Tx` and
//! compose inside it; they never begin or commit. Audit rows and outbox messages are written in
//! the same transaction as the change they record or announce. Work that must follow a commit
//! (waking the outbox dispatcher) is registered on the transaction and runs only after it
//! commits, never after a rollback. Writes that stand alone and come in numbers (consent
//! decisions from the portal and the main app, requests filed without login) are handed to
//! [`db::Group`], which runs many callers' units in one transaction, each under its own
//! savepoint, and answers each after the commit. Anything a client may repeat (a webhook id, a guardian
//! link, a code, a decision, a job's report) is claimed inside the transaction that applies it,
//! so that parallel copies apply once.

pub mod actions;
pub mod age;
pub mod api_tags;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod db;
pub mod error;
pub mod experience;
pub mod guardian;
pub mod health;
pub mod hooks;
pub mod http;
pub mod jobs;
pub mod law;
pub mod lease;
pub mod metrics;
pub mod notify;
pub mod period;
pub mod policy;
pub mod purpose;
pub mod ratelimit;
pub mod request;
pub mod retention;
pub mod spreadsheet;
pub mod staff;
pub mod subject;
pub mod system;
pub mod tasks;
pub mod telemetry;
pub mod vocab;
pub mod web;
pub mod words;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use poem::{Server, listener::TcpAcceptor};

use tokio::sync::watch;

use crate::{
    auth::keys::KeyCache, auth::token::SubjectTokens, config::Config, db::Db,
    notify::dispatcher::Dispatcher,
};

/// Shared, cheaply clonable state handed to every API.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub subject_tokens: Option<SubjectTokens>,
    /// Delivers the outbox; also run on demand by tests.
    pub dispatcher: Arc<Dispatcher>,
    /// API keys verified recently.
    pub key_cache: Arc<KeyCache>,
    /// Consent checks answered from memory while their facts are current.
    pub checks: Arc<consent::check::Checks>,
    /// Writes that stand alone and come in numbers (consent decisions, requests filed
    /// without login), committed together.
    pub group: Arc<db::Group>,
    /// The shared commit of consent decisions that stand alone.
    pub decisions: Arc<consent::Decisions>,
    /// Counters for `GET /metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Requests per client on the endpoints that need no credentials.
    pub rate_limiter: Arc<ratelimit::RateLimiter>,
    /// Requests per credential-less key rather than per client: an email address's digest (for
    /// filings without login), an unsubscribe link's (so a mail provider's one-click requests
    /// from a few addresses are never refused together).
    pub key_rate_limiter: Arc<ratelimit::RateLimiter<String>>,
    /// The portal's page templates.
    pub pages: Arc<web::Pages>,
    /// The pages' one stylesheet.
    pub stylesheet: Arc<str>,
    /// The consent script for the main app's pages.
    pub sdk: Arc<web::sdk::Sdk>,
    /// Signs the pages' CSRF seeds; derived from the console key, which replicas share.
    pub page_key: Arc<[u8; 32]>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Notify(#[from] notify::dispatcher::SetupError),
    #[error("pages: {0}")]
    Pages(#[from] notify::templates::TemplateError),
    #[error("policies: {0}")]
    Policies(#[from] policy::PolicyError),
    #[error("console key: {0}")]
    Key(staff::StaffError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A built service: database migrated, listener bound, ready to serve.
pub struct App {
    state: AppState,
    acceptor: TcpAcceptor,
    addr: SocketAddr,
}

impl App {
    /// Prepares the data folder, connects and migrates the database, and binds the listener
    /// (port 0 picks a free port, as the tests do).
    pub async fn build(mut config: Config) -> Result<Self, StartupError> {
        config.validate()?;
        let db = open_database(&config).await?;
        let report =
            actions::policies::import(&db, &config, &config.policies_dir, &audit::Actor::System)
                .await?;
        if !report.published.is_empty() {
            tracing::info!(published = ?report.published, "policy documents imported");
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartupError::Listen {
                addr: config.listen,
                source,
            })?;
        // Port 0 picks a free port; links to the portal use the one actually bound.
        config.listen = addr;
        if !config.console.require_totp && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "the console is reachable beyond this machine and accepts a password alone; \
                 set console.require_totp = true"
            );
        }
        if config.requests.export_key.is_none() {
            tracing::warn!(
                "export packages are encrypted with a key generated into the data folder, beside \
                 the packages it protects; set requests.export_key from a secret store"
            );
        }
        if config.subject_token_secret.is_some() && config.subject_token_audience.is_none() {
            tracing::warn!(
                "subject_token_audience is not set: any HS256 token signed with the subject token \
                 secret (the main app's own session tokens, say) opens the portal; set it, and \
                 have the main app put the same value in `aud`"
            );
        }
        let subject_tokens = config.subject_token_secret.clone().map(|secret| {
            SubjectTokens::new(
                secret,
                config.subject_token_audience.clone(),
                config.subject_token_issuer.clone(),
            )
        });
        let dispatcher = Arc::new(Dispatcher::new(&config, db.clone())?);
        let key_cache = Arc::new(KeyCache::new(Duration::from_secs(config.key_cache_seconds)));
        let rate_limiter = Arc::new(ratelimit::RateLimiter::new(config.rate_limit.per_minute));
        let key_rate_limiter = Arc::new(ratelimit::RateLimiter::new(
            config.rate_limit.per_email_per_minute,
        ));
        let pages = Arc::new(web::Pages::load(&config.templates_dir, web::AREAS)?);
        let css = config.templates_dir.join("assets").join("consentry.css");
        let stylesheet = Arc::from(words::read(&css)?);
        let sdk = Arc::new(web::sdk::Sdk::load(&config.templates_dir)?);
        let checks = Arc::new(consent::check::Checks::start(&db, &config.consent_cache));
        let console_key = staff::console_key(&config).map_err(StartupError::Key)?;
        let page_key = Arc::new(crypto::derive_key(&console_key, "consentry-pages"));
        db.watch_other_writers(Duration::from_millis(
            config.consent_cache.watch_interval_ms,
        ));
        let config = Arc::new(config);
        let group = Arc::new(db::Group::start(db.clone(), db::Each));
        let decisions = Arc::new(consent::Decisions::start(
            db.clone(),
            consent::DecisionSets::new(config.clone()),
        ));
        let state = AppState {
            config,
            db,
            group,
            decisions,
            subject_tokens,
            dispatcher,
            key_cache,
            checks,
            metrics: Arc::new(metrics::Metrics::default()),
            rate_limiter,
            key_rate_limiter,
            pages,
            stylesheet,
            sdk,
            page_key,
        };
        let acceptor = TcpAcceptor::from_tokio(listener)
            .map_err(|source| StartupError::Listen { addr, source })?;
        Ok(Self {
            state,
            acceptor,
            addr,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves and runs the background jobs until `shutdown` completes; then stops accepting
    /// connections, lets in-flight requests finish (up to a grace period), stops the jobs after
    /// their current pass, and closes the database pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let (stop_jobs, jobs_stopped) = watch::channel(false);
        let dispatcher = self
            .state
            .config
            .outbox
            .dispatch
            .then(|| tokio::spawn(self.state.dispatcher.clone().run(jobs_stopped)));
        actions::policies::start_roll_out(self.state.db.clone(), self.state.config.clone());
        let mut scheduler = match jobs::start(self.state.clone()).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "the job scheduler did not start");
                None
            }
        };
        let next_runs = match scheduler.as_mut() {
            Some(s) => s.next_runs().await,
            None => "none".into(),
        };
        let endpoint = http::app(self.state.clone());
        let config = &self.state.config;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            database = ?self.state.db.kind(),
            mail = if config.smtp_url.is_some() { "smtp" } else { "folder" },
            jobs = %next_runs,
            "listening on http://{addr}; API documentation at http://{addr}/docs",
            addr = self.addr
        );
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(endpoint, shutdown, Some(SHUTDOWN_GRACE))
            .await;
        let _ = stop_jobs.send(true);
        if let Some(mut scheduled) = scheduler
            && let Err(e) = scheduled.scheduler.shutdown().await
        {
            tracing::warn!(error = %e, "stopping the job scheduler failed");
        }
        if let Some(dispatcher) = dispatcher
            && let Err(e) = dispatcher.await
        {
            tracing::error!(error = %e, "the outbox dispatcher ended abnormally");
        }
        // Background work (a purge run, a rollout) finishes, or is stopped, before the pool
        // closes; it resumes on the next run if stopped.
        if let Err(e) = self.state.db.clone().close_after(SHUTDOWN_GRACE).await {
            tracing::warn!(error = %e, "closing the database pool failed");
        }
        tracing::info!("stopped");
        result
    }
}

/// Creates the data folder, connects, and applies pending migrations. The CLI commands that
/// only need the database use it directly.
pub async fn open_database(config: &Config) -> Result<Db, StartupError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let db = Db::connect(config).await?;
    db.migrate().await?;
    Ok(db)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
