//! Configuration: compiled defaults, then an optional `consentry.toml`, then `CONSENTRY_*`
//! environment variables (nested keys joined with `__`), with `DATABASE_URL` accepted as well.
//!
//! Loading never panics: every problem becomes a [`ConfigError`] that names the setting, so that
//! `main` can print one line and exit with code 2.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::Deserialize;

pub use crate::crypto::Secret;
pub use banner::BannerConfig;
pub use mail::{SmtpSettings, parse_mailbox};

mod banner;
mod mail;

/// Every setting, with the defaults that make `cargo run` work on a fresh machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on (`CONSENTRY_LISTEN`).
    pub listen: SocketAddr,
    /// `CONSENTRY_*` environment variables that are not settings, with why they were ignored:
    /// for the service to log once its logging is up.
    #[serde(skip)]
    pub ignored_variables: Vec<String>,
    /// Folder for the SQLite file, mail written to disk and export packages
    /// (`CONSENTRY_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...` (`DATABASE_URL`); defaults to a SQLite file in
    /// `data_dir`.
    pub database_url: Option<Secret>,
    /// Upper bound of the connection pool.
    pub database_max_connections: u32,
    /// Policy documents imported at start-up.
    pub policies_dir: PathBuf,
    /// Handlebars templates for emails.
    pub templates_dir: PathBuf,
    /// Largest request body accepted, in bytes; larger ones are answered with 413.
    pub max_body_bytes: usize,
    /// Seconds an API key read from the database is trusted without reading it again. A key
    /// revoked through this process stops working at once; through another replica, within
    /// this time. Zero reads the database on every request.
    pub key_cache_seconds: u64,
    /// Consent checks answered from memory.
    pub consent_cache: ConsentCacheConfig,
    /// `GET /metrics` for Prometheus.
    pub metrics: MetricsConfig,
    /// Logging format and filter.
    pub log: LogConfig,
    /// Networks of the reverse proxies in front of the service, e.g. `["10.0.0.0/8"]`: only
    /// their [`Config::trusted_proxy_header`] names the client (rate limits, sign-in locks,
    /// consent evidence). Empty: the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header the trusted proxies write the client's address into, read right to left
    /// past trusted hops: `x-forwarded-for` (nginx, most cloud load balancers; the default) or
    /// `forwarded` (RFC 7239). Any other forwarding header is ignored, since the client may
    /// have written it.
    pub trusted_proxy_header: String,
    /// HMAC key for the subject tokens that the main app mints for the portal
    /// (`CONSENTRY_SUBJECT_TOKEN_SECRET`). Without it, portal endpoints answer 401.
    pub subject_token_secret: Option<Secret>,
    /// The `aud` every subject token must carry (`CONSENTRY_SUBJECT_TOKEN_AUDIENCE`), e.g.
    /// `consentry-portal`; set it, so that no other token signed with the secret opens the portal.
    pub subject_token_audience: Option<String>,
    /// The `iss` every subject token must carry (`CONSENTRY_SUBJECT_TOKEN_ISSUER`).
    pub subject_token_issuer: Option<String>,
    /// Standard Webhooks secrets (`whsec_...`, comma-separated so that a secret can be rotated)
    /// for webhooks in both directions (`CONSENTRY_WEBHOOK_SECRET`). Outgoing webhooks are
    /// signed with the first.
    pub webhook_secret: Option<Secret>,
    /// `smtp://user:pass@host:port` or `smtps://...` (`CONSENTRY_SMTP_URL`). Without it, email
    /// is written as `.eml` files to `<data_dir>/mail/`.
    pub smtp_url: Option<Secret>,
    /// Sender details and SMTP transport settings.
    pub mail: MailConfig,
    /// Where outgoing webhooks to the main app go.
    pub webhooks: WebhooksConfig,
    /// Delivery of queued emails and webhooks.
    pub outbox: OutboxConfig,
    /// Who the controller is, for consent receipts and emails.
    pub controller: ControllerConfig,
    /// How consent evidence is kept.
    pub consent: ConsentConfig,
    /// Age-gate thresholds.
    pub age: AgeConfig,
    /// Limits on public endpoints, per client IP address.
    pub rate_limit: RateLimitConfig,
    /// Data-subject requests: laws, calendars, exports.
    pub requests: RequestsConfig,
    /// The retention purge.
    pub retention: RetentionConfig,
    /// The rights portal served under `/portal`.
    pub portal: PortalConfig,
    /// The privacy team's console served under `/console`.
    pub console: ConsoleConfig,
    /// The consent script for the main app's pages.
    pub banner: BannerConfig,
}

