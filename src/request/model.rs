//! The `requests` table: data-subject requests.

use sea_orm::entity::prelude::*;

/// The right exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum RequestType {
    #[sea_orm(string_value = "access")]
    Access,
    #[sea_orm(string_value = "export")]
    Export,
    #[sea_orm(string_value = "rectify")]
    Rectify,
    #[sea_orm(string_value = "erase")]
    Erase,
    #[sea_orm(string_value = "restrict")]
    Restrict,
    #[sea_orm(string_value = "object")]
    Object,
}

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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
