//! Database connection and the write unit for both engines.
//!
//! Every write happens in a [`Tx`] begun with [`Db::begin`] by an edge (an API handler, a
//! scheduled job or one batch of it, a CLI command) and committed once by that edge; service
//! functions take `&mut Tx` and never begin or commit. What must follow a commit (waking the
//! outbox dispatcher, forgetting a cached key) is registered with [`Tx::after_commit`] and runs
//! only if the commit succeeds. Two single-statement writes stand outside on purpose, on
//! [`Db::conn`]: a job lease's claim (it must commit before the job's own work starts) and an
//! API key's last-use stamp (written in the background so the request does not wait).
//!
//! SQLite allows one writer at a time, and a transaction that read first and then tries to
//! write fails with `SQLITE_BUSY` instead of waiting when another writer got there first.
//! [`Db::begin`] therefore serialises writers inside the process and starts them with
//! `BEGIN IMMEDIATE`, which takes the write lock up front and waits (busy timeout) for writers in
//! other processes, such as a CLI command. Readers stay concurrent under WAL. On PostgreSQL it is
//! a plain transaction and row locks do the work, so several replicas can share one database.
//!
//! Writes that stand alone and come in numbers go through a [`Batcher`] instead: one
//! transaction for many callers, so that a commit (a disk flush on SQLite) is shared; [`Group`]
//! gives each caller's work a savepoint, a room's own [`Sets`] may write the batch as a set.
//!
//! Each committed transaction that ran anything but a `SELECT` moves a counter ([`Db::writes`]);
//! in-process caches use it to drop what a write made here may have changed.

mod group;
mod readers;

pub use group::{Batch, Batcher, Each, Group, Sets};
pub use readers::Readers;

/// How much of a SQLite database file each connection maps into memory for reading.
const SQLITE_MMAP_BYTES: i64 = 1 << 30;

/// Rows in one multi-row statement at most: with up to 30 columns a row, the bound parameters
/// stay under SQLite's limit of 32,766 (PostgreSQL's is 65,535).
pub const ROWS_PER_STATEMENT: usize = 1000;

use std::{
    any::Any,
    collections::HashMap,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::future::BoxFuture;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, QueryResult, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

use crate::{
    config::{Config, DatabaseKind},
    tasks::Tasks,
};

/// The pool plus what it takes to write safely on the engine in use.
#[derive(Clone)]
pub struct Db {
    conn: DatabaseConnection,
    /// For the connection that watches for other writers.
    url: Arc<str>,
    kind: DatabaseKind,
    sqlite_writer: Arc<Mutex<()>>,
    outbox_ready: Arc<Notify>,
    /// Write transactions committed by this process; see [`Db::writes`].
    writes: Arc<AtomicU64>,
    /// The background tasks that use this pool; stopped before it closes.
    tasks: Tasks,
    /// SQLite: connections for the hottest reads, made on the calling thread.
    readers: Option<Arc<Readers>>,
}

/// Something to do once a transaction has committed, and never if it rolls back.
type AfterCommit = Box<dyn FnOnce() + Send + Sync>;

/// Writes a room's rows held back until the commit ([`Tx::append_at_commit`]), all at once.
pub type AppendAll =
    for<'a> fn(&'a Tx, Vec<Box<dyn Any + Send>>) -> BoxFuture<'a, Result<(), DbErr>>;

/// The write unit: one transaction, begun by an edge (an API handler, a job, a CLI command)
/// with [`Db::begin`], handed as `&mut Tx` to every service function that takes part, and
/// committed once by the edge. Dropping it rolls back, and the work registered with
/// [`Tx::after_commit`] is dropped with it.
///
/// Service functions take `&mut Tx` when they write, so that a write outside a transaction
/// does not compile, and `&impl ConnectionTrait` when they only read (a `Tx` is one).
pub struct Tx {
    txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
    outbox_ready: Arc<Notify>,
    after_commit: Vec<AfterCommit>,
    /// Set by the first statement that is not a `SELECT`.
    wrote: AtomicBool,
    /// Set when something was queued for the outbox dispatcher ([`Tx::wake_outbox`]).
    queued: bool,
    writes: Arc<AtomicU64>,
    /// Reads remembered for the rest of the transaction; see [`Tx::remember`].
    memo: std::sync::Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
    /// Rows to write just before the commit; see [`Tx::append_at_commit`].
    appends: std::sync::Mutex<Vec<(AppendAll, Box<dyn Any + Send>)>>,
}

