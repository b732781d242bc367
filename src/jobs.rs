//! Scheduled jobs, run by tokio-cron-scheduler on cron expressions (with seconds, in UTC).
//!
//! Every replica's scheduler fires every job; a lease in the database (see [`crate::lease`])
//! lets one of them run it. Every job is also safe to repeat: each works in batches and leaves
//! nothing half done between them.

use std::{future::Future, pin::Pin, sync::Arc};

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::{AppState, lease, request, subject};

/// Checks a cron expression the way the scheduler will read it.
pub fn check_schedule(expression: &str) -> Result<(), String> {
    Job::new_async(expression, |_, _| Box::pin(async {}))
        .map(drop)
        .map_err(|_| {
            format!("`{expression}` is not a cron expression with seconds, such as `0 30 3 * * *`")
        })
}

/// Starts the scheduler with every job; shut it down with [`JobScheduler::shutdown`].
pub async fn start(state: AppState) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let state = Arc::new(state);
    add(
        &scheduler,
        "minor_sweep",
        &state.config.age.sweep_schedule,
        state.clone(),
        |s| Box::pin(async move { sweep_minors(&s).await }),
    )
    .await?;
    add(
        &scheduler,
        "request_digest",
        &state.config.requests.digest_schedule,
        state.clone(),
        |s| Box::pin(async move { send_digest(&s).await }),
    )
    .await?;
    add(
        &scheduler,
        "export_purge",
        &state.config.requests.export_purge_schedule,
        state.clone(),
        |s| Box::pin(async move { purge_exports(&s).await }),
    )
    .await?;
    scheduler.start().await?;
    Ok(scheduler)
}

type Run = fn(Arc<AppState>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long a replica holds a job's lease: longer than any run, shorter than any schedule.
const LEASE: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Schedules `run` on a cron expression, under the lease `name`.
async fn add(
    scheduler: &JobScheduler,
    name: &'static str,
    schedule: &str,
    state: Arc<AppState>,
    run: Run,
) -> Result<(), JobSchedulerError> {
    scheduler
        .add(Job::new_async(
            schedule,
            move |_, _| -> Pin<Box<dyn Future<Output = ()> + Send>> {
                let state = state.clone();
                Box::pin(async move {
                    match lease::acquire(&state.db, name, lease::holder(), LEASE).await {
                        Ok(true) => run(state).await,
                        Ok(false) => tracing::debug!(job = name, "another replica runs this job"),
                        Err(e) => {
                            tracing::warn!(job = name, error = %e, "the job's lease could not be taken")
                        }
                    }
                })
            },
        )?)
        .await?;
    Ok(())
}

/// Emails reviewers the day's overdue and soon-due requests.
async fn send_digest(state: &AppState) {
    let today = crate::clock::now().date_naive();
    match request::digest::queue(&state.db, &state.config, today).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(digests = n, "request digest queued"),
        Err(e) => tracing::error!(error = %e, "the request digest failed; it runs again next time"),
    }
}

/// Deletes export packages past their download period.
async fn purge_exports(state: &AppState) {
    match request::export::purge_expired(&state.db, &state.config).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(packages = n, "expired export packages deleted"),
        Err(e) => {
            tracing::error!(error = %e, "purging export packages failed; it runs again next time")
        }
    }
}

/// Opens erasure requests for minors still without a guardian after the grace period.
async fn sweep_minors(state: &AppState) {
    let grace = chrono::TimeDelta::days(i64::from(state.config.age.guardian_grace_days));
    match subject::sweep_unverified_minors(&state.db, &state.config, grace).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            minors = n,
            "erasure requests opened for minors without guardian consent"
        ),
        Err(e) => tracing::error!(error = %e, "the minor sweep failed; it runs again next time"),
    }
}
