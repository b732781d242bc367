//! Batches: many callers' items handled together, by a few tasks.
//!
//! A round trip and a commit are the expensive parts of a small read or write. On SQLite with
//! `synchronous=FULL` each commit waits for the disk, only one writer runs at a time, and every
//! statement is handed to a connection's own thread and back; on PostgreSQL each statement is a
//! round trip to a backend process and each commit a WAL flush. So edges whose work stands
//! alone hand it to a [`Batcher`]: a task takes every item waiting (up to [`Batch::MAX`]),
//! handles them all at once, and only then answers each caller.
//!
//! Writes (a consent decision from the portal or the main app, a request filed without login)
//! are [`Sets`]: one transaction per batch, committed once, and nothing answered before it is
//! durable; each answer is the one the item would have got in a transaction of its own. How a
//! batch is written is the implementation's: [`Each`] runs arbitrary work, one savepoint per
//! unit so that a refused or failing one rolls back alone ([`Group`]); a room whose writes are
//! all alike (consent decisions) reads the state of the whole batch with one query per table and
//! writes it with one statement per table. Reads (a consent check the cache cannot answer)
//! implement [`Batch`] directly: one query for the batch.
//!
//! Written items carry a key, the row they are about (a person, an email address); a batch is
//! written in key order, keeping the order of arrival among equal keys, so batches running side
//! by side, here or on other replicas, lock rows in one order and cannot deadlock.

use std::{
    any::Any,
    cmp::Ordering as Order,
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

/// Items waiting for a task at most; callers beyond it wait to hand theirs over.
const QUEUE: usize = 4096;
/// Writer tasks on PostgreSQL, so that one batch's round trips overlap another's. SQLite has
/// one writer at a time whatever runs, so one task.
const POSTGRES_WRITERS: usize = 4;

/// What a [`Batcher`]'s tasks do with a batch.
pub trait Batch: Send + Sync + 'static {
    type Item: Send + 'static;
    type Answer: Send + 'static;

    /// Items in one batch at most: enough to spread a round trip or a commit over many
    /// callers, few enough that the first in a batch is not kept waiting long.
    const MAX: usize;

    /// Tasks taking batches side by side on the engine.
    fn tasks(kind: DatabaseKind) -> usize;

    /// The order items are handled in; the order of arrival among equals.
    fn order(_: &Self::Item, _: &Self::Item) -> Order {
        Order::Equal
    }

    /// Handles `items` and returns each one's answer, in the same order. An `Err` means none
    /// was handled: every caller is told the database is unavailable.
    fn handle<'a>(
        &'a self,
        db: &'a Db,
        items: Vec<Self::Item>,
    ) -> BoxFuture<'a, Result<Vec<Self::Answer>, DbErr>>;
}

/// How a batch of items is written, in one transaction.
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

impl<S: Sets> Batch for S {
    type Item = S::Item;
    type Answer = S::Answer;
    const MAX: usize = 128;

    fn tasks(kind: DatabaseKind) -> usize {
        match kind {
            DatabaseKind::Sqlite => 1,
            DatabaseKind::Postgres => POSTGRES_WRITERS,
        }
    }

    fn order(a: &Self::Item, b: &Self::Item) -> Order {
        S::key(a).cmp(S::key(b))
    }

    fn handle<'a>(
        &'a self,
        db: &'a Db,
        items: Vec<Self::Item>,
    ) -> BoxFuture<'a, Result<Vec<Self::Answer>, DbErr>> {
        Box::pin(async move {
            let mut tx = db.begin().await?;
            let answers = self.write(&mut tx, items).await?;
            tx.commit().await?;
            Ok(answers)
        })
    }
}

struct Pending<B: Batch> {
    item: B::Item,
    answer: oneshot::Sender<Result<B::Answer, DbErr>>,
}

/// The handle callers hand their items to; the tasks end when it is dropped.
pub struct Batcher<B: Batch> {
    items: mpsc::Sender<Pending<B>>,
    counts: Arc<Counts>,
    batch: Arc<B>,
}

/// Batches handled (for writes: transactions committed) and the items they carried, for
/// `/metrics`.
#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    items: AtomicU64,
}

impl<B: Batch> Batcher<B> {
    /// Starts the tasks.
    pub fn start(db: Db, batch: B) -> Self {
        let (items, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let counts = Arc::new(Counts::default());
        let batch = Arc::new(batch);
        for _ in 0..B::tasks(db.kind()) {
            db.tasks().spawn_service(run(
                db.clone(),
                batch.clone(),
                waiting.clone(),
                counts.clone(),
            ));
        }
        Self {
            items,
            counts,
            batch,
        }
    }

    /// How batches are handled, for what it counts.
    pub fn batch(&self) -> &B {
        &self.batch
    }

    /// Batches handled so far, and the items they carried: their ratio is the mean batch.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.batches.load(Ordering::Relaxed),
            self.counts.items.load(Ordering::Relaxed),
        )
    }

    /// Hands `item` over and answers once its batch is handled (for writes: committed); an
    /// `Err` if it was not.
    pub async fn submit(&self, item: B::Item) -> Result<B::Answer, DbErr> {
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

async fn run<B: Batch>(
    db: Db,
    batch: Arc<B>,
    waiting: Arc<Mutex<mpsc::Receiver<Pending<B>>>>,
    counts: Arc<Counts>,
) {
    loop {
        let mut pending = Vec::new();
        {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else {
                return;
            };
            pending.push(first);
            // Callers already running on this thread hand theirs over first: a batch one item
            // larger for the cost of one turn of the scheduler.
            tokio::task::yield_now().await;
            while pending.len() < B::MAX {
                match waiting.try_recv() {
                    Ok(next) => pending.push(next),
                    Err(_) => break,
                }
            }
        }
        answer(&db, &*batch, pending, &counts).await;
    }
}

async fn answer<B: Batch>(db: &Db, batch: &B, mut pending: Vec<Pending<B>>, counts: &Counts) {
    pending.sort_by(|a, b| B::order(&a.item, &b.item));
    let size = pending.len();
    let (items, senders): (Vec<_>, Vec<_>) =
        pending.into_iter().map(|p| (p.item, p.answer)).unzip();
    match batch.handle(db, items).await {
        Ok(answers) => {
            counts.batches.fetch_add(1, Ordering::Relaxed);
            counts.items.fetch_add(size as u64, Ordering::Relaxed);
            for (sender, answer) in senders.into_iter().zip(answers) {
                let _ = sender.send(Ok(answer));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, items = size, "a batch failed");
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
