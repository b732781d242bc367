//! The consent ledger: every grant, withdrawal and refusal, against the exact policy document a
//! person was shown, with evidence, chained per subject so that tampering shows.
//!
//! [`record`] appends events and updates the current state in one transaction, after checking
//! the rules that make consent valid: the policy version must be published, a required purpose
//! cannot be withdrawn, a purpose needing PIPL separate consent is granted on its own, and a
//! restricted subject or a minor without a verified guardian cannot grant. [`check::Checks`] answers the
//! main app's "may I?" from the current state. [`ledger::verify`] walks a subject's chain.
//!
//! Transactions: this room owns `consent_events` and `consents`, and alone moves the head of a
//! person's chain (through [`crate::subject::advance_consent_chains`]). [`record`] runs in the
//! edge's [`crate::db::Tx`], so an objection or a guardian's decisions commit with the rest of
//! what the edge does, or not at all.

pub mod api;
pub mod check;
pub mod evidence;
pub mod ledger;
pub mod model;
pub mod receipt;
pub mod reconsent;
pub mod unsubscribe;

use crate::error::FieldError;
pub use check::{CheckResult, check_many};
pub use ledger::{
    Decision, DecisionSets, Decisions, PolicyRef, RecordRequest, Recorded, record, record_alone,
};
pub use model::{Action, ConsentActor, ConsentStatus};

/// What can go wrong with consent.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("invalid consent request")]
    Invalid(Vec<FieldError>),
    /// A rule refuses the request; `reason` is machine-readable (`guardian_required`,
    /// `restricted`, `separate_consent`, `policy_not_published`, `purpose_archived`, ...).
    #[error("{detail}")]
    Refused {
        reason: &'static str,
        detail: String,
    },
    #[error("`{0}` is necessary for the service and cannot be withdrawn or refused")]
    RequiredPurpose(String),
    #[error("no such subject")]
    SubjectNotFound,
    #[error("no such consent event")]
    EventNotFound,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl ConsentError {
    /// The purpose a refusal is about, when it is about one.
    pub fn purpose(&self) -> Option<&str> {
        match self {
            Self::RequiredPurpose(purpose) => Some(purpose),
            _ => None,
        }
    }

    fn refused(reason: &'static str, detail: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            detail: detail.into(),
        }
    }
}
