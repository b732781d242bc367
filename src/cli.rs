//! The command-line interface: `serve` (the default), `migrate`, `keys`, `users`, `mail`,
//! `policies` and `purge`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    App, StartupError,
    actions::{accounts, operations},
    audit::Actor,
    auth::{Role, keys},
    config::Config,
    notify::{
        email::{Mailer, build_message},
        templates::Rendered,
    },
    open_database, shutdown_signal,
};

/// Consentry: privacy policies, consent, data-subject requests and retention under GDPR and PIPL.
#[derive(Debug, Parser)]
#[command(name = "consentry", version)]
pub struct Cli {
    /// Configuration file; `./consentry.toml` is read when present.
    #[arg(long, global = true, env = "CONSENTRY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check email delivery.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Manage policy documents.
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Manage the console's staff accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Write a consistent copy of the live SQLite database to a new file (on PostgreSQL, says
    /// to use pg_dump).
    Backup {
        /// Where the copy goes; must not exist yet.
        file: PathBuf,
    },
    /// Run the retention purge now and print its report as JSON.
    Purge {
        /// Report what a run would do; write nothing but the run record.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Import the Markdown documents of a folder (default: the configured `policies_dir`).
    /// Documents already present are skipped; a changed published document is refused.
    Import { dir: Option<PathBuf> },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Send a test message through the configured transport and print the server's answer.
    Test {
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the key is printed once, alone on the last line of stdout.
    Create {
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an account; prints a one-time setup link (valid 72 hours) where its owner chooses
    /// a password and enrols a second factor.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: Role,
    },
    /// List accounts.
    List,
    /// Disable an account and end its sessions.
    Disable { email: String },
    /// Clear an account's password and second factor and print a new setup link.
    Reset { email: String },
}

/// A failed command; configuration problems exit with 2, everything else with 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
    #[error("mail: {0}")]
    Mail(String),
    #[error("policies: {0}")]
    Policies(#[from] crate::policy::PolicyError),
    #[error("purge: {0}")]
    Purge(#[from] crate::retention::RetentionError),
    #[error("users: {0}")]
    Users(#[from] crate::staff::StaffError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("backup: {0}")]
    Backup(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Startup(StartupError::Config(_)) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs a parsed command with a loaded configuration.
pub async fn run(command: Command, config: Config) -> Result<(), CliError> {
    match command {
        Command::Serve => {
            let app = App::build(config).await?;
            app.run_until(shutdown_signal()).await?;
        }
        Command::Migrate => {
            open_database(&config).await?;
            println!("migrations applied");
        }
        Command::Keys(KeysCommand::Create { role, name }) => {
            let db = open_database(&config).await?;
            let issued = operations::create_key(&db, role, &name, &Actor::Cli).await?;
            println!(
                "created {} key {} ({}); store it now, it is not shown again:",
                issued.record.role.as_str(),
                issued.record.id,
                issued.record.name
            );
            println!("{}", issued.secret.expose());
        }
        Command::Keys(KeysCommand::List) => {
            let db = open_database(&config).await?;
            println!(
                "{:<16}  {:<8}  {:<25}  {:<25}  {:<25}  name",
                "id", "role", "created", "last used", "revoked"
            );
            let stamp = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            for key in keys::list(db.conn()).await? {
                println!(
                    "{:<16}  {:<8}  {:<25}  {:<25}  {:<25}  {}",
                    key.id,
                    key.role.as_str(),
                    stamp(Some(key.created_at)),
                    stamp(key.last_used_at),
                    stamp(key.revoked_at),
                    key.name
                );
            }
        }
        Command::Mail(MailCommand::Test { to }) => {
            config.validate().map_err(StartupError::from)?;
            let mailer = Mailer::from_config(&config).map_err(CliError::Mail)?;
            let rendered = Rendered {
                subject: "Consentry test message".into(),
                text: "This is a test message from Consentry: email delivery works.\n".into(),
                html: "<p>This is a test message from Consentry: email delivery works.</p>".into(),
            };
            let id = uuid::Uuid::now_v7().to_string();
            let message =
                build_message(&config.mail, &to, &id, rendered).map_err(CliError::Mail)?;
            let answer = mailer
                .send(message)
                .await
                .map_err(|e| CliError::Mail(e.detail))?;
            println!("accepted: {answer}");
        }
        Command::Policies(PoliciesCommand::Import { dir }) => {
            let db = open_database(&config).await?;
            let dir = dir.unwrap_or_else(|| config.policies_dir.clone());
            let report = crate::actions::policies::import(&db, &config, &dir, &Actor::Cli).await?;
            for doc in &report.published {
                println!("published {doc}");
            }
            println!(
                "{} published, {} unchanged",
                report.published.len(),
                report.unchanged
            );
        }
        Command::Keys(KeysCommand::Revoke { id }) => {
            let db = open_database(&config).await?;
            // This process answers no requests, so it keeps no key cache to clear; serving
            // replicas forget the key within `key_cache_seconds`.
            let cache = std::sync::Arc::new(keys::KeyCache::new(std::time::Duration::ZERO));
            let key = operations::revoke_key(&db, &cache, &id, &Actor::Cli).await?;
            println!("revoked key {} ({})", key.id, key.name);
        }
        Command::Users(command) => users(command, &config).await?,
        Command::Backup { file } => {
            let db = open_database(&config).await?;
            db.backup(&file).await.map_err(CliError::Backup)?;
            println!("{}", file.display());
        }
        Command::Purge { dry_run } => {
            use crate::retention::purge;
            let db = open_database(&config).await?;
            let run = purge::start(&db, &config, dry_run, crate::clock::now(), &Actor::Cli).await?;
            let run = crate::actions::purges::execute(&db, &config, run).await?;
            let report: serde_json::Value = serde_json::from_str(&run.report).unwrap_or_default();
            println!(
                "{}",
                serde_json::json!({
                    "id": run.id,
                    "dry_run": run.dry_run,
                    "status": run.status,
                    "report": report,
                })
            );
        }
    }
    Ok(())
}

async fn users(command: UsersCommand, config: &Config) -> Result<(), CliError> {
    use crate::staff;
    let db = open_database(config).await?;
    let setup_url = |token: &str| format!("{}/setup?token={token}", config.console_url());
    match command {
        UsersCommand::Create { email, role } => {
            let (user, link) = accounts::create(&db, &email, role, &Actor::Cli).await?;
            println!(
                "created {} account {}; send its owner this setup link (one use, until {}):",
                user.role.as_str(),
                user.email,
                link.expires_at.format("%Y-%m-%d %H:%M UTC")
            );
            println!("{}", setup_url(&link.token));
        }
        UsersCommand::List => {
            println!(
                "{:<36}  {:<8}  {:<5}  {:<20}  {:<8}  email",
                "id", "role", "totp", "last sign-in", "state"
            );
            for user in staff::list(db.conn()).await? {
                let state = if user.disabled_at.is_some() {
                    "disabled"
                } else if user.password_hash.is_none() {
                    "setup"
                } else {
                    "active"
                };
                println!(
                    "{:<36}  {:<8}  {:<5}  {:<20}  {:<8}  {}",
                    user.id,
                    user.role.as_str(),
                    if user.totp_enabled_at.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    user.last_sign_in_at
                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_else(|| "-".into()),
                    state,
                    user.email
                );
            }
        }
        UsersCommand::Disable { email } => {
            let user = accounts::disable(&db, &email, &Actor::Cli).await?;
            println!("disabled {} and ended its sessions", user.email);
        }
        UsersCommand::Reset { email } => {
            let link = accounts::reset(&db, config, &email, &Actor::Cli).await?;
            println!("reset {email}; its new setup link (one use):");
            println!("{}", setup_url(&link.token));
        }
    }
    Ok(())
}
