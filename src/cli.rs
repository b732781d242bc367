//! The command-line interface: `serve` (the default), `migrate` and `keys`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    App, StartupError,
    audit::Actor,
    auth::{Role, keys},
    config::Config,
    prepare, shutdown_signal,
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

/// A failed command; configuration problems exit with 2, everything else with 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
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
            prepare(config).await?;
            println!("migrations applied");
        }
        Command::Keys(KeysCommand::Create { role, name }) => {
            let state = prepare(config).await?;
            let issued = keys::create(&state.db, role, &name, &Actor::Cli).await?;
            println!(
                "created {} key {} ({}); store it now, it is not shown again:",
                issued.record.role.as_str(),
                issued.record.id,
                issued.record.name
            );
            println!("{}", issued.secret.expose());
        }
        Command::Keys(KeysCommand::List) => {
            let state = prepare(config).await?;
            println!(
                "{:<16}  {:<8}  {:<25}  {:<25}  {:<25}  name",
                "id", "role", "created", "last used", "revoked"
            );
            let stamp = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            for key in keys::list(state.db.conn()).await? {
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
        Command::Keys(KeysCommand::Revoke { id }) => {
            let state = prepare(config).await?;
            let key = keys::revoke(&state.db, &id, &Actor::Cli).await?;
            println!("revoked key {} ({})", key.id, key.name);
        }
    }
    Ok(())
}