/// Staff sign-in to the console.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Every account must enrol a TOTP second factor before it can use the console.
    pub require_totp: bool,
    /// Key sealing the TOTP seeds in the database: 32 bytes, base64. Without one, a key is
    /// generated into `<data_dir>/console.key` on first use.
    pub totp_key: Option<Secret>,
    /// Minutes a console session lasts at most.
    pub session_minutes: u32,
    /// Minutes without a page view that end a console session.
    pub idle_minutes: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            require_totp: true,
            totp_key: None,
            session_minutes: 8 * 60,
            idle_minutes: 30,
        }
    }
}

/// The rights portal's sessions, sign-in and unsubscribe links.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// Where people sign in to the main app, which then hands them to
    /// `/portal/session?token=`; shown on the portal's sign-in page.
    pub sign_in_url: Option<String>,
    /// Minutes a portal session lasts at most.
    pub session_minutes: u32,
    /// Minutes without a page view that end a portal session.
    pub idle_minutes: u32,
    /// Key that signs one-click unsubscribe links: 32 bytes, base64. Without one, a key is
    /// generated into `<data_dir>/unsubscribe.key` on first use.
    pub unsubscribe_key: Option<Secret>,
    /// The operator's logo in the portal's header (an `https://` URL, or a path on this host).
    pub logo_url: Option<String>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            sign_in_url: None,
            session_minutes: 12 * 60,
            idle_minutes: 30,
            unsubscribe_key: None,
            logo_url: None,
        }
    }
}

/// When the retention purge runs and what Consentry keeps of its own data.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// When the purge runs: a cron expression with seconds, in UTC.
    pub purge_schedule: String,
    /// Items per erasure job sent to the main app.
    pub batch_size: u64,
    /// Seconds a run holds its lease without renewing it. A run renews it after every batch;
    /// when a process dies mid-run, the next run can start this long after.
    pub run_lease_seconds: u64,
    /// How long delivered outbox messages are kept (ISO 8601 duration).
    pub keep_delivered_outbox: String,
    /// How long the minimal proof of consent outlives a person's erasure (ISO 8601 duration;
    /// PIPL Art 56 asks for at least three years).
    pub keep_erased_proofs: String,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            purge_schedule: "0 0 3 * * *".into(),
            batch_size: 1000,
            run_lease_seconds: 120,
            keep_delivered_outbox: "P30D".into(),
            keep_erased_proofs: "P3Y".into(),
        }
    }
}

