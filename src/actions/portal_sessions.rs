//! The portal's sessions: the main app hands a person over, and they sign out.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

use crate::{
    auth::session::{self, Lifetimes, Started},
    db::Db,
    subject,
};

/// Starts the session of the person a verified handoff token names, once per token: `None`
/// when the token was used before. A session the browser already had (`previous`) ends.
pub async fn hand_off(
    db: &Db,
    token: &str,
    token_expires: DateTime<Utc>,
    external_id: &str,
    previous: Option<&str>,
    lifetimes: Lifetimes,
) -> Result<Option<Started>, DbErr> {
    let mut tx = db.begin().await?;
    if !session::claim_handoff(&tx, token, token_expires).await? {
        return Ok(None);
    }
    if let Some(old) = previous {
        session::end(&tx, old).await?;
    }
    let person = subject::find_or_create_locked(&mut tx, external_id).await?;
    let started = session::start(&tx, &person.id, lifetimes).await?;
    tx.commit().await?;
    Ok(Some(started))
}

/// Ends a portal session (sign-out).
pub async fn sign_out(db: &Db, token: &str) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    session::end(&tx, token).await?;
    tx.commit().await
}
