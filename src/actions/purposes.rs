//! Purposes as admins declare them, from the API and the console alike. Deleting one asks the
//! ledger first: a purpose someone has decided on is proof and is archived instead.

use crate::{
    audit::Actor,
    consent::ledger,
    db::Db,
    purpose::{self, Purpose, PurposeError, PurposeFields},
};

/// Declares a purpose.
pub async fn create(
    db: &Db,
    key: &str,
    fields: PurposeFields,
    actor: &Actor,
) -> Result<Purpose, PurposeError> {
    let mut tx = db.begin().await?;
    let purpose = purpose::create(&mut tx, key, fields, actor).await?;
    tx.commit().await?;
    Ok(purpose)
}

/// Changes a purpose's declaration.
pub async fn update(
    db: &Db,
    key: &str,
    fields: PurposeFields,
    actor: &Actor,
) -> Result<Purpose, PurposeError> {
    let mut tx = db.begin().await?;
    let purpose = purpose::update(&mut tx, key, fields, actor).await?;
    tx.commit().await?;
    Ok(purpose)
}

/// Archives a purpose: no new consent; its history stays as proof.
pub async fn archive(db: &Db, key: &str, actor: &Actor) -> Result<Purpose, PurposeError> {
    let mut tx = db.begin().await?;
    let purpose = purpose::archive(&mut tx, key, actor).await?;
    tx.commit().await?;
    Ok(purpose)
}

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
