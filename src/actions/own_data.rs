//! Consentry's own records past their use, deleted by every purge run: the service keeps its
//! own promises too. Each kind belongs to the room that writes it, and that room's purge
//! function both counts (for a dry run) and deletes (for a real one) with one condition, so the
//! two cannot disagree.

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    auth::session,
    config::Config,
    consent,
    db::Db,
    guardian,
    notify::outbox,
    period::Period,
    request::{budget, export, intake},
    retention::{RetentionError, purge::OwnData},
    staff,
};

/// How long after its code expired an unverified request may still ask for a new one; after
/// that the request is abandoned and the code goes.
const CODE_GRACE: TimeDelta = TimeDelta::days(1);
/// How long failed sign-ins are remembered after the last one, once they no longer lock.
const FAILURE_MEMORY: TimeDelta = TimeDelta::days(1);

/// Deletes (or, dry, counts) what is past its use at `as_of`: export packages page by page
/// (their files go first), then everything else in one transaction.
pub async fn purge(
    db: &Db,
    config: &Config,
    as_of: DateTime<Utc>,
    dry_run: bool,
) -> Result<OwnData, RetentionError> {
    let before = |setting: &str| {
        setting
            .parse::<Period>()
            .ok()
            .and_then(|p| p.before_instant(as_of))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let export_packages = if dry_run {
        export::count_expired(db.conn(), as_of).await?
    } else {
        export::purge_expired(db, config, as_of)
            .await
            .map_err(|e| RetentionError::OwnData(e.to_string()))?
    };
    let mut tx = db.begin().await?;
    let counts = OwnData {
        export_packages,
        verification_codes: intake::purge_codes(&mut tx, as_of - CODE_GRACE, dry_run).await?,
        address_budgets: budget::purge(&mut tx, as_of.date_naive(), dry_run).await?,
        guardian_tokens: guardian::purge_expired(&mut tx, as_of, dry_run).await?,
        portal_sessions: session::purge_expired(&tx, as_of, dry_run).await?,
        console_sessions: staff::sessions::purge_expired(&tx, as_of, dry_run).await?,
        sign_in_failures: staff::lockout::purge(&tx, as_of - FAILURE_MEMORY, dry_run).await?,
        outbox_messages: outbox::purge_delivered(
            &mut tx,
            before(&config.retention.keep_delivered_outbox),
            dry_run,
        )
        .await?,
        consent_proofs: consent::ledger::purge_proofs(
            &mut tx,
            before(&config.retention.keep_erased_proofs),
            dry_run,
        )
        .await?,
    };
    if !dry_run {
        tx.commit().await?;
    }
    Ok(counts)
}
