//! A retention purge run: the items past their rules (the retention room's walk), then
//! Consentry's own records past their use (every room's), then the outcome recorded with the
//! reviewers' digest queued in the same transaction.

use std::sync::Arc;

use crate::{
    audit::Actor,
    clock,
    config::Config,
    db::Db,
    request,
    retention::{
        RetentionError,
        model::batches,
        purge::{self, PurgeRun, Report},
    },
};

/// Does the work of a started run ([`purge::start`]), records its outcome and gives up the
/// lease. A failure is recorded in the run (and returned); the next run picks up where it
/// stopped.
pub async fn execute(db: &Db, config: &Config, run: PurgeRun) -> Result<PurgeRun, RetentionError> {
    let mut report = Report::default();
    let outcome = async {
        purge::walk(db, config, &run, &mut report).await?;
        report.own_data = super::own_data::purge(db, config, run.as_of, run.dry_run).await?;
        Ok::<(), RetentionError>(())
    }
    .await;
    let mut txn = db.begin().await?;
    purge::record_outcome(&mut txn, &run, &report, outcome.as_ref().err()).await?;
    if !run.dry_run {
        request::digest::queue_after_purge(&mut txn, config, &run.id, &purge::summary(&report))
            .await?;
    }
    txn.commit().await?;
    purge::release(db, &run).await?;
    outcome?;
    purge::get(db.conn(), &run.id).await
}

/// Starts a run now and carries it out in the background; the outcome is recorded in the run.
/// What an admin's "run now" does, from the API or the console.
pub async fn launch(
    db: &Db,
    config: &Arc<Config>,
    dry_run: bool,
    actor: &Actor,
) -> Result<PurgeRun, RetentionError> {
    let run = purge::start(db, config, dry_run, clock::now(), actor).await?;
    let (db, config, started) = (db.clone(), config.clone(), run.clone());
    let tasks = db.tasks().clone();
    tasks.spawn(async move {
        let _ = execute(&db, &config, started).await;
    });
    Ok(run)
}

/// Records the main app's word that it deleted a batch of items.
pub async fn acknowledge_batch(db: &Db, batch_id: &str) -> Result<batches::Model, RetentionError> {
    let mut tx = db.begin().await?;
    let batch = purge::acknowledge(&mut tx, batch_id).await?;
    tx.commit().await?;
    Ok(batch)
}
