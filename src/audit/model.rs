//! The `audit_log` and `chain_heads` tables.

/// One audited action. `hash` = SHA-256 over `prev_hash` (the hash of the entry before it in the
/// same chain) and the row's canonical JSON.
pub mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        /// Position in the whole log: the order entries are listed and paged in.
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        /// The chain the entry is linked into: `<target_type>:<target_id>`, or `audit` for
        /// entries written when the log was one chain.
        pub chain: String,
        /// Position in its chain, from 1.
        pub chain_seq: i64,
        pub occurred_at: DateTimeUtc,
        pub actor: String,
        pub action: String,
        pub target_type: String,
        pub target_id: String,
        /// Canonical JSON (sorted keys), stored as text so that its bytes never change.
        pub details: String,
        pub prev_hash: String,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The newest entry of each chain: its position, hash and place in the log. Appending locks the
/// row of each chain it extends, which serialises appends to one target across connections and
/// replicas without locking the log itself or other targets' chains.
pub mod chain_heads {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "chain_heads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub chain: String,
        /// Position of the newest entry in the chain (its length).
        pub seq: i64,
        pub hash: String,
        /// `audit_log.seq` of the newest entry.
        pub last_seq: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
