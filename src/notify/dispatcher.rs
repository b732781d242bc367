//! The dispatcher: claims due outbox rows in batches, most urgent first, and delivers them after
//! the claim commits, up to `concurrency` at once. Each delivery frees its slot as it finishes,
//! so one slow SMTP answer holds one slot rather than a batch; outcomes are recorded a few at a
//! time (delivered, scheduled for a retry, or dead). A commit that queues a message wakes the
//! loop at once, and a message more urgent than all those waiting their turn is claimed ahead of
//! them. A failing delivery is recorded on its row and never stops the loop.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
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
    /// The whole configuration, for the key that opens registered systems' secrets.
    service: Config,
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

/// Where a message goes: a registered system's endpoint, `None` for the usual one (the SMTP
/// server, the main app's webhook URL), or why the system cannot be reached.
type Route = Result<Option<crate::system::Endpoint>, Failure>;

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
            service: config.clone(),
        })
    }

    /// Delivers everything due at `now` until nothing due is left. Tests call it directly with
    /// the instant they want to simulate.
    pub async fn drain_once(&self, now: DateTime<Utc>) -> Result<DrainReport, DbErr> {
        let mut pipeline = Pipeline::new(self);
        loop {
            pipeline.turn(now, false).await?;
            if pipeline.is_idle() {
                return Ok(pipeline.report);
            }
            pipeline.settle().await;
        }
    }

    /// Sends one claimed message without recording the outcome; the pipeline records it. A
    /// crash between the two is what the claim's lease protects against.
    pub async fn deliver(&self, message: &OutboxMessage) -> Result<(), Failure> {
        let route = self.route(message).await;
        self.send(message, route).await
    }

    /// Where a webhook for a registered system goes, read from the database. The pipeline
    /// reads it before a delivery starts, never during one: a delivery in flight holds no
    /// database connection, since the loop that claims the next batch, while those deliveries
    /// wait for it, may need every connection there is.
    async fn route(&self, message: &OutboxMessage) -> Route {
        match (&message.kind, &message.system_key) {
            (Kind::Webhook, Some(key)) => {
                crate::system::endpoint(self.db.conn(), &self.service, key)
                    .await
                    .map_err(|e| Failure {
                        permanent: matches!(e, crate::system::SystemError::NotFound),
                        detail: format!("system `{key}`: {e}"),
                    })
            }
            _ => Ok(None),
        }
    }

    /// Sends a message by its route, without touching the database.
    async fn send(&self, message: &OutboxMessage, route: Route) -> Result<(), Failure> {
        match message.kind {
            Kind::Email => self.send_email(message).await,
            Kind::Webhook => self
                .webhooks
                .deliver(
                    &message.id,
                    &message.topic,
                    &message.payload,
                    clock::now().timestamp(),
                    route?.as_ref(),
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

    /// The background loop: keeps deliveries flowing while anything is due, and when idle waits
    /// until a committed transaction queues something or a poll interval passes (retries fall
    /// due without a commit), or until shutdown. Errors are logged and the loop goes on. On
    /// shutdown the deliveries in flight finish and are recorded, and messages claimed but not
    /// started are given back.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let pause = Duration::from_millis(self.config.poll_interval_ms);
        let mut pipeline = Pipeline::new(&self);
        let mut woken = false;
        loop {
            if let Err(e) = pipeline.turn(clock::now(), woken).await {
                tracing::error!(error = %e, "outbox pass failed; trying again");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => break,
                }
            }
            woken = false;
            if pipeline.is_idle() {
                let report = std::mem::take(&mut pipeline.report);
                if report != DrainReport::default() {
                    tracing::info!(
                        delivered = report.delivered,
                        retrying = report.retrying,
                        dead = report.dead,
                        "outbox drained"
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.db.outbox_ready() => woken = true,
                    _ = shutdown.changed() => break,
                }
            } else {
                tokio::select! {
                    () = pipeline.settle() => {}
                    () = self.db.outbox_ready() => woken = true,
                    _ = shutdown.changed() => break,
                }
            }
        }
        if let Err(e) = pipeline.stop(clock::now()).await {
            tracing::warn!(error = %e, "recording the last deliveries failed");
        }
    }
}

/// A delivery and its outcome.
type Outcome = (OutboxMessage, Result<(), Failure>);

/// Messages claimed and waiting their turn, deliveries in flight, and outcomes not yet recorded.
struct Pipeline<'a> {
    dispatcher: &'a Dispatcher,
    waiting: VecDeque<OutboxMessage>,
    in_flight: FuturesUnordered<BoxFuture<'a, Outcome>>,
    finished: Vec<Outcome>,
    report: DrainReport,
}

