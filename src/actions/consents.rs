//! Consent decisions that stand alone in their own transaction: an admin's correction and a
//! withdrawal from an email's unsubscribe link. (Decisions that come in numbers go through
//! `consent::record_alone`'s shared commit; those that belong with other work are recorded in
//! that work's transaction.)

use crate::{
    config::Config,
    consent::{
        ConsentError, RecordRequest, Recorded,
        ledger::{self, Withdrawal},
    },
    db::Db,
    subject::Subject,
};

/// Records an admin's correction of a person's consents, with its reason.
pub async fn correct(
    db: &Db,
    config: &Config,
    correction: RecordRequest,
) -> Result<Vec<Recorded>, ConsentError> {
    let mut tx = db.begin().await?;
    let recorded = ledger::record(&mut tx, config, correction).await?;
    tx.commit().await?;
    Ok(recorded)
}

/// Withdraws one purpose from an unsubscribe link; nothing is recorded if it was not granted.
pub async fn unsubscribe(
    db: &Db,
    config: &Config,
    person: &Subject,
    purpose: &str,
    how: Withdrawal<'_>,
) -> Result<Vec<Recorded>, ConsentError> {
    let mut tx = db.begin().await?;
    let recorded = ledger::withdraw(&mut tx, config, person, &[purpose.to_string()], how).await?;
    tx.commit().await?;
    Ok(recorded)
}
