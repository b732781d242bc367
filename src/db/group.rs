//! Group commit: many callers' units of work in one transaction.
//!
//! A commit is the expensive part of a small write. On SQLite with `synchronous=FULL` each one
//! waits for the disk, and only one writer runs at a time; on PostgreSQL each is a few round
//! trips and a WAL flush. So edges whose write stands alone (a consent decision from the portal
//! or the main app, a request filed without login) hand it to a [`Group`]: a writer task takes
//! every unit waiting (up to [`MAX_BATCH`]), runs each under its own savepoint in one
//! transaction, so that a refused or failing one rolls back alone, commits once, and only then
//! answers each caller. Nothing is answered before it is durable, and each answer is the one
//! the unit would have given in a transaction of its own.
//!
//! Units carry a key, the row they are about (a person, an email address); a batch runs them
//! in key order, keeping the order of arrival among equal keys, so batches running side by side,
//! here or on other replicas, lock rows in one order and cannot deadlock.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures_util::future::BoxFuture;
use sea_orm::{DbErr, RuntimeErr};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Db, Tx};
use crate::config::DatabaseKind;

/// Units in one transaction at most: enough to spread a commit over many callers, few enough
/// that the first in a batch is not kept waiting long.
const MAX_BATCH: usize = 128;
/// Units waiting for a writer at most; callers beyond it wait to hand theirs over.
const QUEUE: usize = 4096;
/// Writer tasks on PostgreSQL, so that one batch's round trips overlap another's. SQLite has
/// one writer at a time whatever runs, so one task.
const POSTGRES_WRITERS: usize = 4;

/// What a unit left behind once it ran: whether its writes stay, and how to answer its caller
/// once the commit's outcome is known.
struct Ran {
    keep: bool,
    answer: Box<dyn FnOnce(Result<(), String>) + Send>,
}

type Work = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Ran> + Send>;

struct Unit {
    key: String,
    work: Work,
}

/// The handle callers hand their work to; the writer tasks end when it is dropped.
pub struct Group {
    units: mpsc::Sender<Unit>,
    counts: Arc<Counts>,
}

/// Transactions committed and the units they carried, for `/metrics`.
#[derive(Default)]
struct Counts {
    commits: AtomicU64,
    units: AtomicU64,
}

impl Group {
    /// Starts the writer tasks.
    pub fn start(db: Db) -> Self {
        let (units, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let counts = Arc::new(Counts::default());
        let writers = match db.kind() {
            DatabaseKind::Sqlite => 1,
            DatabaseKind::Postgres => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            db.tasks()
                .spawn_service(run(db.clone(), waiting.clone(), counts.clone()));
        }
        Self { units, counts }
    }

    /// Group transactions committed so far, and the units of work they carried (kept or
    /// rolled back alone): their ratio is the mean batch.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.units.load(Ordering::Relaxed),
        )
    }

    /// Runs `work` in a transaction shared with others and answers once it has committed: its
    /// result if the commit succeeded, an unavailable database if it did not. An `Err` from
    /// `work` rolls back what it wrote and nothing else.
    pub async fn run<T, E>(
        &self,
        key: impl Into<String>,
        work: impl for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T, E>> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let work: Work = Box::new(move |tx| {
            Box::pin(async move {
                let result = work(tx).await;
                Ran {
                    keep: result.is_ok(),
                    answer: Box::new(move |committed| {
                        let _ = answer.send(committed.map_err(unavailable).and(result));
                    }),
                }
            })
        });
        let unit = Unit {
            key: key.into(),
            work,
        };
        if self.units.send(unit).await.is_err() {
            return Err(unavailable("the group writer has stopped".into()));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(unavailable("the group writer has stopped".into())))
    }
}

fn unavailable<E: From<DbErr>>(why: String) -> E {
    E::from(DbErr::Conn(RuntimeErr::Internal(why)))
}

async fn run(db: Db, waiting: Arc<Mutex<mpsc::Receiver<Unit>>>, counts: Arc<Counts>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(unit) => batch.push(unit),
                    Err(_) => break,
                }
            }
        }
        commit(&db, batch, &counts).await;
    }
}

async fn commit(db: &Db, mut batch: Vec<Unit>, counts: &Counts) {
    batch.sort_by(|a, b| a.key.cmp(&b.key));
    let units = batch.len();
    let mut answers = Vec::with_capacity(units);
    let outcome = async {
        let mut tx = db.begin().await?;
        for unit in batch {
            let point = tx.savepoint().await?;
            let ran = (unit.work)(&mut tx).await;
            let kept = if ran.keep {
                tx.keep(point).await
            } else {
                tx.roll_back_to(point).await
            };
            answers.push(ran.answer);
            kept?;
        }
        tx.commit().await
    }
    .await;
    if outcome.is_ok() {
        counts.commits.fetch_add(1, Ordering::Relaxed);
        counts.units.fetch_add(units as u64, Ordering::Relaxed);
    }
    let committed = outcome.map_err(|e| {
        tracing::error!(error = %e, units, "a group commit failed");
        e.to_string()
    });
    for answer in answers {
        answer(committed.clone());
    }
}
