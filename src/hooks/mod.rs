//! Signed events from the main app (`POST /v1/hooks/events`), verified per Standard Webhooks.
//!
//! An event is applied once: its `webhook-id` is claimed by a unique insert in the transaction
//! that applies it and stored with the answer, so parallel copies wait for the first and a
//! repeat gets the stored answer; a crash before the commit leaves neither the effect nor the
//! id. Nothing is written for an event that fails verification, has an unknown type or invalid
//! data. This room owns `webhook_receipts`; each event's effects are written by the rooms that
//! own them, in the handler's one [`Tx`].

pub mod api;
pub mod events;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    TryInsertResult, prelude::Expr,
};
use serde_json::Value;
use standardwebhooks::Webhook;

use crate::{
    config::{Config, parse_webhook_secrets},
    db::Tx,
};

/// The `webhook_receipts` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_receipts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub webhook_id: String,
        pub event_type: String,
        pub status: i32,
        /// The JSON answer given the first time (ids only).
        pub response: String,
        pub received_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Verifies signatures with every configured secret, so that a secret can be rotated.
pub struct Verifier {
    keys: Vec<Webhook>,
}

impl Verifier {
    pub fn from_config(config: &Config) -> Self {
        let keys = config
            .webhook_secret
            .as_ref()
            .and_then(|s| parse_webhook_secrets(s.expose()).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| Webhook::from_bytes(k).ok())
            .collect();
        Self { keys }
    }

    /// Whether any secret signed `body` with these headers, within the 5-minute tolerance.
    pub fn verify(&self, body: &[u8], headers: &poem::http::HeaderMap) -> bool {
        self.keys.iter().any(|k| k.verify(body, headers).is_ok())
    }
}

/// The longest `webhook-id` kept (the column's length).
pub const MAX_ID_LEN: usize = 255;

/// The stored answer to an event id, if it was applied before.
pub async fn receipt(
    conn: &impl ConnectionTrait,
    webhook_id: &str,
) -> Result<Option<Value>, DbErr> {
    Ok(entity::Entity::find_by_id(webhook_id.to_string())
        .one(conn)
        .await?
        .map(|r| serde_json::from_str(&r.response).unwrap_or(Value::Null)))
}

/// Claims an event id in the transaction that will apply it: a unique insert, so a parallel
/// copy waits for this transaction and then finds the id taken (false). If the transaction
/// rolls back, the id is free again.
pub async fn claim(tx: &mut Tx, webhook_id: &str, event_type: &str) -> Result<bool, DbErr> {
    let inserted = entity::Entity::insert(entity::ActiveModel {
        webhook_id: Set(webhook_id.to_string()),
        event_type: Set(event_type.to_string()),
        status: Set(200),
        response: Set("null".into()),
        received_at: Set(crate::clock::now()),
    })
    .on_conflict_do_nothing_on([entity::Column::WebhookId])
    .exec_without_returning(&*tx)
    .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(n) if n > 0))
}

/// Stores the answer to a claimed event, for the copies that come later.
pub async fn store_answer(tx: &mut Tx, webhook_id: &str, answer: &Value) -> Result<(), DbErr> {
    entity::Entity::update_many()
        .col_expr(entity::Column::Response, Expr::value(answer.to_string()))
        .filter(entity::Column::WebhookId.eq(webhook_id))
        .exec(&*tx)
        .await?;
    Ok(())
}
