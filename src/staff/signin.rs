//! The console's sign-in steps as whole units, each in its own transaction (the password step,
//! which hashes before it writes, is [`super::check_password`]): a session opened after the
//! password, the seed to enrol, the code that completes a sign-in, signing out, and ending one
//! of one's own sessions.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::DbErr;

use super::{Attempt, StaffError, StaffUser, sessions};
use crate::{
    audit::{self, Actor},
    config::Config,
    db::Db,
};

/// A session's cookie value (its only copy) and when it expires.
pub type Opened = (String, DateTime<Utc>);

/// Opens a session after the password: complete when no second factor is needed (which
/// counts as a complete sign-in), else good only for the second-factor step.
pub async fn open_session(
    db: &Db,
    user: &StaffUser,
    attempt: &Attempt,
    complete: bool,
    lifetime: TimeDelta,
    user_agent: Option<&str>,
) -> Result<Opened, DbErr> {
    let tx = db.begin().await?;
    let opened = sessions::start(&tx, &user.id, complete, lifetime, user_agent).await?;
    if complete {
        super::signed_in(&tx, user, attempt).await?;
    }
    tx.commit().await?;
    Ok(opened)
}

/// The seed an account without a confirmed second factor enrols: the one stored, or a new one.
pub async fn enrolment_seed(
    db: &Db,
    config: &Config,
    user: &StaffUser,
) -> Result<Vec<u8>, StaffError> {
    if let Some(seed) = super::totp_seed(config, user)? {
        return Ok(seed);
    }
    let tx = db.begin().await?;
    let seed = super::start_totp(&tx, config, user).await?;
    tx.commit().await?;
    Ok(seed)
}

/// The code step. A wrong or replayed code is counted and committed before the refusal
/// returns; a right one replaces the password-only session (`pending`) with a complete one.
#[allow(clippy::too_many_arguments)]
pub async fn second_factor(
    db: &Db,
    config: &Config,
    user: &StaffUser,
    attempt: &Attempt,
    code: &str,
    pending: Option<&str>,
    lifetime: TimeDelta,
    user_agent: Option<&str>,
) -> Result<Opened, StaffError> {
    let tx = db.begin().await?;
    if let Err(refused) = super::check_code(&tx, config, user, attempt, code).await {
        tx.commit().await?;
        return Err(refused);
    }
    if let Some(old) = pending {
        sessions::end(&tx, old).await?;
    }
    let opened = sessions::start(&tx, &user.id, true, lifetime, user_agent).await?;
    super::signed_in(&tx, user, attempt).await?;
    tx.commit().await?;
    Ok(opened)
}

/// Ends the session with this cookie value.
pub async fn sign_out(db: &Db, token: &str) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    sessions::end(&tx, token).await?;
    tx.commit().await
}

/// Ends one of a person's own sessions by its shown id, audited when there was one.
pub async fn end_own_session(db: &Db, user: &StaffUser, id: &str) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    if sessions::end_by_id(&tx, &user.id, id).await? {
        audit::record(
            &tx,
            &Actor::Staff(user.id.clone()),
            "staff.session_ended",
            audit::Target::new("staff", &user.id),
            serde_json::json!({"session": id}),
        )
        .await?;
    }
    tx.commit().await
}