impl<'a> Pipeline<'a> {
    fn new(dispatcher: &'a Dispatcher) -> Self {
        Self {
            dispatcher,
            waiting: VecDeque::new(),
            in_flight: FuturesUnordered::new(),
            finished: Vec::new(),
            report: DrainReport::default(),
        }
    }

    fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.in_flight.is_empty()
    }

    /// Records what finished (once enough has, or nothing is in flight), claims more when few
    /// are left waiting (or, when `woken`, anything more urgent than what waits), and starts
    /// deliveries into the free slots.
    async fn turn(&mut self, now: DateTime<Utc>, woken: bool) -> Result<(), DbErr> {
        let config = &self.dispatcher.config;
        if self.finished.len() >= config.concurrency || self.in_flight.is_empty() {
            self.record(now).await?;
        }
        let lease = TimeDelta::seconds(config.claim_timeout_seconds as i64);
        if self.waiting.len() < config.concurrency {
            let mut tx = self.dispatcher.db.begin().await?;
            let batch = outbox::claim(&mut tx, now, config.batch_size, lease, None).await?;
            tx.commit().await?;
            self.waiting.extend(batch);
        } else if woken {
            let least_urgent = self.waiting.iter().map(|m| m.priority).min();
            let mut tx = self.dispatcher.db.begin().await?;
            let batch = outbox::claim(&mut tx, now, config.batch_size, lease, least_urgent).await?;
            tx.commit().await?;
            for message in batch.into_iter().rev() {
                self.waiting.push_front(message);
            }
        }
        let dispatcher = self.dispatcher;
        while self.in_flight.len() < config.concurrency {
            let Some(message) = self.waiting.pop_front() else {
                break;
            };
            // Read here, while no delivery runs (see `Dispatcher::route`).
            let route = dispatcher.route(&message).await;
            self.in_flight.push(Box::pin(async move {
                let outcome = dispatcher.send(&message, route).await;
                (message, outcome)
            }));
        }
        Ok(())
    }

    /// Waits for one delivery to finish, and takes every other one that has finished too.
    async fn settle(&mut self) {
        if let Some(outcome) = self.in_flight.next().await {
            self.finished.push(outcome);
        }
        while let Some(Some(outcome)) = self.in_flight.next().now_or_never() {
            self.finished.push(outcome);
        }
    }

    /// Marks what finished: the delivered together, each failure with its next attempt.
    async fn record(&mut self, now: DateTime<Utc>) -> Result<(), DbErr> {
        let db = &self.dispatcher.db;
        let mut delivered = Vec::new();
        for (message, outcome) in std::mem::take(&mut self.finished) {
            let Err(failure) = outcome else {
                delivered.push(message.id);
                continue;
            };
            tracing::warn!(
                outbox_id = %message.id,
                topic = %message.topic,
                attempt = message.attempts,
                error = %failure.detail,
                "delivery failed"
            );
            let mut tx = db.begin().await?;
            let status = outbox::mark_failed(
                &mut tx,
                &message,
                &failure.detail,
                failure.permanent,
                now,
                &self.dispatcher.config,
            )
            .await?;
            tx.commit().await?;
            match status {
                Status::Dead => self.report.dead += 1,
                _ => self.report.retrying += 1,
            }
        }
        self.report.delivered += delivered.len() as u64;
        let mut tx = db.begin().await?;
        outbox::mark_delivered(&mut tx, delivered, now).await?;
        tx.commit().await
    }

    /// Lets the deliveries in flight finish, records them, and gives back what never started.
    async fn stop(mut self, now: DateTime<Utc>) -> Result<(), DbErr> {
        while !self.in_flight.is_empty() {
            self.settle().await;
        }
        self.record(now).await?;
        let unstarted = self.waiting.drain(..).map(|m| m.id).collect();
        let mut tx = self.dispatcher.db.begin().await?;
        outbox::release(&mut tx, unstarted, now).await?;
        tx.commit().await
    }
}