impl Tx {
    /// Writes what was held back for the commit, commits, then runs what was registered to
    /// follow the commit, in order.
    pub async fn commit(self) -> Result<(), DbErr> {
        let appends = std::mem::take(&mut *self.appends.lock().unwrap_or_else(|e| e.into_inner()));
        let mut by_writer: Vec<(AppendAll, Vec<Box<dyn Any + Send>>)> = Vec::new();
        for (write, row) in appends {
            match by_writer
                .iter_mut()
                .find(|(w, _)| std::ptr::fn_addr_eq(*w, write))
            {
                Some((_, rows)) => rows.push(row),
                None => by_writer.push((write, vec![row])),
            }
        }
        for (write, rows) in by_writer {
            write(&self, rows).await?;
        }
        let Self {
            txn,
            _writer,
            after_commit,
            wrote,
            queued,
            writes,
            ..
        } = self;
        let wrote = wrote.into_inner();
        if wrote && txn.get_database_backend() == DbBackend::Postgres {
            // Delivered to listeners only if the transaction commits.
            let notify = if queued {
                format!("NOTIFY {CHANGES_CHANNEL}, '{OUTBOX_PAYLOAD}'")
            } else {
                format!("NOTIFY {CHANGES_CHANNEL}")
            };
            txn.execute_unprepared(&notify).await?;
        }
        txn.commit().await?;
        if wrote {
            writes.fetch_add(1, Ordering::AcqRel);
        }
        drop(_writer);
        for effect in after_commit {
            effect();
        }
        Ok(())
    }

    /// Holds `row` back until the commit, when `write` writes it with every other row held
    /// for the same `write`, in the order they were held. For rows that take a lock shared by
    /// every writer about the same target (an audit chain's head): taken at the commit, it is
    /// held for a few statements instead of the whole transaction. Nothing in the transaction can read them
    /// before it commits; a [`Tx::roll_back_to`] drops those held since its savepoint.
    pub fn append_at_commit(&self, write: AppendAll, row: Box<dyn Any + Send>) {
        self.appends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((write, row));
    }

    /// Registers work that must follow the commit: waking a worker, invalidating a cache.
    pub fn after_commit(&mut self, effect: impl FnOnce() + Send + Sync + 'static) {
        self.after_commit.push(Box::new(effect));
    }

    /// Wakes the outbox dispatcher once this transaction commits, so that what it queued goes
    /// out without waiting for the next poll: here at once, and on other replicas through
    /// their watch ([`Db::watch_other_writers`]).
    pub fn wake_outbox(&mut self) {
        self.queued = true;
        let ready = self.outbox_ready.clone();
        self.after_commit(move || ready.notify_one());
    }

