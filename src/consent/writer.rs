//! Group commit for decisions recorded on their own: the portal's and the main app's.
//!
//! A commit is the expensive part of a consent write. On SQLite with `synchronous=FULL` each
//! one waits for the disk, and only one writer runs at a time; on PostgreSQL each is a few round
//! trips and a WAL flush. So callers hand their decisions to a writer task, which takes every
//! decision waiting (up to [`MAX_BATCH`]), records each under its own savepoint in one
//! transaction, so that a refused or failing one rolls back alone, commits once, and only then
//! answers each caller. The purposes and policy documents the batch needs are read once.
//! Nothing is answered before it is durable, and the answers are those [`super::record`] would
//! give one by one.
//!
//! Within a batch, decisions are recorded in the order of the people's ids (a person's own
//! decisions keep their order), so batches running side by side, here or on other replicas,
//! lock people in one order and cannot deadlock.
//!
//! Decisions that belong with other work (an objection, a guardian's answer, an admin's
//! correction) are still recorded in their edge's own transaction with [`super::record`].

use std::sync::Arc;

use sea_orm::{DbErr, RuntimeErr};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::{
    ConsentError,
    ledger::{self, Catalog, RecordRequest, Recorded},
};
use crate::{
    config::{Config, DatabaseKind},
    db::Db,
};

/// Decisions recorded in one transaction at most: enough to spread a commit over many
/// callers, few enough that the first in a batch is not kept waiting long.
const MAX_BATCH: usize = 128;
/// Decisions waiting for a writer at most; callers beyond it wait to hand theirs over.
const QUEUE: usize = 4096;
/// Writer tasks on PostgreSQL, so that one batch's round trips overlap another's. SQLite has
/// one writer at a time whatever runs, so one task.
const POSTGRES_WRITERS: usize = 4;

type Answer = Result<Vec<Recorded>, ConsentError>;

struct Job {
    req: RecordRequest,
    answer: oneshot::Sender<Answer>,
}

/// The handle callers record through; the writer tasks end when it is dropped.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer tasks.
    pub fn start(db: Db, config: Arc<Config>) -> Self {
        let (jobs, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        let writers = match db.kind() {
            DatabaseKind::Sqlite => 1,
            DatabaseKind::Postgres => POSTGRES_WRITERS,
        };
        for _ in 0..writers {
            tokio::spawn(run(db.clone(), config.clone(), waiting.clone()));
        }
        Self { jobs }
    }

    /// Records `req` as [`super::record`] would in a transaction of its own, and answers once
    /// it is committed.
    pub async fn record(&self, req: RecordRequest) -> Answer {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Job { req, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ConsentError {
    unavailable("the consent writer has stopped".into())
}

fn unavailable(why: String) -> ConsentError {
    ConsentError::Db(DbErr::Conn(RuntimeErr::Internal(why)))
}

async fn run(db: Db, config: Arc<Config>, waiting: Arc<Mutex<mpsc::Receiver<Job>>>) {
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
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        write(&db, &config, batch).await;
    }
}

async fn write(db: &Db, config: &Config, mut batch: Vec<Job>) {
    batch.sort_by(|a, b| a.req.external_id.cmp(&b.req.external_id));
    let outcome = async {
        let mut tx = db.begin().await?;
        let catalog = Catalog::read(&tx, batch.iter().map(|job| &job.req)).await?;
        let mut answers = Vec::with_capacity(batch.len());
        for job in &batch {
            let point = tx.savepoint().await?;
            let answer = ledger::record_in(&mut tx, config, &catalog, &job.req).await;
            match answer {
                Ok(_) => tx.release(point).await?,
                Err(_) => tx.roll_back_to(point).await?,
            }
            answers.push(answer);
        }
        tx.commit().await?;
        Ok::<_, DbErr>(answers)
    }
    .await;
    match outcome {
        Ok(answers) => {
            for (job, answer) in batch.into_iter().zip(answers) {
                // A caller that went away still had its decision recorded.
                let _ = job.answer.send(answer);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, decisions = batch.len(), "a batch of consent decisions failed");
            for job in batch {
                let _ = job.answer.send(Err(unavailable(e.to_string())));
            }
        }
    }
}
