//! A person filing a request, from the API and the portal alike: signed in (the sign-in is the
//! identity check), or by email with a code to prove the address.

use std::sync::Arc;

use crate::{
    audit::Actor,
    config::Config,
    db::{Db, Group},
    request::{
        OnBehalfOf, Request, RequestError, export,
        intake::{self, Attempt, Intake},
        model::exports,
    },
    subject,
};

/// Files a request for the signed-in person `external_id`, verified at once; a request of the
/// same type already running for them is linked to it and closed.
pub async fn signed_in(
    db: &Db,
    config: &Config,
    external_id: &str,
    intake: Intake,
) -> Result<Request, RequestError> {
    let mut tx = db.begin().await?;
    let person = subject::find_or_create_locked(&mut tx, external_id).await?;
    let request =
        intake::open_verified(&mut tx, config, &person, intake, "portal", &Actor::Subject).await?;
    tx.commit().await?;
    Ok(request)
}

/// Files a request without a login and emails its code. Filings come in bursts, so each is
/// committed in a transaction shared with others; `key` orders them (the address's digest).
pub async fn by_email(
    group: &Group,
    config: &Arc<Config>,
    key: String,
    address: String,
    intake: Intake,
    on_behalf_of: Option<OnBehalfOf>,
) -> Result<Request, RequestError> {
    let config = config.clone();
    group
        .run(key, move |tx| {
            Box::pin(async move {
                intake::file_by_email(tx, &config, &address, intake, on_behalf_of).await
            })
        })
        .await
}

/// Checks an emailed code. A wrong code is counted even though it is refused, so the count is
/// committed before the refusal comes back as the inner error.
pub async fn verify(
    db: &Db,
    config: &Config,
    id: &str,
    code: &str,
) -> Result<Attempt, RequestError> {
    let mut tx = db.begin().await?;
    let attempt = intake::verify(&mut tx, config, id, code).await?;
    tx.commit().await?;
    Ok(attempt)
}

/// Sends a new code (at most 3, a minute apart).
pub async fn resend(db: &Db, id: &str) -> Result<(), RequestError> {
    let mut tx = db.begin().await?;
    intake::resend(&mut tx, id).await?;
    Ok(tx.commit().await?)
}

/// The export package `token` opens, its download recorded.
pub async fn open_package(
    db: &Db,
    request_id: &str,
    token: &str,
) -> Result<exports::Model, RequestError> {
    let mut tx = db.begin().await?;
    let package = export::find(&mut tx, request_id, token).await?;
    tx.commit().await?;
    Ok(package)
}
