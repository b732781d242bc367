//! The `policies` table: one row per document, i.e. per (key, version, jurisdiction, language).

use sea_orm::entity::prelude::*;

/// Where a document is in its life. Published documents never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum PolicyStatus {
    /// Being written; editable, not shown to the public, cannot be consented to.
    #[sea_orm(string_value = "draft")]
    Draft,
    /// Public and immutable.
    #[sea_orm(string_value = "published")]
    Published,
    /// Withdrawn from use; kept as proof of what people agreed to.
    #[sea_orm(string_value = "retired")]
    Retired,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub key: String,
    pub version: i32,
    /// ISO 3166-1 alpha-2 code, or `*` for everywhere else.
    pub jurisdiction: String,
    /// BCP 47 tag such as `en` or `zh-CN`.
    pub language: String,
    /// The language version that prevails in a dispute.
    pub authoritative: bool,
    pub title: String,
    /// Markdown.
    pub body: String,
    /// SHA-256 of the document's canonical form; consent events quote it as proof.
    pub content_sha256: String,
    pub status: PolicyStatus,
    pub effective_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
    pub retired_at: Option<DateTimeUtc>,
    /// A material change needs fresh consent and an email to everyone affected.
    pub material: bool,
    pub change_summary: Option<String>,
    /// When the re-consent marking and emails of a material version finished; `None` while
    /// they are pending, so that an interrupted run resumes.
    pub reconsent_done_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
