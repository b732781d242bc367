//! Consent receipts: a record of one consent event that the person can keep, shaped after the
//! Kantara Initiative Consent Receipt and ISO/IEC TS 27560 (controller, purpose, legal basis,
//! policy version and digest, jurisdiction, time, how to withdraw, retention, recipients).

use chrono::{DateTime, Utc};
use poem_openapi::Object;

use super::model::{Action, ConsentActor, events};
use sea_orm::ConnectionTrait;

use super::{ConsentError, ledger};
use crate::{
    config::Config,
    policy::{self, Policy},
    purpose::{self, LegalBasis, Purpose, Recipient, SeparateConsentReason},
    subject::Subject,
};

/// Format identifier of our receipts.
pub const RECEIPT_VERSION: &str = "consentry-receipt/1 (after Kantara CR 1.1, ISO/IEC TS 27560)";

/// The controller named on a receipt.
#[derive(Debug, Clone, Object)]
pub struct ReceiptController {
    pub name: String,
    pub contact_email: String,
    pub address: String,
}

/// The policy document the person was shown.
#[derive(Debug, Clone, Object)]
pub struct ReceiptPolicy {
    pub key: String,
    pub version: i32,
    pub jurisdiction: String,
    pub language: String,
    pub title: String,
    /// SHA-256 of the document's canonical form at the time.
    pub sha256: String,
}

/// The purpose consented to (or refused).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReceiptPurpose {
    pub key: String,
    pub title: String,
    pub description: String,
    pub legal_basis: LegalBasis,
    pub separate_consent: bool,
    #[oai(skip_serializing_if_is_none)]
    pub separate_consent_reason: Option<SeparateConsentReason>,
    pub data_categories: Vec<String>,
    pub recipients: Vec<Recipient>,
    /// ISO 8601 duration the data is kept for.
    #[oai(skip_serializing_if_is_none)]
    pub retention_period: Option<String>,
    /// How long the person chose to have the purpose's data categories kept, where they chose.
    pub retention_chosen: Vec<ReceiptRetention>,
}

/// A person's retention choice for one data category.
#[derive(Debug, Clone, Object)]
pub struct ReceiptRetention {
    pub category: String,
    pub period: String,
    pub chosen_at: DateTime<Utc>,
}

/// A consent receipt.
#[derive(Debug, Clone, Object)]
pub struct Receipt {
    pub receipt_version: String,
    /// The consent event's id.
    pub receipt_id: String,
    /// The main app's id for the person.
    pub subject: String,
    pub controller: ReceiptController,
    pub action: Action,
    pub actor: ConsentActor,
    /// How the decision was collected (`portal`, `web`, `ios`, ...).
    pub collection_method: String,
    pub jurisdiction: String,
    pub language: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub policy: ReceiptPolicy,
    pub purpose: ReceiptPurpose,
    /// How to withdraw: as easy as giving consent (GDPR Art 7(3), PIPL Art 15).
    pub withdrawal_method: String,
    /// The event's hash in the subject's chain, to check the receipt against the ledger.
    pub event_hash: String,
    pub prev_hash: String,
}

/// The receipt of one of a person's consent events (404 for another person's event). `chosen`
/// is the person's retention choices, each category's latest (the retention room keeps them);
/// the receipt lists those of the purpose's categories.
pub async fn of_event(
    conn: &impl ConnectionTrait,
    config: &Config,
    subject: &Subject,
    event_id: &str,
    chosen: &[ReceiptRetention],
) -> Result<Receipt, ConsentError> {
    let event = ledger::event(conn, &subject.id, event_id).await?;
    let policy = policy::get(conn, &event.policy_id)
        .await
        .map_err(|e| match e {
            policy::PolicyError::Db(e) => ConsentError::Db(e),
            _ => ConsentError::EventNotFound,
        })?;
    let purpose = purpose::get(conn, &event.purpose_key)
        .await
        .map_err(|e| match e {
            purpose::PurposeError::Db(e) => ConsentError::Db(e),
            _ => ConsentError::EventNotFound,
        })?;
    Ok(build(
        &event,
        &subject.external_id,
        &policy,
        &purpose,
        chosen,
        config,
    ))
}

fn build(
    event: &events::Model,
    external_id: &str,
    policy: &Policy,
    purpose: &Purpose,
    chosen: &[ReceiptRetention],
    config: &Config,
) -> Receipt {
    let controller = &config.controller;
    let text = purpose.text(&event.language);
    Receipt {
        receipt_version: RECEIPT_VERSION.into(),
        receipt_id: event.id.clone(),
        subject: external_id.to_string(),
        controller: ReceiptController {
            name: controller.name.clone(),
            contact_email: controller.contact_email.clone(),
            address: controller.address.clone(),
        },
        action: event.action,
        actor: event.actor,
        collection_method: event.channel.clone(),
        jurisdiction: event.jurisdiction.clone(),
        language: event.language.clone(),
        occurred_at: event.occurred_at,
        recorded_at: event.recorded_at,
        policy: ReceiptPolicy {
            key: policy.key.clone(),
            version: policy.version,
            jurisdiction: policy.jurisdiction.clone(),
            language: policy.language.clone(),
            title: policy.title.clone(),
            sha256: event.policy_sha256.clone(),
        },
        purpose: ReceiptPurpose {
            key: purpose.key.clone(),
            title: text.map(|t| t.title.clone()).unwrap_or_default(),
            description: text.map(|t| t.description.clone()).unwrap_or_default(),
            legal_basis: purpose.legal_basis,
            separate_consent: purpose.separate_consent,
            separate_consent_reason: purpose.separate_consent_reason,
            data_categories: purpose.data_categories.clone(),
            recipients: purpose.recipients.clone(),
            retention_period: purpose.retention_period.clone(),
            retention_chosen: chosen
                .iter()
                .filter(|c| purpose.data_categories.contains(&c.category))
                .cloned()
                .collect(),
        },
        withdrawal_method: format!(
            "the \"Withdraw\" button in the privacy portal ({}), PUT /v1/me/consents/{} with \
             {{\"granted\": false}}, or write to {}",
            config.portal_url(),
            purpose.key,
            controller.contact_email
        ),
        event_hash: event.hash.clone(),
        prev_hash: event.prev_hash.clone(),
    }
}
