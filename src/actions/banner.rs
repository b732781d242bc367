//! Consent given on the main app's pages through the consent script: decisions of an anonymous
//! visitor, recorded through the ledger's rules like anyone's, with what was shown as proof;
//! and, once the visitor signs in, their choices joined to the person's own ledger.

use std::net::IpAddr;

use crate::{
    config::Config,
    consent::{
        ConsentActor, ConsentError, ConsentStatus, Decision, Decisions, PolicyRef, RecordRequest,
        Recorded, ledger,
    },
    db::Db,
    experience::{self, Experience},
    vocab::CountryCode,
};

/// How a visitor's decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A choice in the banner or its dialog.
    Banner,
    /// The browser's Global Privacy Control signal, honoured before any banner.
    Gpc,
}

impl Method {
    fn channel(self) -> &'static str {
        match self {
            Method::Banner => "banner",
            Method::Gpc => crate::consent::check::GPC_CHANNEL,
        }
    }
}

/// The browser a decision came from.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
}

/// Records a visitor's decisions against the experience they were shown (the caller checked
/// that it is the one served now): the policy version in force, the experience's revision and
/// the digest of its texts, the browser. Decisions come in numbers, so each is committed in a
/// transaction shared with others.
pub async fn record(
    ledger_writer: &Decisions,
    visitor: &str,
    shown: &Experience,
    decisions: Vec<Decision>,
    method: Method,
    browser: Browser,
) -> Result<Vec<Recorded>, ConsentError> {
    let request = RecordRequest {
        external_id: experience::visitor_subject(visitor),
        decisions,
        policy: PolicyRef {
            key: shown.policy.key.clone(),
            version: shown.policy.version,
            id: None,
        },
        actor: ConsentActor::Subject,
        channel: method.channel().into(),
        language: Some(shown.language.clone()),
        jurisdiction: shown.jurisdiction.as_deref().and_then(CountryCode::parse),
        user_agent: browser.user_agent,
        ip: browser.ip,
        occurred_at: None,
        reason: Some(format!(
            "experience {}, texts sha256 {}",
            shown.revision, shown.texts_sha256
        )),
        audited_by: None,
    };
    ledger::record_alone(ledger_writer, request).await
}

/// Joins a visitor's choices to the person `external_id` who signed in with that browser: each
/// current choice is recorded in the person's ledger as they made it (the same policy version,
/// the same time, the same channel), with the visitor's event named as its source. Returns what
/// was recorded; a visitor who decided nothing joins nothing.
pub async fn link(
    db: &Db,
    config: &Config,
    external_id: &str,
    visitor: &str,
) -> Result<Vec<Recorded>, ConsentError> {
    let mut tx = db.begin().await?;
    let Some(anonymous) = crate::subject::find(&tx, &experience::visitor_subject(visitor)).await?
    else {
        return Ok(Vec::new());
    };
    let mut recorded = Vec::new();
    for choice in ledger::current(&tx, &anonymous.id).await? {
        let event = ledger::event(&tx, &anonymous.id, &choice.last_event_id).await?;
        let request = RecordRequest {
            external_id: external_id.to_string(),
            decisions: vec![Decision {
                purpose: choice.purpose_key.clone(),
                granted: choice.status == ConsentStatus::Granted,
            }],
            policy: PolicyRef {
                key: choice.policy_key.clone(),
                version: choice.policy_version,
                id: Some(choice.policy_id.clone()),
            },
            actor: ConsentActor::Subject,
            channel: event.channel.clone(),
            language: Some(event.language.clone()),
            jurisdiction: CountryCode::parse(&event.jurisdiction),
            user_agent: event.user_agent.clone(),
            ip: None,
            occurred_at: Some(event.occurred_at),
            reason: Some(format!(
                "given as visitor {visitor} (event {}): {}",
                event.id,
                event.reason.clone().unwrap_or_default()
            )),
            audited_by: None,
        };
        recorded.extend(ledger::record(&mut tx, config, request).await?);
    }
    tx.commit().await?;
    Ok(recorded)
}
