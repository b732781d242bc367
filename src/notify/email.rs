//! Email: what each message says ([`EmailContent`]), and how it leaves ([`Mailer`]): pooled SMTP
//! through lettre, or `.eml` files in `<data_dir>/mail/` when no SMTP server is configured.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::MultiPart,
    transport::smtp::{
        PoolConfig,
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
};
use serde::{Deserialize, Serialize};

use super::templates::Rendered;
pub use crate::config::parse_mailbox;
use crate::config::{Config, MailConfig, SmtpSettings, SmtpTls};

/// Every email the service sends, with the data its templates need. The variant names the
/// template (`templates/email/<name>.<lang>.{subject,txt,html}.hbs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "template", content = "data", rename_all = "snake_case")]
pub enum EmailContent {
    /// A one-time code proving control of an email address for a data-subject request.
    VerificationCode {
        code: String,
        request_type: String,
        expires_in_minutes: u32,
    },
    /// A data-subject request was received (and verified).
    RequestReceived {
        request_id: String,
        request_type: String,
        law: String,
        /// Whether `law` applies to the person, so that the email cites it; elsewhere it is the
        /// operator's chosen procedure (see [`crate::law::law_applies`]).
        law_applies: bool,
        due_date: NaiveDate,
    },
    /// The erasure the service opened for a minor whose guardian never consented: to the
    /// guardian when one is known, otherwise to the child in plain words.
    MinorErasure {
        request_id: String,
        to_guardian: bool,
        due_date: NaiveDate,
    },
    /// A GDPR request's deadline was extended, with the reason (Art 12(3)).
    RequestExtended {
        request_id: String,
        request_type: String,
        reason: String,
        new_due_date: NaiveDate,
        /// Whether the GDPR applies to the person, so that the email cites it.
        law_applies: bool,
    },
    /// A request was fulfilled; `outcome` is `completed` or `restricted` (with a note why).
    RequestCompleted {
        request_id: String,
        request_type: String,
        outcome: String,
        note: Option<String>,
        /// What an erasure of part of the data deleted, per category (empty otherwise).
        erased: Vec<CategoryCount>,
        /// What each registered system did (empty with no system registered).
        #[serde(default)]
        systems: Vec<SystemOutcome>,
    },
    /// A request was refused, with the reason and the remedies the law gives.
    RequestRejected {
        request_id: String,
        request_type: String,
        reason: String,
        /// What the person can do about it under the request's law, in the email's language
        /// (see [`crate::law::remedies`]).
        remedies: String,
    },
    /// A restriction of processing is lifted (GDPR Art 18(3): the person is told first).
    RestrictionLifted {
        request_id: String,
        lift_date: NaiveDate,
        reason: String,
    },
    /// An export package is ready to download until `expires_at`.
    ExportReady {
        request_id: String,
        download_url: String,
        expires_at: DateTime<Utc>,
    },
    /// A material policy change that needs fresh consent.
    PolicyChanged {
        policy_title: String,
        version: i32,
        effective_at: DateTime<Utc>,
        change_summary: String,
        /// The new version, in the person's language where a document exists.
        policy_url: String,
        /// What changed since the previous version.
        diff_url: String,
        /// The language of the document shown, when none exists in the email's language.
        shown_in: Option<String>,
    },
    /// A guardian is asked to consent for a minor.
    GuardianConsent {
        /// The operator's name, so that the parent knows who asks.
        service: String,
        /// Which child: the name the main app gave, or a masked address.
        child: Option<String>,
        confirm_url: String,
        expires_at: DateTime<Utc>,
        purposes: Vec<PurposeLine>,
    },
    /// Every question of a guardian's link was answered: the lasting link to see and change the
    /// child's choices.
    GuardianConfirmed {
        service: String,
        child: Option<String>,
        manage_url: String,
        expires_at: DateTime<Utc>,
        /// Where the guardian reaches the privacy team.
        contact: String,
    },
    /// Data will be purged under the retention rules, from `purge_date` (the earliest of the
    /// lines' dates) on.
    RetentionNotice {
        purge_date: NaiveDate,
        items: Vec<NoticeLine>,
    },
    /// Data was purged under the retention rules.
    RetentionPurged {
        purged_on: NaiveDate,
        items: Vec<CategoryCount>,
    },
    /// The daily digest for reviewers and admins.
    AdminDigest {
        generated_at: DateTime<Utc>,
        overdue: Vec<RequestLine>,
        due_soon: Vec<RequestLine>,
        dead_letters: u64,
        purge_summary: Option<String>,
        /// Systems with jobs past their time allowance.
        #[serde(default)]
        overdue_systems: Vec<SystemLine>,
    },
}

/// A purpose as listed in a guardian request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PurposeLine {
    pub title: String,
    pub description: String,
}

/// A system with jobs past its allowance, in the digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SystemLine {
    pub name: String,
    pub jobs: u64,
}

