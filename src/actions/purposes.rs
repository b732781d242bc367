//! Deleting a purpose asks the ledger first: a purpose someone has decided on is proof and is
//! archived instead.

use crate::{
    audit::Actor,
    consent::ledger,
    db::Db,
    purpose::{self, PurposeError},
};

/// Deletes a purpose nobody has consented to (a mistake); refuses one with decisions recorded.
pub async fn delete(db: &Db, key: &str, actor: &Actor) -> Result<(), PurposeError> {
    let mut tx = db.begin().await?;
    purpose::get(&tx, key).await?;
    if ledger::count_for_purpose(&tx, key).await? > 0 {
        return Err(PurposeError::HasConsents);
    }
    purpose::delete(&mut tx, key, actor).await?;
    tx.commit().await?;
    Ok(())
}