/// Deadlines and packages of data-subject requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestsConfig {
    /// The law for people outside China, the EU/EEA and the UK.
    pub default_law: crate::vocab::Law,
    /// Public holidays that do not count as working days for GDPR deadlines (TOML only), e.g.
    /// `["2026-12-25", "2027-01-01"]`.
    pub holidays: Vec<chrono::NaiveDate>,
    /// Mainland China's public holidays beyond the shipped years, for PIPL deadlines (TOML
    /// only), from the State Council's yearly notice.
    pub china_holidays: Vec<chrono::NaiveDate>,
    /// Weekend days that are working days in mainland China (调休上班) beyond the shipped
    /// years, from the same notice (TOML only).
    pub china_working_days: Vec<chrono::NaiveDate>,
    /// How long after the person is told a restriction of processing ends (ISO 8601 duration;
    /// GDPR Art 18(3): they are told before it is lifted).
    pub restriction_lift_notice: String,
    /// When due restrictions are lifted: a cron expression with seconds, in UTC.
    pub restriction_lift_schedule: String,
    /// Working days from verification to the PIPL deadline.
    pub pipl_working_days: u32,
    /// Days an export package can be downloaded before it is deleted.
    pub export_days: u32,
    /// Key that encrypts export packages at rest: 32 bytes, base64. Without one, a key is
    /// generated into `<data_dir>/export.key` on first use.
    pub export_key: Option<Secret>,
    /// Earlier export keys, kept to open the packages they sealed until those expire.
    pub export_previous_keys: Vec<Secret>,
    /// Key of the pseudonym that replaces an erased person's id: 32 bytes, base64. Without one,
    /// a key is generated into `<data_dir>/pseudonym.key` on first use. Keep it: with it, and
    /// only with it, the kept proof of an erased person's consent is found from their old id.
    pub pseudonym_key: Option<Secret>,
    /// Key sealing the signing secrets of registered systems: 32 bytes, base64. Without one, a
    /// key is generated into `<data_dir>/systems.key` on first use.
    pub systems_key: Option<Secret>,
    /// Addresses that receive the daily digest of overdue and soon-due requests.
    pub digest_to: Vec<String>,
    /// When the digest is sent: a cron expression with seconds, in UTC.
    pub digest_schedule: String,
    /// Requests due within this many days are "soon due" in the digest.
    pub digest_due_within_days: u32,
    /// When expired export packages are deleted: a cron expression with seconds, in UTC.
    pub export_purge_schedule: String,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        Self {
            default_law: crate::vocab::Law::Gdpr,
            holidays: Vec::new(),
            china_holidays: Vec::new(),
            china_working_days: Vec::new(),
            pipl_working_days: 15,
            restriction_lift_notice: "P7D".into(),
            restriction_lift_schedule: "0 */10 * * * *".into(),
            export_days: 7,
            export_key: None,
            export_previous_keys: Vec::new(),
            pseudonym_key: None,
            systems_key: None,
            digest_to: Vec::new(),
            digest_schedule: "0 0 7 * * *".into(),
            digest_due_within_days: 3,
            export_purge_schedule: "0 15 * * * *".into(),
        }
    }
}

/// Overrides of the shipped age-of-consent table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgeConfig {
    /// Age for countries without an entry (GDPR Art 8(1): 16).
    pub default_threshold: u32,
    /// Per-country ages, e.g. `{ FR = 15 }` (TOML only).
    pub thresholds: std::collections::BTreeMap<String, u32>,
    /// Days a minor may wait for a guardian's consent before an erasure request is opened.
    pub guardian_grace_days: u32,
    /// When the job that opens those requests runs: a cron expression with seconds, in UTC.
    pub sweep_schedule: String,
}

impl Default for AgeConfig {
    fn default() -> Self {
        Self {
            default_threshold: 16,
            thresholds: Default::default(),
            guardian_grace_days: 7,
            sweep_schedule: "0 30 3 * * *".into(),
        }
    }
}

/// `GET /metrics` on the main listener. Its figures hold no personal data, but they tell how
/// busy the service is: set a token when the listener is reachable from outside.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<Secret>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
        }
    }
}

/// The consent check's memory: facts of recent checks, dropped by any write this process
/// commits and by any write another process commits (seen by `NOTIFY` on PostgreSQL, by polling
/// SQLite's `data_version` every `watch_interval_ms`), and expiring after `ttl_ms` whatever
/// happens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentCacheConfig {
    pub enabled: bool,
    /// Entries (person and purpose) kept at most.
    pub capacity: u64,
    /// The longest an entry lives, in milliseconds.
    pub ttl_ms: u64,
    /// SQLite: how often another process's commits are looked for; PostgreSQL: how long to
    /// wait before listening again after the connection was lost. Milliseconds. The watch runs
    /// even with the cache off, since it also wakes the outbox dispatcher.
    pub watch_interval_ms: u64,
}

impl Default for ConsentCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 100_000,
            ttl_ms: 60_000,
            watch_interval_ms: 50,
        }
    }
}

