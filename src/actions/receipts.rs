//! A consent receipt is the ledger's proof with the person's retention choices beside it: two
//! rooms, read together.

use crate::{
    config::Config,
    consent::{
        ConsentError, ledger,
        receipt::{self, Receipt, ReceiptRetention},
    },
    retention,
};

/// The receipt of one of a person's consent events (404 for another person's event).
pub async fn of_event(
    conn: &impl sea_orm::ConnectionTrait,
    config: &Config,
    external_id: &str,
    event_id: &str,
) -> Result<Receipt, ConsentError> {
    let subject = ledger::subject(conn, external_id).await?;
    let chosen: Vec<ReceiptRetention> = retention::choices::of_subject(conn, &subject.id)
        .await?
        .into_iter()
        .map(|c| ReceiptRetention {
            category: c.category,
            period: c.period,
            chosen_at: c.chosen_at,
        })
        .collect();
    receipt::of_event(conn, config, &subject, event_id, &chosen).await
}