    /// Reads something once per transaction: the first call under `key` runs `read`, later ones
    /// get the same value. For reference data the transaction reads again and again but does not
    /// change itself, such as the purposes and policy documents each of a batch of consent
    /// decisions is checked against ([`Batcher`]): a round trip saved per use.
    pub async fn remember<T, F>(&self, key: String, read: F) -> Result<Arc<T>, DbErr>
    where
        T: Any + Send + Sync,
        F: Future<Output = Result<T, DbErr>>,
    {
        let known = self
            .memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(value) = known.and_then(|v| v.downcast::<T>().ok()) {
            return Ok(value);
        }
        let value = Arc::new(read.await?);
        self.memo
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, value.clone());
        Ok(value)
    }

    /// Marks a point that [`Tx::roll_back_to`] can return to, so that one unit of work among
    /// several sharing this transaction can fail alone ([`Group`]). Units follow one another:
    /// keep or roll back one before marking the next.
    pub async fn savepoint(&mut self) -> Result<Savepoint, DbErr> {
        self.txn.execute_unprepared("SAVEPOINT unit").await?;
        Ok(Savepoint {
            effects: self.after_commit.len(),
            appends: self.appends.lock().unwrap_or_else(|e| e.into_inner()).len(),
        })
    }

    /// Keeps what was done since the savepoint. PostgreSQL keeps a subtransaction per open
    /// savepoint, and many of them slow down every session, so it is released; on SQLite it is
    /// left open, which costs nothing there and saves a round trip. Either way a later
    /// [`Tx::roll_back_to`] returns to the newest savepoint, its own, and the commit keeps all.
    pub async fn keep(&mut self, _point: Savepoint) -> Result<(), DbErr> {
        if self.txn.get_database_backend() == DbBackend::Postgres {
            self.txn
                .execute_unprepared("RELEASE SAVEPOINT unit")
                .await?;
        }
        Ok(())
    }

    /// Undoes what was done since the savepoint, and forgets the work it registered to follow
    /// the commit; the transaction carries on. On PostgreSQL this also clears the error state
    /// a failed statement leaves.
    pub async fn roll_back_to(&mut self, point: Savepoint) -> Result<(), DbErr> {
        self.txn
            .execute_unprepared("ROLLBACK TO SAVEPOINT unit")
            .await?;
        self.after_commit.truncate(point.effects);
        self.appends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .truncate(point.appends);
        self.keep(point).await
    }

    /// Notes a statement that may write: anything but a `SELECT` (row locks included).
    fn note(&self, sql: &str) {
        let head = sql.trim_start().get(..6).unwrap_or_default();
        if !head.eq_ignore_ascii_case("select") {
            self.wrote.store(true, Ordering::Relaxed);
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Tx {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.note(&stmt.sql);
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.note(sql);
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.note(&stmt.sql);
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.note(&stmt.sql);
        self.txn.query_all_raw(stmt).await
    }
}

/// A point in a [`Tx`] to return to; see [`Tx::savepoint`].
#[must_use = "keep what follows the savepoint or roll back to it"]
pub struct Savepoint {
    /// How many after-commit effects were registered when it was marked.
    effects: usize,
    /// How many rows were held for the commit when it was marked.
    appends: usize,
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
                // FULL: a commit is on disk before it is answered. The ledger is proof, and
                // WAL with NORMAL can lose the last commits on power loss.
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
                    .create_if_missing(true)
                    // Reads of pages no connection has cached (a consent check about anyone
                    // among millions) come straight from the mapped file instead of a system
                    // call and a copy each; the mapping is address space, not memory.
                    .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
            });
        let conn = Database::connect(options).await?;
        let readers = match kind {
            DatabaseKind::Sqlite => Some(Arc::new(Readers::new(config.database_url().expose())?)),
            DatabaseKind::Postgres => None,
        };
        Ok(Self {
            conn,
            url: Arc::from(config.database_url().expose()),
            kind,
            sqlite_writer: Arc::new(Mutex::new(())),
            outbox_ready: Arc::new(Notify::new()),
            writes: Arc::new(AtomicU64::new(0)),
            tasks: Tasks::default(),
            readers,
        })
    }

    /// For reads, and for the two single-statement writes named in the module doc.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// On SQLite, connections that read on the calling thread ([`Readers`]).
    pub fn readers(&self) -> Option<Arc<Readers>> {
        self.readers.clone()
    }

    /// Begins the write unit. The only place where transactions begin; called by edges only.
    pub async fn begin(&self) -> Result<Tx, DbErr> {
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
        Ok(Tx {
            txn,
            _writer: writer,
            outbox_ready: self.outbox_ready.clone(),
            after_commit: Vec::new(),
            wrote: AtomicBool::new(false),
            queued: false,
            writes: self.writes.clone(),
            memo: std::sync::Mutex::default(),
            appends: std::sync::Mutex::default(),
        })
    }

    /// Moves whenever the database may have changed: a write transaction this process
    /// committed, or (once [`Db::watch_other_writers`] runs) one committed by another process.
    /// Anything read before the number moved may be out of date; caches key entries by it.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Moves [`Db::writes`] when another process commits, and wakes the outbox dispatcher
    /// when that commit queued something. On PostgreSQL every write transaction sends `NOTIFY`
    /// on commit, saying whether it queued outbox messages, and this listens (a lost connection
    /// counts as a change, since notifications may have been missed meanwhile). On SQLite a
    /// connection of its own polls `PRAGMA data_version`, which moves when any other connection
    /// commits, every `interval`; any such commit wakes the dispatcher, since other processes
    /// (CLI commands) write rarely. Runs until the process ends.
    pub fn watch_other_writers(&self, interval: Duration) {
        let url = self.url.clone();
        let writes = self.writes.clone();
        let outbox_ready = self.outbox_ready.clone();
        let changed = move |queued: bool| {
            writes.fetch_add(1, Ordering::AcqRel);
            if queued {
                outbox_ready.notify_one();
            }
        };
        match self.kind {
            DatabaseKind::Postgres => self
                .tasks
                .spawn_service(listen_for_writes(url, changed, interval)),
            DatabaseKind::Sqlite => self
                .tasks
                .spawn_service(poll_data_version(url, changed, interval)),
        };
    }

    /// Completes when a committed transaction has queued outbox messages.
    pub async fn outbox_ready(&self) {
        self.outbox_ready.notified().await
    }

    /// Writes a consistent copy of a live SQLite database to `to` (`VACUUM INTO`: a snapshot
    /// of one read transaction, while the service keeps serving). PostgreSQL has its own tools:
    /// the error says which.
    pub async fn backup(&self, to: &std::path::Path) -> Result<(), String> {
        if self.kind == DatabaseKind::Postgres {
            return Err("on PostgreSQL, back up with the server's own tool: \
                 pg_dump --format=custom --file=consentry.dump \"$DATABASE_URL\""
                .into());
        }
        if to.exists() {
            return Err(format!("{} exists; choose a new file", to.display()));
        }
        let path = to
            .to_str()
            .ok_or("the backup file's path must be valid UTF-8")?;
        self.conn
            .execute_unprepared(&format!("VACUUM INTO '{}'", path.replace('\'', "''")))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
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
    /// The supervisor of the background tasks that use this pool: start them here, so that
    /// [`Db::close`] stops them first.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Waits up to `grace` for background work, stops the background services, then closes the
    /// pool.
    pub async fn close_after(self, grace: Duration) -> Result<(), DbErr> {
        self.tasks.shutdown(grace).await;
        self.conn.close().await
    }

    /// [`Db::close_after`] with no grace: for commands that started no background work.
    pub async fn close(self) -> Result<(), DbErr> {
        self.close_after(Duration::ZERO).await
    }
}

