//! The dispatcher: claims due outbox rows in batches, delivers them after the claim commits,
//! and marks each delivered, scheduled for a retry, or dead. A failing delivery is recorded on
//! its row and never stops the loop.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use sea_orm::DbErr;
use tokio::sync::watch;

use super::{
    email::{Mailer, build_message},
    outbox::{self, Kind, OutboxMessage, Status},
    templates::Templates,
    webhook::WebhookSender,
};
use crate::{
    clock,
    config::{Config, MailConfig, OutboxConfig},
    db::Db,
};

/// Everything needed to deliver what the outbox holds.
pub struct Dispatcher {
    db: Db,
    mailer: Mailer,
    templates: Templates,
    webhooks: WebhookSender,
    mail: MailConfig,
    config: OutboxConfig,
}

/// What one pass over the outbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    pub delivered: u64,
    /// Failed, and scheduled for another attempt.
    pub retrying: u64,
    /// Failed for the last time.
    pub dead: u64,
}

/// Why the dispatcher could not be set up; a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Templates(#[from] super::templates::TemplateError),
    #[error("email: {0}")]
    Mail(String),
    #[error("webhooks: {0}")]
    Webhooks(String),
}

/// A failed delivery: what to record (no personal data), and whether trying again could help.
#[derive(Debug)]
pub struct Failure {
    pub detail: String,
    pub permanent: bool,
}

impl Dispatcher {
    /// Loads the templates and sets up the transports; fails before the service starts if a
    /// template is missing or broken.
    pub fn new(config: &Config, db: Db) -> Result<Self, SetupError> {
        Ok(Self {
            db,
            mailer: Mailer::from_config(config).map_err(SetupError::Mail)?,
            templates: Templates::load(&config.templates_dir)?,
            webhooks: WebhookSender::from_config(config).map_err(SetupError::Webhooks)?,
            mail: config.mail.clone(),
            config: config.outbox.clone(),
        })
    }

    /// Delivers everything due at `now`, batch after batch, until nothing due is left. Tests
    /// call it directly with the instant they want to simulate.
    pub async fn drain_once(&self, now: DateTime<Utc>) -> Result<DrainReport, DbErr> {
        let mut report = DrainReport::default();
        let lease = TimeDelta::seconds(self.config.claim_timeout_seconds as i64);
        loop {
            let mut tx = self.db.begin().await?;
            let batch = outbox::claim(&mut tx, now, self.config.batch_size, lease).await?;
            tx.commit().await?;
            if batch.is_empty() {
                return Ok(report);
            }
            let batch_report = self.deliver_claimed(batch, now).await?;
            report.delivered += batch_report.delivered;
            report.retrying += batch_report.retrying;
            report.dead += batch_report.dead;
        }
    }

    /// Delivers rows already claimed, and marks each.
    pub async fn deliver_claimed(
        &self,
        batch: Vec<OutboxMessage>,
        now: DateTime<Utc>,
    ) -> Result<DrainReport, DbErr> {
        let outcomes: Vec<_> = stream::iter(batch)
            .map(|message| async move {
                let outcome = self.deliver(&message).await;
                (message, outcome)
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;
        let mut report = DrainReport::default();
        let mut delivered = Vec::new();
        for (message, outcome) in outcomes {
            match outcome {
                Ok(()) => delivered.push(message.id),
                Err(failure) => {
                    tracing::warn!(
                        outbox_id = %message.id,
                        topic = %message.topic,
                        attempt = message.attempts,
                        error = %failure.detail,
                        "delivery failed"
                    );
                    let mut tx = self.db.begin().await?;
                    let status = outbox::mark_failed(
                        &mut tx,
                        &message,
                        &failure.detail,
                        failure.permanent,
                        now,
                        &self.config,
                    )
                    .await?;
                    tx.commit().await?;
                    match status {
                        Status::Dead => report.dead += 1,
                        _ => report.retrying += 1,
                    }
                }
            }
        }
        report.delivered = delivered.len() as u64;
        let mut tx = self.db.begin().await?;
        outbox::mark_delivered(&mut tx, delivered, now).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Sends one claimed message without recording the outcome; [`Self::deliver_claimed`]
    /// records it. A crash between the two is what the claim's lease protects against.
    pub async fn deliver(&self, message: &OutboxMessage) -> Result<(), Failure> {
        match message.kind {
            Kind::Email => self.send_email(message).await,
            Kind::Webhook => self
                .webhooks
                .deliver(
                    &message.id,
                    &message.topic,
                    &message.payload,
                    clock::now().timestamp(),
                )
                .await
                .map_err(|e| Failure {
                    detail: e.0,
                    permanent: false,
                }),
        }
    }

    /// An email as it would be sent in `locale`, for a preview before the change that sends it.
    pub fn preview(
        &self,
        content: &super::email::EmailContent,
        locale: &str,
    ) -> Result<super::templates::Rendered, super::templates::TemplateError> {
        let payload = serde_json::to_value(content).unwrap_or_default();
        self.templates
            .render(content.template(), locale, &payload["data"])
    }

    async fn send_email(&self, message: &OutboxMessage) -> Result<(), Failure> {
        let permanent = |detail: String| Failure {
            detail,
            permanent: true,
        };
        let data: serde_json::Value = serde_json::from_str(&message.payload)
            .map_err(|e| permanent(format!("stored template data is not JSON: {e}")))?;
        let rendered = self
            .templates
            .render(
                &message.topic,
                message.locale.as_deref().unwrap_or("en"),
                &data,
            )
            .map_err(|e| permanent(e.to_string()))?;
        let to = message
            .recipient
            .as_deref()
            .ok_or_else(|| permanent("the message has no recipient".into()))?;
        let email = build_message(&self.mail, to, &message.id, rendered).map_err(permanent)?;
        self.mailer
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| Failure {
                detail: e.detail,
                permanent: e.permanent,
            })
    }

    /// The background loop: drain, wait until a committed transaction queues something or a poll
    /// interval passes (retries fall due without a commit), or until shutdown; repeat. Errors
    /// are logged and the loop goes on.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let pause = Duration::from_millis(self.config.poll_interval_ms);
        loop {
            match self.drain_once(clock::now()).await {
                Ok(report) if report != DrainReport::default() => {
                    tracing::info!(
                        delivered = report.delivered,
                        retrying = report.retrying,
                        dead = report.dead,
                        "outbox drained"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "outbox pass failed; trying again"),
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.db.outbox_ready() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
