//! Console accounts as the operator manages them from the command line: created with a setup
//! link, disabled (their sessions end with it), reset to a fresh setup link.

use crate::{
    audit::Actor,
    auth::Role,
    config::Config,
    db::Db,
    staff::{self, SetupLink, StaffError, StaffUser},
};

/// Creates an account and the one-use link its owner sets it up with.
pub async fn create(
    db: &Db,
    email: &str,
    role: Role,
    actor: &Actor,
) -> Result<(StaffUser, SetupLink), StaffError> {
    let tx = db.begin().await?;
    let created = staff::create(&tx, email, role, actor).await?;
    tx.commit().await?;
    Ok(created)
}

/// Disables an account and ends its sessions.
pub async fn disable(db: &Db, email: &str, actor: &Actor) -> Result<StaffUser, StaffError> {
    let tx = db.begin().await?;
    let user = staff::disable(&tx, email, actor).await?;
    tx.commit().await?;
    Ok(user)
}

/// Clears an account's password and second factor and issues a new setup link.
pub async fn reset(
    db: &Db,
    config: &Config,
    email: &str,
    actor: &Actor,
) -> Result<SetupLink, StaffError> {
    let tx = db.begin().await?;
    let link = staff::reset(&tx, config, email, actor).await?;
    tx.commit().await?;
    Ok(link)
}
