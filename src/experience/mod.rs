//! What a visitor to the main app's pages is asked: the purposes the consent banner asks about,
//! with their texts, who receives the data and for how long, the policy version in force, and
//! the banner's words, for one country and language. The server chooses; the consent script
//! shows. A `revision` digests all of it, so that a returning visitor is asked again exactly when
//! something they were shown changed, and a decision proves what was shown: the server accepts a
//! decision only against the revision it serves now, and records that revision and the digest of
//! the texts with the decision.

pub mod api;

use std::collections::BTreeMap;

use poem_openapi::Object;
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use crate::{
    clock,
    config::Config,
    crypto, policy,
    purpose::{self, LegalBasis},
};

/// A purpose as the banner shows it.
#[derive(Debug, Clone, Serialize, Object)]
pub struct BannerPurpose {
    pub key: String,
    pub title: String,
    pub description: String,
    /// Who receives the data, with the country where they process it.
    pub recipients: Vec<String>,
    /// How long the data is kept (ISO 8601), when the purpose says.
    #[oai(skip_serializing_if_is_none)]
    pub retention: Option<String>,
    /// The same in words, in the experience's language.
    #[oai(skip_serializing_if_is_none)]
    pub kept_for: Option<String>,
    /// Opted out when the browser sends a Global Privacy Control signal.
    pub gpc_opt_out: bool,
}

/// The policy document in force for the visitor.
#[derive(Debug, Clone, Serialize, Object)]
pub struct BannerPolicy {
    pub key: String,
    pub version: i32,
    pub title: String,
    /// The page where it is read.
    pub url: String,
}

/// Everything the consent script needs for one visitor.
#[derive(Debug, Clone, Serialize, Object)]
pub struct Experience {
    /// Changes whenever anything below does.
    pub revision: String,
    /// SHA-256 of the texts shown (purposes and words), recorded with each decision.
    pub texts_sha256: String,
    /// The visitor's country, when known.
    #[oai(skip_serializing_if_is_none)]
    pub jurisdiction: Option<String>,
    /// `en` or `zh-CN`.
    pub language: String,
    pub policy: BannerPolicy,
    pub purposes: Vec<BannerPurpose>,
    /// The banner's words, by name.
    pub words: BTreeMap<String, String>,
    /// Google Consent Mode v2 types each purpose grants.
    pub consent_mode: BTreeMap<String, Vec<String>>,
    /// Days the choice is remembered.
    pub cookie_days: u32,
    /// The cookie's domain; empty for the page's host.
    pub cookie_domain: String,
}

/// The banner's words: each key of the catalogue's `banner.` section.
pub const WORDS: &[&str] = &[
    "title",
    "body",
    "accept_all",
    "reject_all",
    "customise",
    "save",
    "close",
    "dialog_title",
    "dialog_body",
    "policy_link",
    "gpc",
    "reopen",
    "recipients",
    "kept_for",
];

/// Why there is nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum ExperienceError {
    #[error("no privacy policy is in force for this visitor")]
    NoPolicy,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The experience for a visitor of `jurisdiction` (none: the policy for everywhere else) reading
/// `language`; `words` gives the catalogue's text of a key in that language, and `period` a
/// period's words.
pub async fn build(
    conn: &impl ConnectionTrait,
    config: &Config,
    jurisdiction: Option<&str>,
    language: &str,
    words: impl Fn(&str) -> String,
    period: impl Fn(&str) -> String,
) -> Result<Experience, ExperienceError> {
    let banner = &config.banner;
    let document = policy::current(
        conn,
        policy::DEFAULT_KEY,
        jurisdiction,
        Some(language),
        clock::now(),
    )
    .await?
    .ok_or(ExperienceError::NoPolicy)?;
    let mut purposes: Vec<purpose::Purpose> = purpose::list(conn, false)
        .await?
        .into_iter()
        .filter(|p| p.legal_basis == LegalBasis::Consent)
        .filter(|p| {
            if banner.purposes.is_empty() {
                !p.required
            } else {
                banner.purposes.contains(&p.key)
            }
        })
        .collect();
    purposes.sort_by_key(|p| {
        banner
            .purposes
            .iter()
            .position(|k| *k == p.key)
            .unwrap_or(usize::MAX)
    });
    let purposes: Vec<BannerPurpose> = purposes
        .iter()
        .map(|p| {
            let text = p.text(language);
            BannerPurpose {
                key: p.key.clone(),
                title: text.map_or_else(|| p.key.clone(), |t| t.title.clone()),
                description: text.map(|t| t.description.clone()).unwrap_or_default(),
                recipients: p
                    .recipients
                    .iter()
                    .map(|r| format!("{} ({})", r.name, r.country))
                    .collect(),
                retention: p.retention_period.clone(),
                kept_for: p.retention_period.as_deref().map(&period),
                gpc_opt_out: banner.gpc_opt_out.contains(&p.key),
            }
        })
        .collect();
    let words: BTreeMap<String, String> = WORDS
        .iter()
        .map(|k| (k.to_string(), words(&format!("banner.{k}"))))
        .collect();
    let texts_sha256 = crypto::sha256_hex(
        serde_json::to_string(&(&purposes, &words))
            .unwrap_or_default()
            .as_bytes(),
    );
    let policy = BannerPolicy {
        url: format!(
            "{}/policies/{}/versions/{}?jurisdiction={}&lang={language}",
            config.portal_url(),
            document.key,
            document.version,
            document.jurisdiction
        ),
        key: document.key,
        version: document.version,
        title: document.title,
    };
    let revision = crypto::sha256_hex(
        serde_json::to_string(&(
            &texts_sha256,
            &policy.key,
            policy.version,
            &document.id,
            &banner.consent_mode,
        ))
        .unwrap_or_default()
        .as_bytes(),
    )[..16]
        .to_string();
    Ok(Experience {
        revision,
        texts_sha256,
        jurisdiction: jurisdiction.map(str::to_string),
        language: language.to_string(),
        policy,
        purposes,
        words,
        consent_mode: banner.consent_mode.clone(),
        cookie_days: banner.cookie_days,
        cookie_domain: banner.cookie_domain.clone(),
    })
}

/// A visitor's random id as the script keeps it in its cookie: 16 to 64 URL-safe characters.
pub fn is_visitor_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The ledger's name for an anonymous visitor: a prefix the main app's ids may not use.
pub fn visitor_subject(id: &str) -> String {
    format!("{VISITOR_PREFIX}{id}")
}

/// The prefix of anonymous visitors' ids in the ledger.
pub const VISITOR_PREFIX: &str = "visitor:";
