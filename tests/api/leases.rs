//! Job leases: one holder at a time, even when replicas race for it; and background work that
//! ends before the database closes.

use chrono::TimeDelta;
use consentry::lease;

use crate::support::spawn_app;

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let hour = TimeDelta::hours(1);
    assert!(lease::acquire(db, "job", "replica-a", hour).await.unwrap());
    assert!(!lease::acquire(db, "job", "replica-b", hour).await.unwrap());
    assert!(
        lease::acquire(db, "job", "replica-a", hour).await.unwrap(),
        "the holder renews"
    );
    assert!(
        lease::acquire(db, "other-job", "replica-b", hour)
            .await
            .unwrap()
    );

    // An expired lease goes to whoever asks next.
    assert!(
        lease::acquire(db, "short", "replica-a", TimeDelta::zero())
            .await
            .unwrap()
    );
    assert!(
        lease::acquire(db, "short", "replica-b", hour)
            .await
            .unwrap()
    );
    assert!(
        !lease::acquire(db, "short", "replica-a", hour)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn replicas_racing_for_a_lease_get_it_once() {
    let app = spawn_app().await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let db = app.state.db.clone();
            tokio::spawn(async move {
                lease::acquire(
                    &db,
                    "nightly",
                    &format!("replica-{i}"),
                    TimeDelta::minutes(10),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// A purge an admin started goes on while the service shuts down, and is recorded as finished
/// before the database closes: background work lives under the pool's supervisor.
#[tokio::test]
async fn shutting_down_lets_a_started_purge_finish_before_the_database_closes() {
    use consentry::{
        actions,
        audit::Actor,
        db::Db,
        retention::{model::RunStatus, purge},
    };

    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::test_config(&dir).await;
    let app = consentry::App::build(config.clone()).await.unwrap();
    let state = app.state().clone();
    let run = actions::purges::launch(&state.db, &state.config, false, &Actor::Cli)
        .await
        .unwrap();
    app.run_until(async {}).await.unwrap();
    assert_eq!(state.db.tasks().running(), 0);

    let db = Db::connect(&config).await.unwrap();
    let recorded = purge::get(db.conn(), &run.id).await.unwrap();
    assert_eq!(recorded.status, RunStatus::Completed);
    db.close().await.unwrap();
}
