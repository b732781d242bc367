//! The consent ledger's tables: `consent_events` (append-only, chained per subject) and
//! `consents` (the current state per subject and purpose).

use sea_orm::entity::prelude::*;

/// What a person did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Action {
    /// Gave consent.
    #[sea_orm(string_value = "grant")]
    Grant,
    /// Took back consent given earlier (GDPR Art 7(3), PIPL Art 15).
    #[sea_orm(string_value = "withdraw")]
    Withdraw,
    /// Refused when first asked.
    #[sea_orm(string_value = "deny")]
    Deny,
}

/// The current state of consent for one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ConsentStatus {
    #[sea_orm(string_value = "granted")]
    Granted,
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
    #[sea_orm(string_value = "denied")]
    Denied,
}

impl Action {
    /// The state an action leads to.
    pub fn status(self) -> ConsentStatus {
        match self {
            Action::Grant => ConsentStatus::Granted,
            Action::Withdraw => ConsentStatus::Withdrawn,
            Action::Deny => ConsentStatus::Denied,
        }
    }
}

/// Who recorded an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum ConsentActor {
    /// The person, through the portal.
    #[sea_orm(string_value = "subject")]
    Subject,
    /// A parent or guardian, for a minor.
    #[sea_orm(string_value = "guardian")]
    Guardian,
    /// The main app, which captured the decision in its own interface.
    #[sea_orm(string_value = "main_app")]
    MainApp,
    /// Privacy staff correcting the record, with a reason.
    #[sea_orm(string_value = "admin")]
    Admin,
    /// A bulk import of consents recorded elsewhere.
    #[sea_orm(string_value = "import")]
    Import,
}

pub mod events {
    use sea_orm::entity::prelude::*;

    use super::{Action, ConsentActor};

    /// One event of the ledger. `hash` = SHA-256 over `prev_hash` and the event's canonical
    /// JSON; `seq` numbers the subject's events from 1.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consent_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub subject_id: String,
        pub seq: i64,
        pub purpose_key: String,
        pub action: Action,
        /// The policy document shown, and its digest at the time.
        pub policy_id: String,
        pub policy_sha256: String,
        pub actor: ConsentActor,
        /// Where the decision was taken: `portal`, `web`, `ios`, `admin_console`, ...
        pub channel: String,
        pub language: String,
        pub jurisdiction: String,
        pub user_agent: Option<String>,
        /// Truncated or keyed-hashed, per `consent.ip_evidence`.
        pub ip: Option<String>,
        /// Why an admin corrected the record.
        pub reason: Option<String>,
        pub occurred_at: DateTimeUtc,
        pub recorded_at: DateTimeUtc,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Whether a recorded decision is a grant that counts at `now`: granted, and not waiting for
/// fresh consent past the date the new policy version takes effect. The one definition of
/// "granted" for the consent check, the portal and everything else.
pub fn counts(
    status: ConsentStatus,
    needs_reconsent: bool,
    reconsent_due_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    status == ConsentStatus::Granted
        && !(needs_reconsent && reconsent_due_at.is_none_or(|d| d <= now))
}

pub mod consents {
    use sea_orm::entity::prelude::*;

    use super::ConsentStatus;

    /// The current state per (subject, purpose), updated with each event.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "consents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub purpose_key: String,
        pub status: ConsentStatus,
        pub policy_id: String,
        pub policy_key: String,
        pub policy_version: i32,
        pub policy_jurisdiction: String,
        pub last_event_id: String,
        /// The channel of the last decision (`portal`, `banner`, `gpc`...).
        pub channel: String,
        /// A material policy change happened after this consent was given.
        pub needs_reconsent: bool,
        /// From this instant (the new version's effective date) the consent no longer counts
        /// until it is given again.
        pub reconsent_due_at: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
    }

    impl Model {
        /// Whether this state is a grant that counts at `now` (see [`super::counts`]).
        pub fn counts(&self, now: DateTimeUtc) -> bool {
            super::counts(
                self.status,
                self.needs_reconsent,
                self.reconsent_due_at,
                now,
            )
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
