//! Group commit: units of work from many callers share a transaction, each under its own
//! savepoint.

use consentry::notify::outbox;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use crate::{notify::code, support::spawn_app};

/// Units that fail, by refusing after they wrote or by a statement the database rejects
/// (which on PostgreSQL aborts the transaction until rolled back), leave nothing; the others
/// commit and are answered with their own results.
#[tokio::test]
async fn units_sharing_a_commit_fail_alone() {
    let app = spawn_app().await;
    let (commits_before, units_before) = app.state.group.counts();
    let answers = app
        .run_units(30, |i, tx| {
            Box::pin(async move {
                outbox::enqueue_email(
                    tx,
                    &format!("unit:{i}"),
                    "unit@example.com",
                    "en",
                    &code(i as u32),
                )
                .await?;
                match i % 5 {
                    0 => Err(DbErr::Custom("refused after writing".into())),
                    1 => tx
                        .execute_unprepared("INSERT INTO outbox (id) VALUES (NULL)")
                        .await
                        .map(|_| i),
                    _ => Ok(i),
                }
            })
        })
        .await;
    for (i, answer) in answers.iter().enumerate() {
        match i % 5 {
            0 | 1 => assert!(answer.is_err(), "unit {i} failed: {answer:?}"),
            _ => assert_eq!(answer.as_ref().ok(), Some(&i)),
        }
    }
    let mut kept: Vec<String> = outbox::entity::Entity::find()
        .all(app.state.db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.dedupe_key)
        .collect();
    kept.sort();
    let mut expected: Vec<String> = (0..30)
        .filter(|i| i % 5 > 1)
        .map(|i| format!("unit:{i}"))
        .collect();
    expected.sort();
    assert_eq!(kept, expected);
    let (commits, units) = app.state.group.counts();
    assert_eq!(
        units - units_before,
        30,
        "every unit ran in a committed batch"
    );
    assert!(commits > commits_before && commits - commits_before <= 30);
}
