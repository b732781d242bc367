//! The notification pipeline: everything the service must tell people (email) and the main app
//! (webhooks) goes through one transactional outbox, so that nothing is lost when a change
//! commits and nothing is said about a change that rolled back. This room owns `outbox`;
//! queuing takes the caller's [`crate::db::Tx`] and wakes the dispatcher once it commits.
//!
//! - [`outbox`]: the table, written with the caller's transaction; claim, mark, list, retry.
//! - [`dispatcher`]: the background job that delivers, with retries and backoff.
//! - [`email`]: typed email content and the SMTP or file transport.
//! - [`templates`]: Handlebars templates in English and Simplified Chinese.
//! - [`webhook`]: Standard Webhooks signing and delivery.
//! - [`api`]: the admin view of the outbox.

pub mod api;
pub mod dispatcher;
pub mod email;
pub mod outbox;
pub mod templates;
pub mod webhook;
