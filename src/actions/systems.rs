//! The registry of systems and their jobs: admins register, change and retire systems; the
//! systems (or the main app for them) answer for their jobs; reviewers send a job again or find
//! it not applicable. Each is one transaction.

use crate::{
    audit::Actor,
    config::Config,
    db::Db,
    request::{
        Request, RequestError,
        jobs::{self, Answer},
    },
    system::{self, SecretChange, System, SystemError, SystemFields},
};

/// Registers a system; answers with its signing secret when one was made (shown once).
pub async fn create(
    db: &Db,
    config: &Config,
    key: &str,
    fields: SystemFields,
    secret: Option<String>,
    actor: &Actor,
) -> Result<(System, Option<String>), SystemError> {
    let mut tx = db.begin().await?;
    let created = system::create(&mut tx, config, key, fields, secret, actor).await?;
    tx.commit().await?;
    Ok(created)
}

/// Changes a system; answers with a new signing secret when one was made (shown once).
pub async fn update(
    db: &Db,
    config: &Config,
    key: &str,
    fields: SystemFields,
    secret: SecretChange,
    actor: &Actor,
) -> Result<(System, Option<String>), SystemError> {
    let mut tx = db.begin().await?;
    let updated = system::update(&mut tx, config, key, fields, secret, actor).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Retires a system: no new jobs; its past ones stay as proof.
pub async fn retire(db: &Db, key: &str, actor: &Actor) -> Result<System, SystemError> {
    let mut tx = db.begin().await?;
    let system = system::retire(&mut tx, key, actor).await?;
    tx.commit().await?;
    Ok(system)
}

/// Records a system's answer for its job (`from`: the system that signed it, or `None` for
/// the main app's service key) and completes the request if that was the last one it waited
/// for.
pub async fn answer_job(
    db: &Db,
    config: &Config,
    job_id: &str,
    from: Option<&str>,
    answer: Answer,
) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    let request = jobs::answer(&mut tx, config, job_id, from, answer).await?;
    tx.commit().await?;
    Ok(request)
}

/// Sends one system's job again, alone.
pub async fn retry_job(db: &Db, job_id: &str, actor: &Actor) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    let request = jobs::retry(&mut tx, job_id, actor).await?;
    tx.commit().await?;
    Ok(request)
}

/// A reviewer finds a system has nothing to do for a request, with the reason.
pub async fn job_not_applicable(
    db: &Db,
    config: &Config,
    job_id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    let request = jobs::not_applicable(&mut tx, config, job_id, reason, actor).await?;
    tx.commit().await?;
    Ok(request)
}