/// Requests per minute that one IP address may make to an unauthenticated endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_minute: u32,
    /// Requests filed per minute for one email address.
    pub per_email_per_minute: u32,
    /// Requests filed without a login per UTC day for one email address, across replicas.
    pub filings_per_email_per_day: u32,
    /// Wrong verification codes per UTC day for one email address, across all its requests.
    pub failed_codes_per_email_per_day: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: 60,
            per_email_per_minute: 3,
            filings_per_email_per_day: 10,
            failed_codes_per_email_per_day: 10,
        }
    }
}

/// The organisation responsible for the processing (GDPR Art 4(7), the PIPL's "personal
/// information handler"), named in consent receipts.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerConfig {
    pub name: String,
    /// Where people reach the privacy team or data-protection officer.
    pub contact_email: String,
    pub address: String,
    /// The self-service rights portal, linked from emails (policy changes, exports, guardian
    /// links). Empty means the portal this service serves at `http://<listen>/portal`; set it
    /// to the public address behind a proxy, or to an operator's own portal.
    pub portal_url: String,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            name: "Example Controller".into(),
            contact_email: "privacy@example.com".into(),
            address: "Set controller.address in consentry.toml".into(),
            portal_url: String::new(),
        }
    }
}

/// What is kept of the requester's IP address as evidence of a consent event.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IpEvidence {
    /// IPv4 to its /24, IPv6 to its /48: enough to show the network, not the person.
    Truncate,
    /// HMAC-SHA256 with `consent.ip_hash_key`: the same address gives the same value, and an
    /// address can be checked against it, but not read back.
    Hash,
    /// Nothing.
    None,
}

/// Consent ledger settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentConfig {
    pub ip_evidence: IpEvidence,
    /// Key for `ip_evidence = "hash"` (`CONSENTRY_CONSENT__IP_HASH_KEY`).
    pub ip_hash_key: Option<Secret>,
    /// Subjects whose consents one batch of a material policy change marks (and emails).
    pub reconsent_batch_size: u64,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        Self {
            ip_evidence: IpEvidence::Truncate,
            ip_hash_key: None,
            reconsent_batch_size: 500,
        }
    }
}

/// Email settings besides the SMTP URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `From:` of every email, e.g. `Privacy team <privacy@example.com>`.
    pub from: String,
    /// Optional `Reply-To:`, e.g. the data-protection officer's mailbox.
    pub reply_to: Option<String>,
    /// TLS towards the SMTP server: `none`, `opportunistic` (STARTTLS when offered), `starttls`
    /// (required) or `tls` (implicit). Defaults to `tls` for `smtps://`, else `opportunistic`.
    pub tls: Option<SmtpTls>,
    /// Pooled SMTP connections kept open.
    pub pool_size: u32,
    /// Seconds to wait for the SMTP server.
    pub timeout_seconds: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "Consentry <no-reply@localhost>".into(),
            reply_to: None,
            tls: None,
            pool_size: 8,
            timeout_seconds: 30,
        }
    }
}

/// TLS mode towards the SMTP server.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Opportunistic,
    Starttls,
    Tls,
}

/// Outgoing webhook endpoints of the main app.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Endpoint for every event type without a route of its own (`CONSENTRY_WEBHOOKS__URL`).
    pub url: Option<String>,
    /// Endpoints per event type, e.g. `"consent.withdrawn" = "https://app/hooks/consent"`
    /// (TOML only: event types contain dots).
    pub routes: std::collections::BTreeMap<String, String>,
    /// Seconds before a delivery attempt counts as failed.
    pub timeout_seconds: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            url: None,
            routes: Default::default(),
            timeout_seconds: 10,
        }
    }
}

impl WebhooksConfig {
    /// The endpoint for an event type, if the main app wants it.
    pub fn endpoint(&self, event_type: &str) -> Option<&str> {
        self.routes
            .get(event_type)
            .or(self.url.as_ref())
            .map(String::as_str)
    }

    fn is_enabled(&self) -> bool {
        self.url.is_some() || !self.routes.is_empty()
    }
}

