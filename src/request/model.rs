//! The `requests` table: data-subject requests.

use sea_orm::entity::prelude::*;

pub use crate::vocab::{Law, RequestType};

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RequestStatus {
    #[sea_orm(string_value = "unverified")]
    Unverified,
    #[sea_orm(string_value = "verified")]
    Verified,
    #[sea_orm(string_value = "in_review")]
    InReview,
    #[sea_orm(string_value = "approved")]
    Approved,
    #[sea_orm(string_value = "fulfilling")]
    Fulfilling,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "rejected")]
    Rejected,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// Someone acting for another person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum OnBehalfOf {
    /// A close relative of a deceased person, for their lawful and legitimate interests (PIPL
    /// Art 49: access, copy, correction, deletion).
    #[sea_orm(string_value = "next_of_kin")]
    NextOfKin,
}

/// How a completed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename = "RequestOutcome", rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Outcome {
    /// Done as asked.
    #[sea_orm(string_value = "completed")]
    Completed,
    /// Erasure stopped short of deletion (a legal hold or technical impossibility, PIPL Art 47):
    /// the data is kept only in storage, restricted, with the reason given.
    #[sea_orm(string_value = "restricted")]
    Restricted,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub subject_id: Option<String>,
    #[sea_orm(column_name = "type")]
    pub kind: RequestType,
    pub status: RequestStatus,
    /// `portal`, `email`, `main_app` or `automatic`.
    pub source: String,
    /// JSON: what the request is about (no secrets).
    pub details: String,
    pub received_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub law: Law,
    /// The address captured at intake, for the emails about this request.
    pub email: Option<String>,
    pub locale: Option<String>,
    pub jurisdiction: Option<String>,
    pub verified_at: Option<DateTimeUtc>,
    /// Set once the request is verified (PIPL counts from verification).
    pub due_date: Option<Date>,
    pub extension_reason: Option<String>,
    pub extended_at: Option<DateTimeUtc>,
    /// The open request of the same type for the same person that this one repeats.
    pub duplicate_of: Option<String>,
    pub reviewer: Option<String>,
    /// Why it was rejected, or a note on its outcome.
    pub decision_reason: Option<String>,
    pub outcome: Option<Outcome>,
    pub closed_at: Option<DateTimeUtc>,
    /// Set when someone files for another person: the reviewer checks `details` for evidence.
    pub on_behalf_of: Option<OnBehalfOf>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The `request_events` table: every transition of a request, with its actor.
pub mod events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "request_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub request_id: String,
        pub from_status: Option<super::RequestStatus>,
        pub to_status: super::RequestStatus,
        pub actor: String,
        pub note: Option<String>,
        pub occurred_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `verification_codes` table: the one-time code emailed for a request filed without a
/// login, as a digest.
pub mod codes {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "verification_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        pub code_hash: String,
        pub expires_at: DateTimeUtc,
        pub attempts: i32,
        pub sends: i32,
        pub last_sent_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `address_budgets` table: what an email address (by digest) spent on one UTC day.
pub mod budgets {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "address_budgets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub address_hash: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: Date,
        pub filings: i32,
        pub failed_codes: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Where a job for a system (or the main app) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename = "JobStatus", rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum FulfilmentStatus {
    /// Queued or sent, not yet answered.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// The system has the job and is working on it.
    #[sea_orm(string_value = "acknowledged")]
    Acknowledged,
    /// The system confirmed it carried the job out.
    #[sea_orm(string_value = "done")]
    Done,
    /// The system reported it could not, or the job could not be delivered; a reviewer
    /// retries it.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// A reviewer found the system holds nothing to do for this request, and said why.
    #[sea_orm(string_value = "not_applicable")]
    NotApplicable,
}

impl FulfilmentStatus {
    /// Whether the job needs nothing more from its system.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Done | Self::NotApplicable)
    }
}

/// The `fulfilments` table: one job per system (or the main app's single job) for a request.
pub mod fulfilments {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "fulfilments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub request_id: String,
        pub status: super::FulfilmentStatus,
        pub created_at: DateTimeUtc,
        /// When the job was done or found not applicable.
        pub completed_at: Option<DateTimeUtc>,
        /// The registered system; `None` for the main app's single job.
        pub system_key: Option<String>,
        /// Sent once, then once more per retry after a delivered attempt.
        pub round: i32,
        /// When the system's time allowance runs out.
        pub due_at: Option<DateTimeUtc>,
        pub acknowledged_at: Option<DateTimeUtc>,
        pub outcome: Option<super::Outcome>,
        /// JSON: what the system reports it did (`counts` per category, a `reference`).
        pub evidence: Option<String>,
        /// The system's note, its failure, or the reviewer's reason for "not applicable".
        pub note: Option<String>,
        /// An access or export part, sealed with the export key until the package is built.
        pub part: Option<String>,
        /// The reviewer who marked the job not applicable.
        pub decided_by: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `exports` table: packages built for access and export requests.
pub mod exports {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "exports")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub request_id: String,
        /// SHA-256 of the download token; the token itself is only in the email.
        pub token_hash: String,
        /// The encrypted file under `<data_dir>/exports/`.
        pub file_name: String,
        pub media_type: String,
        pub size: i64,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub downloaded_at: Option<DateTimeUtc>,
        pub purged_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
