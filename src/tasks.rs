//! Background tasks under one supervisor, so that none outlives the database it writes to.
//!
//! Two kinds: *work* that ends by itself (a purge run or a re-consent rollout started by an
//! admin, an API key's last-use stamp), which shutdown waits for up to a grace period; and
//! *services* that run until told to stop (the group-commit writers, the watch for other
//! processes' writes), which shutdown stops. [`crate::db::Db`] carries the supervisor and
//! [`crate::db::Db::close`] shuts it down before the pool closes, so "the database closed under a
//! running purge" cannot happen by construction. Work cut off by the grace period is safe to
//! cut: each such job commits in batches and the next run resumes it.

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::task::JoinSet;

/// The supervisor; clones share it.
#[derive(Clone, Default)]
pub struct Tasks {
    work: Arc<Mutex<JoinSet<()>>>,
    services: Arc<Mutex<JoinSet<()>>>,
}

fn lock(set: &Mutex<JoinSet<()>>) -> MutexGuard<'_, JoinSet<()>> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tasks {
    /// Starts work that ends by itself; shutdown waits for it.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let mut set = lock(&self.work);
        // Forget what has finished, so a long-running process does not keep every handle.
        while set.try_join_next().is_some() {}
        set.spawn(work);
    }

    /// Starts a task that runs until shutdown stops it.
    pub fn spawn_service(&self, service: impl Future<Output = ()> + Send + 'static) {
        lock(&self.services).spawn(service);
    }

    /// How many pieces of work are still running.
    pub fn running(&self) -> usize {
        let mut set = lock(&self.work);
        while set.try_join_next().is_some() {}
        set.len()
    }

    /// Waits up to `grace` for the work in flight, then stops what is left, services included.
    pub async fn shutdown(&self, grace: Duration) {
        let mut work = std::mem::take(&mut *lock(&self.work));
        let drained = tokio::time::timeout(grace, async {
            while let Some(done) = work.join_next().await {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!("a background task panicked");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = work.len(),
                "background work did not finish in time and was stopped; it resumes on the next run"
            );
            work.shutdown().await;
        }
        let mut services = std::mem::take(&mut *lock(&self.services));
        services.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_work_and_stops_services() {
        let tasks = Tasks::default();
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });
        tasks.spawn_service(std::future::pending());
        tokio::time::timeout(
            Duration::from_secs(5),
            tasks.shutdown(Duration::from_secs(5)),
        )
        .await
        .expect("services do not hold shutdown up");
        assert!(finished.load(Ordering::SeqCst), "the work finished first");
        assert_eq!(tasks.running(), 0);
    }

    #[tokio::test]
    async fn work_past_the_grace_period_is_stopped() {
        let tasks = Tasks::default();
        tasks.spawn(std::future::pending());
        tokio::time::timeout(
            Duration::from_secs(5),
            tasks.shutdown(Duration::from_millis(20)),
        )
        .await
        .expect("shutdown ends after the grace period");
    }
}
