//! Job leases: one holder at a time, even when replicas race for it.

use chrono::TimeDelta;
use consentry::lease;

use crate::helpers::spawn_app;

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
