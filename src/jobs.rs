//! Scheduled jobs, run by tokio-cron-scheduler on cron expressions (with seconds, in UTC).
//!
//! Every replica's scheduler fires every job; a lease in the database (see [`crate::lease`])
//! lets one of them run it. Every job is also safe to repeat: each works in batches and leaves
//! nothing half done between them. A job is an edge like an API handler: it begins the write
//! units its work needs (one per batch for the long ones) and commits them.

use std::{future::Future, pin::Pin, sync::Arc};

use chrono::TimeDelta;

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

use crate::{
    AppState,
    actions::{minors, policies, purges, reviews},
    audit::Actor,
    lease, request,
    retention::{self, RetentionError},
};

/// Checks a cron expression the way the scheduler will read it.
pub fn check_schedule(expression: &str) -> Result<(), String> {
    Job::new_async(expression, |_, _| Box::pin(async {}))
        .map(drop)
        .map_err(|_| {
            format!("`{expression}` is not a cron expression with seconds, such as `0 30 3 * * *`")
        })
}

/// Starts the scheduler with every job; shut it down with [`JobScheduler::shutdown`].
pub async fn start(state: AppState) -> Result<Scheduled, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let mut jobs = Vec::new();
    let state = Arc::new(state);
    // Opens erasure requests for minors still without a guardian after the grace period.
    jobs.push(
        add(
            &scheduler,
            "minor_sweep",
            &state.config.age.sweep_schedule,
            state.clone(),
            |s| {
                Box::pin(async move {
                    let grace = TimeDelta::days(i64::from(s.config.age.guardian_grace_days));
                    minors::sweep_unverified(&s.db, &s.config, grace)
                        .await
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await?,
    );
    // Emails reviewers the day's overdue and soon-due requests.
    jobs.push(
        add(
            &scheduler,
            "request_digest",
            &state.config.requests.digest_schedule,
            state.clone(),
            |s| {
                Box::pin(async move {
                    let today = crate::clock::now().date_naive();
                    reviews::queue_digest(&s.db, &s.config, today)
                        .await
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await?,
    );
    // Ends restrictions whose lift was announced and whose notice period has passed.
    jobs.push(
        add(
            &scheduler,
            "restriction_lifts",
            &state.config.requests.restriction_lift_schedule,
            state.clone(),
            |s| {
                Box::pin(async move {
                    request::review::lift_due_restrictions(&s.db, crate::clock::now())
                        .await
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await?,
    );
    // Deletes export packages past their download period.
    jobs.push(
        add(
            &scheduler,
            "export_purge",
            &state.config.requests.export_purge_schedule,
            state.clone(),
            |s| {
                Box::pin(async move {
                    request::export::purge_expired(&s.db, &s.config, crate::clock::now())
                        .await
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await?,
    );
    // The retention purge; a run already going (started by hand) makes this one skip.
    jobs.push(
        add(
            &scheduler,
            "retention_purge",
            &state.config.retention.purge_schedule,
            state.clone(),
            |s| {
                Box::pin(async move {
                    let now = crate::clock::now();
                    let run =
                        match retention::purge::start(&s.db, &s.config, false, now, &Actor::System)
                            .await
                        {
                            Ok(run) => run,
                            Err(RetentionError::Busy) => return Ok(0),
                            Err(e) => return Err(e.to_string()),
                        };
                    purges::execute(&s.db, &s.config, run)
                        .await
                        .map(|run| {
                            u64::try_from(run.items_purged + run.notices_queued).unwrap_or(0)
                        })
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await?,
    );
    // Re-consent after a material policy change that publishing could not finish (a crash, a
    // restart, a failure). The rollout takes a lease of its own, released when it is done, so
    // a rollout started at publication is never kept waiting by this job's lease.
    jobs.push(
        add(
            &scheduler,
            "reconsent_resume",
            "30 * * * * *",
            state.clone(),
            |s| {
                Box::pin(async move {
                    policies::roll_out_exclusively(&s.db, &s.config)
                        .await
                        .map_err(|e| e.to_string())
                })
            },
        )
        .await?,
    );
    scheduler.start().await?;
    Ok(Scheduled { scheduler, jobs })
}

/// The running scheduler and its jobs, by name.
pub struct Scheduled {
    pub scheduler: JobScheduler,
    jobs: Vec<(&'static str, Uuid)>,
}

impl Scheduled {
    /// Each job with its next run, for the start-up line: `minor_sweep 2026-12-03T02:00:00Z, ...`.
    pub async fn next_runs(&mut self) -> String {
        let mut runs = Vec::new();
        for (name, id) in &self.jobs {
            let next = match self.scheduler.next_tick_for_job(*id).await {
                Ok(Some(at)) => crate::clock::canonical(at),
                _ => "not scheduled".into(),
            };
            runs.push(format!("{name} {next}"));
        }
        runs.join(", ")
    }
}

/// A job's work: how many things it handled, or why it failed.
type Run = fn(Arc<AppState>) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>>;

/// How long a replica holds a job's lease: longer than any run, shorter than any schedule.
const LEASE: TimeDelta = TimeDelta::minutes(10);

/// Schedules `run` on a cron expression, under the lease `name`, and logs its outcome. A failed
/// run is logged and simply runs again on schedule.
async fn add(
    scheduler: &JobScheduler,
    name: &'static str,
    schedule: &str,
    state: Arc<AppState>,
    run: Run,
) -> Result<(&'static str, Uuid), JobSchedulerError> {
    let id = scheduler
        .add(Job::new_async(
            schedule,
            move |_, _| -> Pin<Box<dyn Future<Output = ()> + Send>> {
                let state = state.clone();
                Box::pin(async move {
                    match lease::acquire(&state.db, name, lease::holder(), LEASE).await {
                        Ok(true) => match run(state).await {
                            Ok(0) => {}
                            Ok(handled) => tracing::info!(job = name, handled, "job done"),
                            Err(error) => tracing::error!(
                                job = name,
                                %error,
                                "job failed; it runs again next time"
                            ),
                        },
                        Ok(false) => tracing::debug!(job = name, "another replica runs this job"),
                        Err(e) => {
                            tracing::warn!(job = name, error = %e, "the job's lease could not be taken")
                        }
                    }
                })
            },
        )?)
        .await?;
    Ok((name, id))
}
