//! The `subjects` table: the people whose data the main app holds, known by its user id.

use sea_orm::entity::prelude::*;

/// Whether a person may consent alone (see the age gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum AgeStatus {
    /// Old enough to consent alone.
    #[sea_orm(string_value = "adult")]
    Adult,
    /// Under the threshold; consent waits for a verified guardian.
    #[sea_orm(string_value = "minor_guardian_pending")]
    MinorGuardianPending,
    /// Under the threshold, with a guardian's verified consent.
    #[sea_orm(string_value = "minor_guardian_verified")]
    MinorGuardianVerified,
    /// No birth date or age band is known.
    #[sea_orm(string_value = "unknown")]
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subjects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The main app's user id.
    #[sea_orm(unique)]
    pub external_id: String,
    /// Personal data: never logged.
    pub email: Option<String>,
    /// What the main app calls the person (a child's first name, say), so that a guardian's
    /// email and page say which child. Personal data: never logged.
    pub display_name: Option<String>,
    pub locale: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub jurisdiction: Option<String>,
    /// Personal data: never logged.
    pub birth_date: Option<Date>,
    pub age_status: AgeStatus,
    /// A declared age band (`under_13`, `13_15`, `16_17`, `18_plus`) when no birth date is known.
    pub age_band: Option<String>,
    /// Personal data: never logged.
    pub guardian_email: Option<String>,
    pub guardian_verified_at: Option<DateTimeUtc>,
    /// Since when a minor has been waiting for a guardian; an erasure request is opened when
    /// this is older than the grace period.
    pub minor_pending_since: Option<DateTimeUtc>,
    /// Processing is restricted (GDPR Art 18, PIPL Art 44): consent checks answer no.
    pub restricted: bool,
    /// Head of the subject's consent chain: the last event's sequence number and hash.
    pub consent_seq: i64,
    pub consent_hash: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub erased_at: Option<DateTimeUtc>,
    /// When a restriction being lifted ends: after the person was told (GDPR Art 18(3)).
    pub restriction_lifts_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
