//! The `purposes` table.

use sea_orm::entity::prelude::*;

/// The lawful basis of processing (GDPR Art 6(1); PIPL Art 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum LegalBasis {
    #[sea_orm(string_value = "consent")]
    Consent,
    #[sea_orm(string_value = "contract")]
    Contract,
    #[sea_orm(string_value = "legal_obligation")]
    LegalObligation,
    #[sea_orm(string_value = "vital_interests")]
    VitalInterests,
    #[sea_orm(string_value = "public_task")]
    PublicTask,
    #[sea_orm(string_value = "legitimate_interests")]
    LegitimateInterests,
}

/// Why PIPL needs separate consent (单独同意) for a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum SeparateConsentReason {
    /// Art 29: sensitive personal information, including that of minors under 14 (Art 28).
    #[sea_orm(string_value = "sensitive_data")]
    SensitiveData,
    /// Art 23: providing data to another handler.
    #[sea_orm(string_value = "third_party_provision")]
    ThirdPartyProvision,
    /// Art 25: public disclosure.
    #[sea_orm(string_value = "public_disclosure")]
    PublicDisclosure,
    /// Art 26: images collected in public places, used beyond public security.
    #[sea_orm(string_value = "public_place_images")]
    PublicPlaceImages,
    /// Art 39: provision outside China.
    #[sea_orm(string_value = "cross_border_transfer")]
    CrossBorderTransfer,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "purposes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// JSON: `{"<language>": {"title": ..., "description": ...}}`.
    pub texts: String,
    pub legal_basis: LegalBasis,
    /// Necessary for the service: shown, but not withdrawable.
    pub required: bool,
    pub separate_consent: bool,
    pub separate_consent_reason: Option<SeparateConsentReason>,
    /// Direct marketing: an objection to it takes effect on receipt (GDPR Art 21(3)).
    pub direct_marketing: bool,
    /// JSON: `[{"name", "role", "country"}]`.
    pub recipients: String,
    /// JSON: `["photos", ...]`.
    pub data_categories: String,
    /// ISO 8601 duration.
    pub retention_period: Option<String>,
    pub archived_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
