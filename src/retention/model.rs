//! The `purge_runs` and `purge_batches` tables.

/// One run of the purge, scheduled or on demand, real or dry.
pub mod runs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "purge_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `schedule`, `manual` (API) or `cli`.
        pub trigger: String,
        pub dry_run: bool,
        /// `running`, `completed`, `failed`, or `interrupted` (its process died).
        pub status: String,
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
        /// `pending` until the main app acknowledges it, then `acknowledged`.
        pub status: String,
        pub items: i64,
        pub created_at: DateTimeUtc,
        pub acknowledged_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
