//! Group commit: many callers' units of work in one transaction.
//!
//! A commit is the expensive part of a small write. On SQLite with `synchronous=FULL` each one
//! waits for the disk, and only one writer runs at a time; on PostgreSQL each is a few round
//! trips and a WAL flush. So edges whose write stands alone (a consent decision from the portal
//! or the main app, a request filed without login) hand it to a [`Batcher`]: a writer task takes
//! every item waiting (up to [`MAX_BATCH`]), writes them all in one transaction, commits once,
//! and only then answers each caller. Nothing is answered before it is durable, and each answer
//! is the one the item would have got in a transaction of its own.
//!
//! How a batch is written is the [`Sets`] implementation's: [`Each`] runs arbitrary work, one
//! savepoint per unit so that a refused or failing one rolls back alone ([`Group`]); a room
//! whose writes are all alike (consent decisions) reads the state of the whole batch with one
//! query per table and writes it with one statement per table.
//!
//! Items carry a key, the row they are about (a person, an email address); a batch is written in
//! key order, keeping the order of arrival among equal keys, so batches running side by side,
//! here or on other replicas, lock rows in one order and cannot deadlock.

use std::{
    any::Any,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures_util::future::BoxFuture;
use sea_orm::{DbErr, RuntimeErr};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Db, Tx};
use crate::config::DatabaseKind;

/// Items in one transaction at most: enough to spread a commit over many callers, few enough
/// that the first in a batch is not kept waiting long.
const MAX_BATCH: usize = 128;
/// Items waiting for a writer at most; callers beyond it wait to hand theirs over.
const QUEUE: usize = 4096;
/// Writer tasks on PostgreSQL, so that one batch's round trips overlap another's. SQLite has
/// one writer at a time whatever runs, so one task.
const POSTGRES_WRITERS: usize = 4;

/// How a batch of items is written.
pub trait Sets: Send + Sync + 'static {
    type Item: Send + 'static;
    type Answer: Send + 'static;

    /// The row the item is about, which orders the batch.
    fn key(item: &Self::Item) -> &str;

    /// Writes `items`, in key order, in `tx` and returns each one's answer, in the same order.
    /// An `Err` means the transaction is lost: every caller is told the database is unavailable.
    fn write<'t>(
        &'t self,
        tx: &'t mut Tx,
        items: Vec<Self::Item>,
    ) -> BoxFuture<'t, Result<Vec<Self::Answer>, DbErr>>;
}

struct Pending<S: Sets> {
    item: S::Item,
    answer: oneshot::Sender<Result<S::Answer, DbErr>>,
}

/// The handle callers hand their items to; the writer tasks end when it is dropped.
pub struct Batcher<S: Sets> {
    items: mpsc::Sender<Pending<S>>,
    counts: Arc<Counts>,
    sets: Arc<S>,
}

/// Transactions committed and the items they carried, for `/metrics`.
#[derive(Default)]
struct Counts {
    commits: AtomicU64,
    items: AtomicU64,
}

impl<S: Sets> Batcher<S> {
    /// Starts the writer tasks.
    pub fn start(db: Db, sets: S) -> Self {
        let (items, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let counts = Arc::new(Counts::default());
        let sets = Arc::new(sets);
        let writers = match db.kind() {
            DatabaseKind::Sqlite => 1,
            DatabaseKind::Postgres => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            db.tasks().spawn_service(run(
                db.clone(),
                sets.clone(),
                waiting.clone(),
                counts.clone(),
            ));
        }
        Self {
            items,
            counts,
            sets,
        }
    }

    /// How batches are written, for what it counts.
    pub fn sets(&self) -> &S {
        &self.sets
    }

    /// Group transactions committed so far, and the items they carried: their ratio is the
    /// mean batch.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.items.load(Ordering::Relaxed),
        )
    }

    /// Writes `item` in a transaction shared with others and answers once it has committed;
    /// an `Err` if the transaction was not committed.
    pub async fn submit(&self, item: S::Item) -> Result<S::Answer, DbErr> {
        let (answer, answered) = oneshot::channel();
        if self.items.send(Pending { item, answer }).await.is_err() {
            return Err(stopped());
        }
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> DbErr {
    DbErr::Conn(RuntimeErr::Internal("the group writer has stopped".into()))
}

async fn run<S: Sets>(
    db: Db,
    sets: Arc<S>,
    waiting: Arc<Mutex<mpsc::Receiver<Pending<S>>>>,
    counts: Arc<Counts>,
) {
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
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
        }
        commit(&db, &*sets, batch, &counts).await;
    }
}

async fn commit<S: Sets>(db: &Db, sets: &S, mut batch: Vec<Pending<S>>, counts: &Counts) {
    batch.sort_by(|a, b| S::key(&a.item).cmp(S::key(&b.item)));
    let size = batch.len();
    let (items, senders): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.item, p.answer)).unzip();
    let outcome = async {
        let mut tx = db.begin().await?;
        let answers = sets.write(&mut tx, items).await?;
        tx.commit().await?;
        Ok::<_, DbErr>(answers)
    }
    .await;
    match outcome {
        Ok(answers) => {
            counts.commits.fetch_add(1, Ordering::Relaxed);
            counts.items.fetch_add(size as u64, Ordering::Relaxed);
            for (sender, answer) in senders.into_iter().zip(answers) {
                let _ = sender.send(Ok(answer));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, items = size, "a group commit failed");
            let why = e.to_string();
            for sender in senders {
                let _ = sender.send(Err(DbErr::Conn(RuntimeErr::Internal(why.clone()))));
            }
        }
    }
}

/// A unit of arbitrary work for [`Group`]: whether its writes stay, and its result.
type Work =
    Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, (bool, Box<dyn Any + Send>)> + Send>;

/// Units of arbitrary work, each under its own savepoint, so that one that fails rolls back
/// alone.
pub struct Each;

impl Sets for Each {
    type Item = (String, Work);
    type Answer = Box<dyn Any + Send>;

    fn key(item: &Self::Item) -> &str {
        &item.0
    }

    fn write<'t>(
        &'t self,
        tx: &'t mut Tx,
        items: Vec<Self::Item>,
    ) -> BoxFuture<'t, Result<Vec<Self::Answer>, DbErr>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(items.len());
            for (_, work) in items {
                let point = tx.savepoint().await?;
                let (keep, answer) = work(tx).await;
                if keep {
                    tx.keep(point).await?;
                } else {
                    tx.roll_back_to(point).await?;
                }
                answers.push(answer);
            }
            Ok(answers)
        })
    }
}

/// The shared commit for writes of any kind.
pub type Group = Batcher<Each>;

impl Batcher<Each> {
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
        let work: Work = Box::new(move |tx| {
            Box::pin(async move {
                let result = work(tx).await;
                (result.is_ok(), Box::new(result) as Box<dyn Any + Send>)
            })
        });
        let answer = self.submit((key.into(), work)).await?;
        *answer
            .downcast::<Result<T, E>>()
            .expect("a unit's answer has the type it was submitted with")
    }
}
