//! The minor sweep: children whose guardian never answered.

use chrono::TimeDelta;
use sea_orm::DbErr;

use crate::{clock, config::Config, db::Db, request, subject};

/// Opens an erasure request for each minor who has waited longer than `grace` for a
/// guardian's consent, as the policies promise for children's data collected without it.
/// Each minor gets one automatic request: the pending clock is stopped in the transaction that
/// opens it, and a request already open for the person is reused rather than duplicated.
/// Returns how many minors were handled.
pub async fn sweep_unverified(db: &Db, config: &Config, grace: TimeDelta) -> Result<u64, DbErr> {
    const BATCH: u64 = 500;
    let cutoff = clock::now() - grace;
    let mut handled = 0;
    loop {
        let mut txn = db.begin().await?;
        let due = subject::minors_waiting_since(&txn, cutoff, BATCH).await?;
        let done = (due.len() as u64) < BATCH;
        for person in due {
            request::intake::open_for_minor(&mut txn, config, &person)
                .await
                .map_err(|e| match e {
                    request::RequestError::Db(e) => e,
                    other => DbErr::Custom(other.to_string()),
                })?;
            subject::stop_minor_clock(&mut txn, &person.id).await?;
            handled += 1;
        }
        txn.commit().await?;
        if done {
            return Ok(handled);
        }
    }
}
