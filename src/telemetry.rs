//! Logging setup. Log lines carry ids (request, key, subject external id), never email
//! addresses, names, birth dates or tokens.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; `RUST_LOG` overrides the configured level. Logs go to
/// stderr so that commands can print their results alone on stdout, through a writer thread,
/// so that a request never waits for the terminal or a log collector. Keep the guard for the
/// life of the process: dropping it writes out what is still buffered.
pub fn init(config: &LogConfig) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Human => registry.with(fmt::layer().with_writer(writer)).try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(writer))
            .try_init(),
    };
    // A second initialisation (tests building several apps) keeps the first subscriber.
    let _ = result;
    guard
}