/// What one system did for a request, as the completion email tells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SystemOutcome {
    pub name: String,
    /// `job_done`, `job_restricted`, `job_not_applicable` or, for a system the request did
    /// not wait for, where its job stands (`job_pending`...).
    pub status: String,
    /// Why the system kept data, for `job_restricted`.
    pub note: Option<String>,
}

/// How many items of a data category a retention email concerns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CategoryCount {
    pub category: String,
    pub count: u64,
}

/// How many items of a data category are purged on which day, in a retention notice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NoticeLine {
    pub category: String,
    pub count: u64,
    pub on: NaiveDate,
}

/// A request as listed in the admin digest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestLine {
    pub request_id: String,
    pub request_type: String,
    pub due_date: NaiveDate,
    /// Who asked: the account's id, or the address a request without one was filed with.
    pub who: String,
}

impl EmailContent {
    /// The template's name, the outbox row's `topic`.
    pub fn template(&self) -> &'static str {
        match self {
            EmailContent::VerificationCode { .. } => "verification_code",
            EmailContent::RequestReceived { .. } => "request_received",
            EmailContent::RequestExtended { .. } => "request_extended",
            EmailContent::MinorErasure { .. } => "minor_erasure",
            EmailContent::RequestCompleted { .. } => "request_completed",
            EmailContent::RequestRejected { .. } => "request_rejected",
            EmailContent::RestrictionLifted { .. } => "restriction_lifted",
            EmailContent::ExportReady { .. } => "export_ready",
            EmailContent::PolicyChanged { .. } => "policy_changed",
            EmailContent::GuardianConsent { .. } => "guardian_consent",
            EmailContent::GuardianConfirmed { .. } => "guardian_confirmed",
            EmailContent::RetentionNotice { .. } => "retention_notice",
            EmailContent::RetentionPurged { .. } => "retention_purged",
            EmailContent::AdminDigest { .. } => "admin_digest",
        }
    }
}

/// Where email goes.
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Why a message was not accepted. `detail` never contains addresses or message content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    pub detail: String,
    /// The server refused for good (a 5xx reply): retrying the same message will not help.
    pub permanent: bool,
}

impl Mailer {
    /// SMTP when `smtp_url` is set, else files under `<data_dir>/mail/`.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let Some(url) = &config.smtp_url else {
            let dir = config.data_dir.join("mail");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            return Ok(Mailer::File(AsyncFileTransport::new(dir)));
        };
        let settings = SmtpSettings::parse(url.expose(), config.mail.tls)?;
        let tls_params =
            || TlsParameters::new(settings.host.clone()).map_err(|e| format!("TLS setup: {e}"));
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Opportunistic => Tls::Opportunistic(tls_params()?),
            SmtpTls::Starttls => Tls::Required(tls_params()?),
            SmtpTls::Tls => Tls::Wrapper(tls_params()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.mail.timeout_seconds)))
            .pool_config(PoolConfig::new().max_size(config.mail.pool_size.max(1)));
        if let Some((user, pass)) = settings.credentials {
            builder = builder.credentials(Credentials::new(user, pass));
        }
        Ok(Mailer::Smtp(builder.build()))
    }

    /// Sends one message; returns the server's answer (or the file written).
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        match self {
            Mailer::Smtp(smtp) => match smtp.send(message).await {
                Ok(response) => Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                Err(e) => Err(match e.status() {
                    // The reply text may quote the recipient's address: keep only the code.
                    Some(code) => SendError {
                        detail: format!("SMTP server replied {code}"),
                        permanent: e.is_permanent(),
                    },
                    None if e.is_timeout() => SendError {
                        detail: "SMTP timeout".into(),
                        permanent: false,
                    },
                    None => SendError {
                        detail: format!("SMTP connection failed: {e}"),
                        permanent: false,
                    },
                }),
            },
            Mailer::File(files) => files
                .send(message)
                .await
                .map(|id| format!("written to mail/{id}.eml"))
                .map_err(|e| SendError {
                    detail: format!("cannot write the mail file: {e}"),
                    permanent: false,
                }),
        }
    }
}

/// Assembles a multipart (plain text + HTML) message.
///
/// `message_id` is stable for the outbox row, so that a message sent twice after a crash can be
/// recognised as one by mail clients.
pub fn build_message(
    mail: &MailConfig,
    to: &str,
    message_id: &str,
    rendered: Rendered,
) -> Result<Message, String> {
    let from = parse_mailbox(&mail.from)?;
    let domain = from.email.domain().to_string();
    let mut builder = Message::builder()
        .from(from)
        .to(parse_mailbox(to).map_err(|_| "the recipient is not an email address".to_string())?)
        .subject(rendered.subject)
        .message_id(Some(format!("<{message_id}@{domain}>")));
    if let Some(reply_to) = &mail.reply_to {
        builder = builder.reply_to(parse_mailbox(reply_to)?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_content_names_its_template() {
        let content = EmailContent::VerificationCode {
            code: "123456".into(),
            request_type: "access".into(),
            expires_in_minutes: 15,
        };
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["template"], content.template());
        assert_eq!(json["data"]["code"], "123456");
    }
}
