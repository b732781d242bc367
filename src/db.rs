//! Database connection and write transactions for both engines.
//!
//! SQLite allows one writer at a time, and a transaction that read first and then tries to
//! write fails with `SQLITE_BUSY` instead of waiting when another writer got there first.
//! [`Db::begin_write`] therefore serialises writers inside the process and starts them with
//! `BEGIN IMMEDIATE`, which takes the write lock up front and waits (busy timeout) for writers in
//! other processes, such as a CLI command. Readers stay concurrent under WAL. On PostgreSQL it is
//! a plain transaction and row locks do the work, so several replicas can share one database.

use std::{ops::Deref, sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::{Config, DatabaseKind};

/// The pool plus what it takes to write safely on the engine in use.
#[derive(Clone)]
pub struct Db {
    conn: DatabaseConnection,
    kind: DatabaseKind,
    sqlite_writer: Arc<Mutex<()>>,
}

/// A transaction that may write; commit it, or drop it to roll back.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

impl Db {
    /// Connects with the settings each engine needs: WAL, foreign keys and a busy timeout on
    /// SQLite (so that a CLI command and the server can share the file).
    pub async fn connect(config: &Config) -> Result<Self, DbErr> {
        let kind = config
            .database_kind()
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let mut options = ConnectOptions::new(config.database_url().expose().to_string());
        options
            .max_connections(config.database_max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    .create_if_missing(true)
            });
        let conn = Database::connect(options).await?;
        Ok(Self {
            conn,
            kind,
            sqlite_writer: Arc::new(Mutex::new(())),
        })
    }

    /// For reads, and for single statements that need no transaction.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// Begins a transaction that may write.
    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let writer = match self.kind {
            DatabaseKind::Sqlite => Some(self.sqlite_writer.clone().lock_owned().await),
            DatabaseKind::Postgres => None,
        };
        let txn = match self.kind {
            DatabaseKind::Sqlite => {
                self.conn
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..TransactionOptions::default()
                    })
                    .await?
            }
            DatabaseKind::Postgres => self.conn.begin().await?,
        };
        Ok(WriteTxn {
            txn,
            _writer: writer,
        })
    }

    /// Runs the migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        use migration::MigratorTrait;
        migration::Migrator::up(&self.conn, None).await
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.execute_unprepared("SELECT 1").await.map(|_| ())
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}
