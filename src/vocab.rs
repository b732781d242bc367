//! Vocabulary: the small closed sets of words the rooms and the configuration share (the law
//! a request follows, the right it exercises). They sit below every room, so that `law`, the
//! configuration and the rooms above can all name them without importing each other.

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

/// The law whose deadlines and remedies apply.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    poem_openapi::Enum,
    serde::Deserialize,
)]
#[oai(rename = "RequestLaw", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
pub enum Law {
    #[sea_orm(string_value = "gdpr")]
    Gdpr,
    #[sea_orm(string_value = "pipl")]
    Pipl,
}
