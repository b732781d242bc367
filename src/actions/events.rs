//! An event from the main app, applied once whatever the number of deliveries.

use serde_json::{Value, json};

use crate::{
    config::Config,
    db::Db,
    error::ApiError,
    hooks::{self, events::Event},
};

/// Applies `event` under its `webhook-id` and answers with what it did. A delivery whose id was
/// applied before, or is being applied by a parallel copy that commits first, gets that first
/// answer and changes nothing.
pub async fn apply(
    db: &Db,
    config: &Config,
    webhook_id: &str,
    event: Event,
) -> Result<Value, ApiError> {
    if let Some(earlier) = hooks::receipt(db.conn(), webhook_id).await? {
        return Ok(earlier);
    }
    let kind = event.kind.clone();
    let mut tx = db.begin().await?;
    if !hooks::claim(&mut tx, webhook_id, &kind).await? {
        drop(tx);
        return hooks::receipt(db.conn(), webhook_id)
            .await?
            .ok_or_else(|| ApiError::conflict("this event is being applied; retry"));
    }
    let result = hooks::events::apply(&mut tx, config, event).await?;
    let answer = json!({"id": webhook_id, "type": kind, "result": result});
    hooks::store_answer(&mut tx, webhook_id, &answer).await?;
    tx.commit().await?;
    Ok(answer)
}
