//! Signed events from the main app (`POST /v1/hooks/events`), verified per Standard Webhooks.
//!
//! An event is applied once: its `webhook-id` is stored with the answer in the same
//! transaction as the change, and a repeat gets the stored answer. Nothing is written for an
//! event that fails verification, has an unknown type or invalid data.

pub mod api;
pub mod events;

use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};
use standardwebhooks::Webhook;

use crate::config::{Config, parse_webhook_secrets};

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

/// The stored answer to an event id, if it was applied before.
pub async fn receipt(
    conn: &impl ConnectionTrait,
    webhook_id: &str,
) -> Result<Option<entity::Model>, DbErr> {
    entity::Entity::find_by_id(webhook_id.to_string())
        .one(conn)
        .await
}

/// Stores the answer to an applied event.
pub async fn store_receipt(
    conn: &impl ConnectionTrait,
    webhook_id: &str,
    event_type: &str,
    response: &serde_json::Value,
) -> Result<(), DbErr> {
    entity::Entity::insert(entity::ActiveModel {
        webhook_id: Set(webhook_id.to_string()),
        event_type: Set(event_type.to_string()),
        status: Set(200),
        response: Set(response.to_string()),
        received_at: Set(crate::clock::now()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