/// How the dispatcher works through the outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// Run the delivery loop in this process; turn it off on replicas that should only serve
    /// HTTP (or in tests that drive delivery themselves).
    pub dispatch: bool,
    /// Milliseconds between looks at the outbox when it is idle.
    pub poll_interval_ms: u64,
    /// Rows claimed per batch; memory stays bounded by it, not by the outbox's length.
    pub batch_size: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Attempts before a message is dead (visible to admins, retried only by hand).
    pub max_attempts: i32,
    /// The first retry waits this long; each further one twice as long (with jitter). The
    /// default, 180 s over 10 attempts, spreads retries over about a day.
    pub backoff_base_seconds: u64,
    /// A claimed row becomes due again after this long if its claimer never reports back (a
    /// crash), so a message is never lost; it may then be sent twice, with the same id.
    pub claim_timeout_seconds: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            dispatch: true,
            poll_interval_ms: 1000,
            batch_size: 200,
            concurrency: 16,
            max_attempts: 10,
            backoff_base_seconds: 180,
            claim_timeout_seconds: 300,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ignored_variables: Vec::new(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 10,
            policies_dir: PathBuf::from("policies"),
            templates_dir: PathBuf::from("templates"),
            max_body_bytes: 1024 * 1024,
            key_cache_seconds: 5,
            consent_cache: ConsentCacheConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            trusted_proxies: Vec::new(),
            trusted_proxy_header: "x-forwarded-for".into(),
            subject_token_secret: None,
            subject_token_audience: None,
            subject_token_issuer: None,
            webhook_secret: None,
            smtp_url: None,
            mail: MailConfig::default(),
            webhooks: WebhooksConfig::default(),
            outbox: OutboxConfig::default(),
            controller: ControllerConfig::default(),
            consent: ConsentConfig::default(),
            age: AgeConfig::default(),
            rate_limit: RateLimitConfig::default(),
            requests: RequestsConfig::default(),
            retention: RetentionConfig::default(),
            portal: PortalConfig::default(),
            console: ConsoleConfig::default(),
            banner: BannerConfig::default(),
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `human` for a terminal, `json` for a log collector.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `consentry=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            // Consentry's own lines at info; libraries (the scheduler, the database driver, the
            // HTTP server) only when they warn.
            level: "warn,consentry=info,migration=info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A configuration problem, reported as one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// The configuration file read from the working folder when no other is named.
const DEFAULT_FILE: &str = "consentry.toml";

/// Shortest accepted subject-token secret: HS256 keys shorter than the hash output are weak.
const MIN_TOKEN_SECRET_BYTES: usize = 32;

impl Config {
    /// Loads the layers. `file` is the TOML file to read; a missing file is skipped only when it
    /// is the default `consentry.toml`, so that a mistyped `--config` path is reported.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if std::path::Path::new(DEFAULT_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_FILE));
            }
            None => {}
        }
        let figment = figment.merge(Env::raw().only(&["DATABASE_URL"]));
        // Unknown names in the file are the user's own typo and stop the service; unknown
        // `CONSENTRY_*` variables are often the platform's (Kubernetes sets `CONSENTRY_PORT`
        // for a Service named `consentry`) or a script's, so they are ignored with a warning.
        let mut ignored: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        loop {
            let skip = ignored.clone();
            let env = Env::prefixed("CONSENTRY_")
                .filter(move |key| {
                    let key = key.as_str().to_ascii_lowercase();
                    // The test suite's own variables share the prefix but are not ours.
                    !key.starts_with("test_") && !skip.contains(&key)
                })
                // `CONSENTRY_CONFIG` names the file and is read by the command line.
                .ignore(&["config"])
                .split("__");
            match figment.clone().merge(env).extract::<Config>() {
                Ok(mut config) => {
                    config.validate()?;
                    config.ignored_variables = notes;
                    return Ok(config);
                }
                Err(e) => match unknown_variable(&e) {
                    Some((key, note)) if !ignored.contains(&key) => {
                        ignored.push(key);
                        notes.push(note);
                    }
                    _ => {
                        let setting = setting_name(&e.path);
                        return Err(ConfigError::new(setting, e.kind.to_string()));
                    }
                },
            }
        }
    }

    /// Checks what serde cannot: URL schemes, secret formats and lengths.
    /// The portal's base URL without a trailing slash: `controller.portal_url`, or this
    /// service's own `/portal` at the listen address.
    pub fn portal_url(&self) -> String {
        if self.controller.portal_url.is_empty() {
            format!("http://{}/portal", self.listen)
        } else {
            self.controller.portal_url.trim_end_matches('/').to_string()
        }
    }

    /// The console's base URL without a trailing slash: beside the portal when the portal is
    /// this service's (`.../portal` → `.../console`), else this service's own `/console`.
    pub fn console_url(&self) -> String {
        match self.portal_url().strip_suffix("/portal") {
            Some(base) => format!("{base}/console"),
            None => format!("http://{}/console", self.listen),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database_kind()?;
        if poem::http::HeaderName::from_bytes(self.trusted_proxy_header.as_bytes()).is_err() {
            return Err(ConfigError::new(
                "CONSENTRY_TRUSTED_PROXY_HEADER",
                "expected a header name such as x-forwarded-for or forwarded",
            ));
        }
        if let Some(secret) = &self.subject_token_secret
            && secret.expose().len() < MIN_TOKEN_SECRET_BYTES
        {
            return Err(ConfigError::new(
                "CONSENTRY_SUBJECT_TOKEN_SECRET",
                format!("must be at least {MIN_TOKEN_SECRET_BYTES} bytes long"),
            ));
        }
        if let Some(secret) = &self.webhook_secret {
            parse_webhook_secrets(secret.expose())
                .map_err(|m| ConfigError::new("CONSENTRY_WEBHOOK_SECRET", m))?;
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::new("CONSENTRY_LOG__LEVEL", e.to_string()))?;
        if self.webhooks.is_enabled() && self.webhook_secret.is_none() {
            return Err(ConfigError::new(
                "CONSENTRY_WEBHOOK_SECRET",
                "required to sign outgoing webhooks when webhooks.url or webhooks.routes is set",
            ));
        }
        for url in self
            .webhooks
            .url
            .iter()
            .chain(self.webhooks.routes.values())
        {
            // Never echo the URL whole: its query or user part may hold a token.
            let parsed = url::Url::parse(url).map_err(|e| {
                ConfigError::new("CONSENTRY_WEBHOOKS__URL", format!("not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::new(
                    "CONSENTRY_WEBHOOKS__URL",
                    format!(
                        "{}://{}: expected an http:// or https:// URL",
                        parsed.scheme(),
                        parsed.host_str().unwrap_or_default()
                    ),
                ));
            }
        }
        if let Some(url) = &self.smtp_url {
            SmtpSettings::parse(url.expose(), self.mail.tls)
                .map_err(|m| ConfigError::new("CONSENTRY_SMTP_URL", m))?;
        }
        parse_mailbox(&self.mail.from).map_err(|m| ConfigError::new("CONSENTRY_MAIL__FROM", m))?;
        if let Some(reply_to) = &self.mail.reply_to {
            parse_mailbox(reply_to).map_err(|m| ConfigError::new("CONSENTRY_MAIL__REPLY_TO", m))?;
        }
        if self.outbox.batch_size == 0
            || self.outbox.concurrency == 0
            || self.outbox.max_attempts < 1
        {
            return Err(ConfigError::new(
                "CONSENTRY_OUTBOX",
                "batch_size, concurrency and max_attempts must be at least 1",
            ));
        }
        if self.consent.ip_evidence == IpEvidence::Hash && self.consent.ip_hash_key.is_none() {
            return Err(ConfigError::new(
                "CONSENTRY_CONSENT__IP_HASH_KEY",
                "required when consent.ip_evidence is `hash`",
            ));
        }
        if self.consent.reconsent_batch_size == 0 {
            return Err(ConfigError::new(
                "CONSENTRY_CONSENT__RECONSENT_BATCH_SIZE",
                "must be at least 1",
            ));
        }
        if !self.controller.portal_url.is_empty() {
            url::Url::parse(&self.controller.portal_url).map_err(|e| {
                ConfigError::new(
                    "CONSENTRY_CONTROLLER__PORTAL_URL",
                    format!("not a URL: {e}"),
                )
            })?;
        }
        if self.console.session_minutes == 0 || self.console.idle_minutes == 0 {
            return Err(ConfigError::new(
                "CONSENTRY_CONSOLE__SESSION_MINUTES",
                "session and idle minutes must be at least 1",
            ));
        }
        if self.portal.session_minutes == 0 || self.portal.idle_minutes == 0 {
            return Err(ConfigError::new(
                "CONSENTRY_PORTAL__SESSION_MINUTES",
                "session and idle minutes must be at least 1",
            ));
        }
        crate::jobs::check_schedule(&self.age.sweep_schedule)
            .map_err(|m| ConfigError::new("CONSENTRY_AGE__SWEEP_SCHEDULE", m))?;
        crate::jobs::check_schedule(&self.requests.digest_schedule)
            .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__DIGEST_SCHEDULE", m))?;
        crate::jobs::check_schedule(&self.requests.restriction_lift_schedule)
            .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__RESTRICTION_LIFT_SCHEDULE", m))?;
        self.requests
            .restriction_lift_notice
            .parse::<crate::period::Period>()
            .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__RESTRICTION_LIFT_NOTICE", m))?;
        crate::jobs::check_schedule(&self.requests.export_purge_schedule)
            .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__EXPORT_PURGE_SCHEDULE", m))?;
        crate::jobs::check_schedule(&self.retention.purge_schedule)
            .map_err(|m| ConfigError::new("CONSENTRY_RETENTION__PURGE_SCHEDULE", m))?;
        self.retention
            .keep_delivered_outbox
            .parse::<crate::period::Period>()
            .map_err(|m| ConfigError::new("CONSENTRY_RETENTION__KEEP_DELIVERED_OUTBOX", m))?;
        let proofs = self
            .retention
            .keep_erased_proofs
            .parse::<crate::period::Period>()
            .map_err(|m| ConfigError::new("CONSENTRY_RETENTION__KEEP_ERASED_PROOFS", m))?;
        if proofs.is_zero() {
            return Err(ConfigError::new(
                "CONSENTRY_RETENTION__KEEP_ERASED_PROOFS",
                "proof of consent must outlive an erasure (PIPL Art 56: three years)",
            ));
        }
        if self.retention.batch_size == 0 || self.retention.run_lease_seconds == 0 {
            return Err(ConfigError::new(
                "CONSENTRY_RETENTION",
                "batch_size and run_lease_seconds must be at least 1",
            ));
        }
        if let Some(key) = &self.requests.export_key {
            crate::crypto::parse_key(key.expose())
                .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__EXPORT_KEY", m))?;
        }
        for key in &self.requests.export_previous_keys {
            crate::crypto::parse_key(key.expose())
                .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__EXPORT_PREVIOUS_KEYS", m))?;
        }
        if let Some(key) = &self.requests.pseudonym_key {
            crate::crypto::parse_key(key.expose())
                .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__PSEUDONYM_KEY", m))?;
        }
        if let Some(key) = &self.requests.systems_key {
            crate::crypto::parse_key(key.expose())
                .map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__SYSTEMS_KEY", m))?;
        }
        for to in &self.requests.digest_to {
            parse_mailbox(to).map_err(|m| ConfigError::new("CONSENTRY_REQUESTS__DIGEST_TO", m))?;
        }
        if self.requests.pipl_working_days == 0 || self.requests.export_days == 0 {
            return Err(ConfigError::new(
                "CONSENTRY_REQUESTS",
                "pipl_working_days and export_days must be at least 1",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(ConfigError::new(
                "CONSENTRY_MAX_BODY_BYTES",
                "must be greater than 0",
            ));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::new(
                "CONSENTRY_DATABASE_MAX_CONNECTIONS",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or a SQLite file in the data folder.
    pub fn database_url(&self) -> Secret {
        self.database_url.clone().unwrap_or_else(|| {
            Secret::new(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("consentry.db").display()
            ))
        })
    }

    /// The engine behind [`Self::database_url`], or an error naming `DATABASE_URL`.
    pub fn database_kind(&self) -> Result<DatabaseKind, ConfigError> {
        let url = self.database_url();
        let scheme = url
            .expose()
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .unwrap_or_default();
        match scheme {
            "sqlite" => Ok(DatabaseKind::Sqlite),
            "postgres" | "postgresql" => {
                url::Url::parse(url.expose())
                    .map_err(|e| ConfigError::new("DATABASE_URL", format!("not a URL: {e}")))?;
                Ok(DatabaseKind::Postgres)
            }
            _ => Err(ConfigError::new(
                "DATABASE_URL",
                "expected a sqlite:// or postgres:// URL",
            )),
        }
    }
}

/// `["log", "format"]` becomes `CONSENTRY_LOG__FORMAT`, the name an operator would set.
/// For an unknown field that came from a `CONSENTRY_*` variable: the variable's key as the
/// provider sees it (lower case, after the prefix), and a note naming it and, when one is
/// close, the setting it was probably meant to be.
fn unknown_variable(e: &figment::Error) -> Option<(String, String)> {
    let figment::error::Kind::UnknownField(field, expected) = &e.kind else {
        return None;
    };
    let from_env = e
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("CONSENTRY_"));
    if !from_env {
        return None;
    }
    let mut path = e.path.clone();
    if path.last() != Some(field) {
        path.push(field.clone());
    }
    let variable = setting_name(&path);
    let key = path.join("__").to_ascii_lowercase();
    let closest = expected
        .iter()
        .map(|name| (strsim::levenshtein(field, name), name))
        .filter(|(distance, _)| *distance <= 2)
        .min();
    let note = match closest {
        Some((_, name)) => {
            let mut meant = path.clone();
            *meant.last_mut().expect("a field") = name.to_string();
            format!(
                "{variable} is not a setting and was ignored; did you mean {}?",
                setting_name(&meant)
            )
        }
        None => format!("{variable} is not a setting and was ignored"),
    };
    Some((key, note))
}

fn setting_name(path: &[String]) -> String {
    match path {
        [] => "configuration".into(),
        [single] if single == "database_url" => "DATABASE_URL".into(),
        _ => format!("CONSENTRY_{}", path.join("__").to_uppercase()),
    }
}

/// Decodes a comma-separated list of Standard Webhooks secrets (`whsec_` + base64) into the raw
/// HMAC keys; several are accepted at once so that a secret can be rotated without downtime.
pub fn parse_webhook_secrets(list: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    let keys = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|secret| {
            let encoded = secret
                .strip_prefix("whsec_")
                .ok_or("each secret must start with `whsec_`")?;
            let key = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| "the part after `whsec_` must be base64")?;
            if key.len() < 24 {
                return Err("each secret must decode to at least 24 bytes");
            }
            Ok(key)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("no secret given".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_names_follow_the_environment_variables() {
        assert_eq!(setting_name(&["listen".into()]), "CONSENTRY_LISTEN");
        assert_eq!(
            setting_name(&["log".into(), "format".into()]),
            "CONSENTRY_LOG__FORMAT"
        );
        assert_eq!(setting_name(&["database_url".into()]), "DATABASE_URL");
    }

    #[test]
    fn unknown_database_schemes_are_refused() {
        let config = Config {
            database_url: Some(Secret::new("nonsense://x")),
            ..Config::default()
        };
        let err = config.database_kind().unwrap_err();
        assert_eq!(err.setting, "DATABASE_URL");
    }

    #[test]
    fn a_refused_webhook_url_is_not_echoed_with_its_token() {
        for url in [
            "ftp://hooks.example.com/in?token=s3cr3t",
            "https//user:s3cr3t@x",
        ] {
            let mut config = Config {
                webhook_secret: Some(Secret::new("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3")),
                ..Config::default()
            };
            config.webhooks.url = Some(url.into());
            let err = config.validate().unwrap_err();
            assert_eq!(err.setting, "CONSENTRY_WEBHOOKS__URL");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn webhook_secrets_are_a_comma_separated_list() {
        let keys = parse_webhook_secrets(
            "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3, whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4",
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        assert!(parse_webhook_secrets("plain").is_err());
        assert!(parse_webhook_secrets("whsec_!!").is_err());
        assert!(parse_webhook_secrets("").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
