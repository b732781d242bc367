//! A policy's life as admins drive it, from the API and the console alike: drafts saved,
//! versions published and retired. Publishing reaches the ledger: a material version marks older
//! consents for fresh consent and emails the people affected. The publication commits first; the
//! rollout runs after it, in the background, in batches that each commit
//! ([`crate::consent::reconsent`]).

use std::{path::Path, sync::Arc};

use sea_orm::DbErr;

use crate::{
    audit::Actor,
    config::Config,
    consent,
    db::Db,
    lease,
    policy::{self, Document, DraftChanges, Policy, PolicyError, import::ImportReport},
};

/// The lease under which one replica at a time rolls re-consent out.
pub const ROLLOUT_LEASE: &str = "reconsent";

/// Longer than a rollout of a million consents takes.
const ROLLOUT_LEASE_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Publishes a draft and starts the re-consent rollout of a material version in the
/// background once the publication has committed: the answer comes at once.
pub async fn publish(
    db: &Db,
    config: &Arc<Config>,
    id: &str,
    actor: &Actor,
) -> Result<Policy, PolicyError> {
    let mut tx = db.begin().await?;
    let policy = policy::publish(&mut tx, id, actor).await?;
    tx.commit().await?;
    start_roll_out(db.clone(), config.clone());
    Ok(policy)
}

/// Saves a new draft, a version newer than any of its key.
pub async fn create_draft(db: &Db, doc: Document, actor: &Actor) -> Result<Policy, PolicyError> {
    let mut tx = db.begin().await?;
    let policy = policy::create_draft(&mut tx, doc, actor).await?;
    tx.commit().await?;
    Ok(policy)
}

/// Changes a draft's fields.
pub async fn save_draft(
    db: &Db,
    id: &str,
    changes: DraftChanges,
    actor: &Actor,
) -> Result<Policy, PolicyError> {
    let mut tx = db.begin().await?;
    let policy = policy::update_draft(&mut tx, id, changes, actor).await?;
    tx.commit().await?;
    Ok(policy)
}

/// Retires a published document: still readable as proof, never cited by new consent.
pub async fn retire(db: &Db, id: &str, actor: &Actor) -> Result<Policy, PolicyError> {
    let mut tx = db.begin().await?;
    let policy = policy::retire(&mut tx, id, actor).await?;
    tx.commit().await?;
    Ok(policy)
}

/// Imports a folder of policy documents (`policies/` at start-up, `consentry policies import`)
/// and runs the re-consent of what it published to the end.
pub async fn import(
    db: &Db,
    config: &Config,
    dir: &Path,
    actor: &Actor,
) -> Result<ImportReport, PolicyError> {
    let report = policy::import::import_dir(db, dir, actor).await?;
    if !report.published.is_empty() {
        roll_out(db, config).await?;
    }
    Ok(report)
}

/// Runs the re-consent of a published version to the end, or records that none is needed.
async fn finish(db: &Db, config: &Config, policy: &Policy) -> Result<(), DbErr> {
    if policy.material {
        consent::reconsent::run(db, config, policy).await?;
    }
    policy::mark_rolled_out(db, &policy.id).await
}

/// Finishes the re-consent of every published version whose rollout is not done (just
/// published, or interrupted by a crash or a restart); returns how many versions it finished.
/// Safe to run on several replicas at once: marking is idempotent and emails are deduplicated;
/// the lease keeps them from doing the same work twice.
pub async fn roll_out(db: &Db, config: &Config) -> Result<u64, DbErr> {
    let pending = policy::unfinished_rollouts(db.conn()).await?;
    for policy in &pending {
        finish(db, config, policy).await?;
    }
    Ok(pending.len() as u64)
}

/// [`roll_out`] under the rollout lease, released when done; skipped while another replica
/// holds it. A replica that dies mid-rollout keeps the lease until it runs out.
pub async fn roll_out_exclusively(db: &Db, config: &Config) -> Result<u64, DbErr> {
    let holder = lease::holder();
    if !lease::acquire(db, ROLLOUT_LEASE, holder, ROLLOUT_LEASE_TTL).await? {
        tracing::debug!("another replica rolls re-consent out");
        return Ok(0);
    }
    let done = roll_out(db, config).await;
    lease::release(db, ROLLOUT_LEASE, holder).await?;
    done
}

/// Starts the rollout in the background, so that publishing answers at once. If it fails or
/// another replica holds the lease, the job that every replica runs each minute finishes it.
pub fn start_roll_out(db: Db, config: Arc<Config>) {
    let tasks = db.tasks().clone();
    tasks.spawn(async move {
        if let Err(e) = roll_out_exclusively(&db, &config).await {
            tracing::error!(error = %e, "re-consent rollout failed; the job resumes it");
        }
    });
}