/// Deletes the rows of `E` that meet `condition` or, dry, counts them: the shape of every purge
/// of Consentry's own records, so that a dry run and a real one cannot disagree.
pub async fn delete_or_count<E>(
    tx: &Tx,
    condition: sea_orm::Condition,
    dry_run: bool,
) -> Result<u64, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: Sync,
{
    use sea_orm::{PaginatorTrait, QueryFilter};
    if dry_run {
        return E::find().filter(condition).count(tx).await;
    }
    Ok(E::delete_many()
        .filter(condition)
        .exec(tx)
        .await?
        .rows_affected)
}

/// The channel every write transaction notifies on PostgreSQL.
const CHANGES_CHANNEL: &str = "consentry_writes";
/// The payload of a notification from a transaction that queued outbox messages.
const OUTBOX_PAYLOAD: &str = "outbox";

async fn listen_for_writes(url: Arc<str>, changed: impl Fn(bool), retry: Duration) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        match listener.await {
            Ok(mut listener) => {
                // Whatever happened while no one listened is unknown: start afresh.
                changed(true);
                while let Ok(Some(notification)) = listener.try_recv().await {
                    changed(notification.payload() == OUTBOX_PAYLOAD);
                }
                tracing::warn!("the database change listener lost its connection; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "the database change listener cannot connect"),
        }
        changed(false);
        tokio::time::sleep(retry).await;
    }
}

async fn poll_data_version(url: Arc<str>, changed: impl Fn(bool), interval: Duration) {
    use sea_orm::sqlx::{Connection, SqliteConnection};
    let mut seen: Option<i64> = None;
    let mut connection: Option<SqliteConnection> = None;
    loop {
        if connection.is_none() {
            connection = SqliteConnection::connect(&url).await.ok();
        }
        let version = match connection.as_mut() {
            Some(c) => sea_orm::sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(c)
                .await
                .ok(),
            None => None,
        };
        if version.is_none() || version != seen {
            if version.is_none() {
                connection = None;
            }
            changed(seen.is_some() && version.is_some());
            seen = version;
        }
        tokio::time::sleep(interval).await;
    }
}
