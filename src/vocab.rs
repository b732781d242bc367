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

/// `a-z0-9-_`, 1 to 64 characters: the keys of policies, purposes, data categories and systems.
pub fn is_key(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The short reference a person quotes for a request, in pages and emails alike: the id's last
/// eight characters, upper case. They are random (an id's first characters are a timestamp,
/// shared by requests filed in the same minute).
pub fn reference(id: &str) -> String {
    let tail: String = id.chars().rev().take(8).collect();
    tail.chars().rev().collect::<String>().to_uppercase()
}

/// An ISO 3166-1 alpha-2 country code, kept in upper case: the one rule for what a country is.
/// Parsed once where it enters (a JSON body, a query, a form, the configuration); `cn` is read
/// as `CN`, and anything but two ASCII letters is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        (text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| Self(text.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CountryCode {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or("a country is two letters (ISO 3166-1 alpha-2), such as DE or CN")
    }
}

impl<'de> serde::Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a policy document applies: one country, or `*` for everywhere without a document of
/// its own. A person's or a consent's jurisdiction is always a country.
pub fn is_policy_scope(text: &str) -> bool {
    text == "*" || CountryCode::parse(text).is_some_and(|c| c.as_str() == text)
}

mod country_schema {
    use std::borrow::Cow;

    use poem_openapi::{
        registry::{MetaSchema, MetaSchemaRef},
        types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
    };
    use serde_json::Value;

    use super::CountryCode;

    impl Type for CountryCode {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn name() -> Cow<'static, str> {
            "CountryCode".into()
        }

        fn schema_ref() -> MetaSchemaRef {
            let mut schema = MetaSchema::new("string");
            schema.pattern = Some("^[A-Za-z]{2}$".into());
            schema.description = Some("ISO 3166-1 alpha-2 country code, such as DE or CN");
            MetaSchemaRef::Inline(Box::new(schema))
        }

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(
            &'a self,
        ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(self.as_raw_value().into_iter())
        }
    }

    impl ParseFromJSON for CountryCode {
        fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
            match value.unwrap_or_default() {
                Value::String(text) => text.parse().map_err(ParseError::custom),
                other => Err(ParseError::expected_type(other)),
            }
        }
    }

    impl ParseFromParameter for CountryCode {
        fn parse_from_parameter(value: &str) -> ParseResult<Self> {
            value.parse().map_err(ParseError::custom)
        }
    }

    impl ToJSON for CountryCode {
        fn to_json(&self) -> Option<Value> {
            Some(Value::String(self.0.clone()))
        }
    }
}
