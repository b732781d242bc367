//! Outgoing webhooks to the main app and to registered systems, signed per Standard Webhooks.
//!
//! The body is fixed when the message is queued, and `webhook-id` is the outbox row's id, so a
//! retried or repeated delivery is byte-for-byte the same message and the receiver can drop
//! repeats by id. Redirects are followed only within the same host.

use std::time::Duration;

use reqwest::redirect::Policy;
use standardwebhooks::Webhook;

use crate::{
    config::{Config, WebhooksConfig, parse_webhook_secrets},
    system::Endpoint,
};

/// Signs and posts webhooks.
pub struct WebhookSender {
    client: reqwest::Client,
    signer: Option<Webhook>,
    endpoints: WebhooksConfig,
}

/// Why a webhook was not delivered; safe to store (no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError(pub String);

impl WebhookSender {
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let signer = match &config.webhook_secret {
            Some(secret) => {
                let keys = parse_webhook_secrets(secret.expose())?;
                Some(Webhook::from_bytes(keys[0].clone()).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.webhooks.timeout_seconds))
            .redirect(Policy::custom(|attempt| {
                let same_host = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.host_str() == attempt.url().host_str());
                if same_host && attempt.previous().len() < 5 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .user_agent(concat!("Consentry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            client,
            signer,
            endpoints: config.webhooks.clone(),
        })
    }

    /// Posts `body` for `event_type` with the Standard Webhooks headers, to a system's own
    /// endpoint signed with its secret, or (`None`) to the main app's; only a 2xx counts.
    pub async fn deliver(
        &self,
        message_id: &str,
        event_type: &str,
        body: &str,
        timestamp: i64,
        system: Option<&Endpoint>,
    ) -> Result<(), DeliveryError> {
        let own_signer;
        let (url, signer) = match system {
            Some(endpoint) => {
                own_signer = Webhook::from_bytes(endpoint.secret.clone())
                    .map_err(|e| DeliveryError(format!("the system's secret: {e}")))?;
                (endpoint.url.as_str(), &own_signer)
            }
            None => {
                let url = self.endpoints.endpoint(event_type).ok_or_else(|| {
                    DeliveryError(format!(
                        "no webhook endpoint is configured for {event_type}"
                    ))
                })?;
                let signer = self
                    .signer
                    .as_ref()
                    .ok_or_else(|| DeliveryError("no webhook secret is configured".into()))?;
                (url, signer)
            }
        };
        let webhook_id = format!("msg_{message_id}");
        let signature = signer
            .sign(&webhook_id, timestamp, body.as_bytes())
            .map_err(|e| DeliveryError(format!("signing failed: {e}")))?;
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                DeliveryError(if e.is_timeout() {
                    "the endpoint did not answer in time".into()
                } else {
                    format!("request failed: {}", e.without_url())
                })
            })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError(format!("the endpoint answered {status}")))
        }
    }
}
