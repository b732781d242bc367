//! Retention rules as admins change them, from the API and the console alike: a new or changed
//! rule commits, then dates again every item of its category already held, in batches, so a
//! shortened rule takes effect on what is held; legal holds on single items; and a person's own
//! choice among the periods a rule offers.

use crate::{
    audit::Actor,
    clock,
    db::Db,
    retention::{self, RetentionError, Rule, RuleFields, choices, items, purge},
    subject,
};

/// Creates the rule of a category, then dates the items already held.
pub async fn create(
    db: &Db,
    category: &str,
    fields: RuleFields,
    actor: &Actor,
) -> Result<Rule, RetentionError> {
    let mut tx = db.begin().await?;
    let rule = retention::create(&mut tx, category, fields, actor).await?;
    tx.commit().await?;
    retention::redate(db, &rule).await?;
    Ok(rule)
}

/// Changes the rule of a category, then dates the items already held again.
pub async fn update(
    db: &Db,
    category: &str,
    fields: RuleFields,
    actor: &Actor,
) -> Result<Rule, RetentionError> {
    let mut tx = db.begin().await?;
    let rule = retention::update(&mut tx, category, fields, actor).await?;
    tx.commit().await?;
    retention::redate(db, &rule).await?;
    Ok(rule)
}

/// Deletes the rule of a category; its items keep no purge date.
pub async fn delete(db: &Db, category: &str, actor: &Actor) -> Result<(), RetentionError> {
    let mut tx = db.begin().await?;
    retention::delete(&mut tx, category, actor).await?;
    tx.commit().await?;
    Ok(())
}

/// Holds one item (never purged) or releases it, with a reason.
pub async fn set_hold(
    db: &Db,
    external_id: &str,
    item_ref: &str,
    held: bool,
    reason: &str,
    actor: &Actor,
) -> Result<items::Model, RetentionError> {
    let mut tx = db.begin().await?;
    let item = purge::set_hold(&mut tx, external_id, item_ref, held, reason, actor).await?;
    tx.commit().await?;
    Ok(item)
}

/// Records the signed-in person `external_id`'s choice of `period` for a category and dates
/// their items of it again; returns how many were dated.
pub async fn choose(
    db: &Db,
    external_id: &str,
    category: &str,
    period: &str,
    evidence: choices::Evidence,
) -> Result<u64, RetentionError> {
    let mut tx = db.begin().await?;
    let person = subject::find_or_create_locked(&mut tx, external_id).await?;
    let dated = choices::choose(
        &mut tx,
        &person.id,
        category,
        period,
        evidence,
        clock::now(),
    )
    .await?;
    tx.commit().await?;
    Ok(dated)
}
