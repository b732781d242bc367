//! The `purge_runs` and `purge_batches` tables, and the words their rows and the rules use.

use sea_orm::entity::prelude::*;

/// What the main app does with an item whose period ran out.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    poem_openapi::Enum,
    serde::Serialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RetentionAction {
    #[sea_orm(string_value = "delete")]
    Delete,
    /// Keep the item with everything that identifies the person removed.
    #[sea_orm(string_value = "anonymize")]
    Anonymize,
}

/// What started a purge run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[oai(rename_all = "lowercase")]
pub enum RunTrigger {
    #[sea_orm(string_value = "schedule")]
    Schedule,
    /// An admin, through the API.
    #[sea_orm(string_value = "manual")]
    Manual,
    #[sea_orm(string_value = "cli")]
    Cli,
}

/// Where a purge run stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    poem_openapi::Enum,
    serde::Serialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Its process died; the next run picks up where it stopped.
    #[sea_orm(string_value = "interrupted")]
    Interrupted,
}

/// Where an erasure job sent to the main app stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[oai(rename_all = "lowercase")]
pub enum BatchStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "acknowledged")]
    Acknowledged,
}

/// One run of the purge, scheduled or on demand, real or dry.
pub mod runs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "purge_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub trigger: super::RunTrigger,
        pub dry_run: bool,
        pub status: super::RunStatus,
        /// Who asked for it.
        pub actor: String,
        /// The instant the run judged dates against.
        pub as_of: DateTimeUtc,
        pub started_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
        pub items_examined: i64,
        /// Items sent to the main app to purge.
        pub items_purged: i64,
        /// Notice emails queued.
        pub notices_queued: i64,
        /// The full report, JSON (see [`crate::retention::purge::Report`]).
        pub report: String,
        /// Errors, JSON array of strings.
        pub errors: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One erasure job sent to the main app, acknowledged when its items are gone.
pub mod batches {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "purge_batches")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub run_id: String,
        pub status: super::BatchStatus,
        pub items: i64,
        pub created_at: DateTimeUtc,
        pub acknowledged_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
