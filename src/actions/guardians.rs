//! A guardian's part, from the API and the portal alike: a minor names their guardian, and the
//! guardian answers through the emailed link. Each is one transaction; a refused decision
//! records nothing and leaves the link working.

use chrono::{DateTime, Utc};

use crate::{
    audit::Actor,
    config::Config,
    consent::{Decision, PolicyRef, Recorded},
    db::Db,
    guardian::{self, Answered, Evidence, GuardianError},
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

/// The guardian's answers to the question their consent link is on; the link works until
/// every question is answered.
pub async fn answer(
    db: &Db,
    config: &Config,
    token: &str,
    decisions: Vec<Decision>,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Answered, GuardianError> {
    let mut tx = db.begin().await?;
    let answered = guardian::answer(&mut tx, config, token, decisions, policy, evidence).await?;
    tx.commit().await?;
    Ok(answered)
}

/// A guardian gives or withdraws one purpose through the lasting link.
pub async fn change(
    db: &Db,
    config: &Config,
    token: &str,
    decision: Decision,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Vec<Recorded>, GuardianError> {
    let mut tx = db.begin().await?;
    let recorded = guardian::change(&mut tx, config, token, decision, policy, evidence).await?;
    tx.commit().await?;
    Ok(recorded)
}
