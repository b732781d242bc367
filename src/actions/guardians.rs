//! A guardian's part, from the API and the portal alike: a minor names their guardian, and the
//! guardian answers through the emailed link. Each is one transaction; a refused decision
//! records nothing and leaves the link working.

use chrono::{DateTime, Utc};

use crate::{
    audit::Actor,
    config::Config,
    consent::{Decision, PolicyRef, Recorded},
    db::Db,
    guardian::{self, Evidence, GuardianError},
    subject,
};

/// A minor names a guardian, who is emailed a link; returns when the link expires.
pub async fn request(
    db: &Db,
    config: &Config,
    external_id: &str,
    guardian_email: &str,
    actor: &Actor,
) -> Result<DateTime<Utc>, GuardianError> {
    let mut tx = db.begin().await?;
    let person = subject::find_or_create_locked(&mut tx, external_id).await?;
    let expires_at = guardian::request(&mut tx, config, &person, guardian_email, actor).await?;
    tx.commit().await?;
    Ok(expires_at)
}

/// The guardian's decisions, authenticated by the link's token, which they use up.
pub async fn confirm(
    db: &Db,
    config: &Config,
    token: &str,
    decisions: Vec<Decision>,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Vec<Recorded>, GuardianError> {
    let mut tx = db.begin().await?;
    let recorded = guardian::confirm(&mut tx, config, token, decisions, policy, evidence).await?;
    tx.commit().await?;
    Ok(recorded)
}
