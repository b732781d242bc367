//! Purposes of processing: what each is for, on which legal basis, who receives the data,
//! whether PIPL needs separate consent for it, and how long its data is kept.
//!
//! A purpose is identified by its key for ever: consent events cite it, so a purpose that has
//! consents is archived, never deleted.
//!
//! Transactions: this room owns `purposes`; its writers take the edge's [`Tx`].

pub mod api;
pub mod model;

use std::collections::BTreeMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, prelude::*,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    audit::{self, Actor, Target},
    clock,
    db::Tx,
    error::FieldError,
    period::Period,
    policy::document::is_language,
    vocab::is_key,
};
pub use model::{LegalBasis, SeparateConsentReason};

/// What can go wrong with purposes.
#[derive(Debug, thiserror::Error)]
pub enum PurposeError {
    #[error("no such purpose")]
    NotFound,
    #[error("a purpose with this key already exists")]
    Exists,
    #[error("the purpose has consents recorded against it; archive it instead")]
    HasConsents,
    #[error("invalid purpose")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A purpose's title and description in one language, and what a parent reads when deciding
/// for a child (the description speaks to the person themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PurposeText {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub title: String,
    #[oai(validator(max_length = 4000))]
    pub description: String,
    /// For a parent or guardian: "We suggest tags for the photos your child uploads". Without
    /// it, the guardian's page shows the description as what the child is told.
    #[oai(validator(max_length = 4000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardian: Option<String>,
}

/// Who receives data processed for a purpose (PIPL Arts 23 and 39 require naming them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Recipient {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// e.g. `processor`, `controller`, `joint_controller`.
    #[oai(validator(min_length = 1, max_length = 50))]
    pub role: String,
    /// Where the recipient processes the data.
    pub country: crate::vocab::CountryCode,
}

/// A purpose as the domain sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Purpose {
    pub key: String,
    pub texts: BTreeMap<String, PurposeText>,
    pub legal_basis: LegalBasis,
    pub required: bool,
    pub separate_consent: bool,
    pub separate_consent_reason: Option<SeparateConsentReason>,
    /// Direct marketing (or marketing by automated decision): an objection to it takes effect
    /// on receipt and cannot be rejected (GDPR Art 21(2)-(3), PIPL Arts 24, 44).
    pub direct_marketing: bool,
    pub recipients: Vec<Recipient>,
    pub data_categories: Vec<String>,
    pub retention_period: Option<String>,
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The fields an admin sets; the key is fixed at creation.
#[derive(Debug, Clone)]
pub struct PurposeFields {
    pub texts: BTreeMap<String, PurposeText>,
    pub legal_basis: LegalBasis,
    pub required: bool,
    pub separate_consent: bool,
    pub separate_consent_reason: Option<SeparateConsentReason>,
    /// Direct marketing (or marketing by automated decision): an objection to it takes effect
    /// on receipt and cannot be rejected (GDPR Art 21(2)-(3), PIPL Arts 24, 44).
    pub direct_marketing: bool,
    pub recipients: Vec<Recipient>,
    pub data_categories: Vec<String>,
    pub retention_period: Option<String>,
}

impl PurposeFields {
    /// The rules that span fields, which the OpenAPI schema cannot express.
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.texts.is_empty() {
            errors.push(FieldError::new(
                "texts",
                "at least one language's title and description",
            ));
        }
        for lang in self.texts.keys() {
            if !is_language(lang) {
                errors.push(FieldError::new(
                    format!("texts.{lang}"),
                    "not a language tag such as `en` or `zh-CN`",
                ));
            }
        }
        if self.separate_consent && self.separate_consent_reason.is_none() {
            errors.push(FieldError::new(
                "separate_consent_reason",
                "a purpose that needs separate consent must say why (PIPL Arts 23, 25, 26, 29, 39)",
            ));
        }
        if !self.separate_consent && self.separate_consent_reason.is_some() {
            errors.push(FieldError::new(
                "separate_consent_reason",
                "only for purposes with `separate_consent: true`",
            ));
        }
        if self.direct_marketing && self.required {
            errors.push(FieldError::new(
                "direct_marketing",
                "marketing is never necessary for the service: a person may always object",
            ));
        }
        if self.separate_consent && self.legal_basis != LegalBasis::Consent {
            errors.push(FieldError::new(
                "legal_basis",
                "separate consent needs the legal basis `consent`",
            ));
        }
        if self.required && self.legal_basis == LegalBasis::Consent {
            errors.push(FieldError::new(
                "required",
                "consent cannot be a condition of the service (GDPR Art 7(4), PIPL Art 16); \
                 a required purpose needs another legal basis",
            ));
        }
        for (i, category) in self.data_categories.iter().enumerate() {
            if !is_key(category) {
                errors.push(FieldError::new(
                    format!("data_categories.{i}"),
                    "1-64 characters from a-z, 0-9, `-` and `_`",
                ));
            }
        }
        if let Some(period) = &self.retention_period
            && let Err(message) = period.parse::<Period>()
        {
            errors.push(FieldError::new("retention_period", message));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl TryFrom<model::Model> for Purpose {
    type Error = DbErr;

    fn try_from(m: model::Model) -> Result<Self, DbErr> {
        let json_err = |e: serde_json::Error| DbErr::Json(e.to_string());
        Ok(Self {
            texts: serde_json::from_str(&m.texts).map_err(json_err)?,
            recipients: serde_json::from_str(&m.recipients).map_err(json_err)?,
            data_categories: serde_json::from_str(&m.data_categories).map_err(json_err)?,
            key: m.key,
            legal_basis: m.legal_basis,
            required: m.required,
            separate_consent: m.separate_consent,
            separate_consent_reason: m.separate_consent_reason,
            direct_marketing: m.direct_marketing,
            retention_period: m.retention_period,
            archived_at: m.archived_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

impl Purpose {
    /// The title and description in `language`, else English, else any.
    pub fn text(&self, language: &str) -> Option<&PurposeText> {
        let primary = language.split('-').next().unwrap_or(language);
        self.texts
            .get(language)
            .or_else(|| self.texts.get(primary))
            .or_else(|| self.texts.get("en"))
            .or_else(|| self.texts.values().next())
    }
}

/// One purpose.
pub async fn get(conn: &impl ConnectionTrait, key: &str) -> Result<Purpose, PurposeError> {
    model::Entity::find_by_id(key.to_string())
        .one(conn)
        .await?
        .ok_or(PurposeError::NotFound)?
        .try_into()
        .map_err(PurposeError::Db)
}

/// Purposes by key; archived ones only when asked.
pub async fn list(
    conn: &impl ConnectionTrait,
    include_archived: bool,
) -> Result<Vec<Purpose>, DbErr> {
    let mut query = model::Entity::find().order_by_asc(model::Column::Key);
    if !include_archived {
        query = query.filter(model::Column::ArchivedAt.is_null());
    }
    query
        .all(conn)
        .await?
        .into_iter()
        .map(Purpose::try_from)
        .collect()
}

/// Every purpose's title in `language` (archived ones too: old records cite them), by key.
pub async fn titles(
    conn: &impl ConnectionTrait,
    language: &str,
) -> Result<BTreeMap<String, String>, DbErr> {
    Ok(list(conn, true)
        .await?
        .into_iter()
        .filter_map(|p| Some((p.key.clone(), p.text(language)?.title.clone())))
        .collect())
}

/// The purposes with these keys (unknown keys are simply absent).
pub async fn find_many(
    conn: &impl ConnectionTrait,
    keys: &[&str],
) -> Result<BTreeMap<String, Purpose>, DbErr> {
    model::Entity::find()
        .filter(model::Column::Key.is_in(keys.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| Purpose::try_from(m).map(|p| (p.key.clone(), p)))
        .collect()
}

/// Creates a purpose.
pub async fn create(
    tx: &mut Tx,
    key: &str,
    fields: PurposeFields,
    actor: &Actor,
) -> Result<Purpose, PurposeError> {
    let mut errors = fields.validate().err().unwrap_or_default();
    if !is_key(key) {
        errors.insert(
            0,
            FieldError::new("key", "1-64 characters from a-z, 0-9, `-` and `_`"),
        );
    }
    if !errors.is_empty() {
        return Err(PurposeError::Invalid(errors));
    }
    if model::Entity::find_by_id(key.to_string())
        .one(&*tx)
        .await?
        .is_some()
    {
        return Err(PurposeError::Exists);
    }
    let now = clock::now();
    let mut row = active_model(&fields)?;
    row.key = Set(key.to_string());
    row.archived_at = Set(None);
    row.created_at = Set(now);
    row.updated_at = Set(now);
    let purpose: Purpose = row.insert(&*tx).await?.try_into()?;
    audit::record(
        &*tx,
        actor,
        "purpose.created",
        Target::new("purpose", key),
        json!({"legal_basis": purpose.legal_basis.to_value(),
               "separate_consent": purpose.separate_consent}),
    )
    .await?;
    Ok(purpose)
}

/// Replaces a purpose's fields.
pub async fn update(
    tx: &mut Tx,
    key: &str,
    fields: PurposeFields,
    actor: &Actor,
) -> Result<Purpose, PurposeError> {
    fields.validate().map_err(PurposeError::Invalid)?;
    let existing = model::Entity::find_by_id(key.to_string())
        .one(&*tx)
        .await?
        .ok_or(PurposeError::NotFound)?;
    let mut row = active_model(&fields)?;
    row.key = sea_orm::ActiveValue::Unchanged(existing.key);
    row.updated_at = Set(clock::now());
    let purpose: Purpose = row.update(&*tx).await?.try_into()?;
    audit::record(
        &*tx,
        actor,
        "purpose.updated",
        Target::new("purpose", key),
        json!({"legal_basis": purpose.legal_basis.to_value(),
               "separate_consent": purpose.separate_consent}),
    )
    .await?;
    Ok(purpose)
}

/// Archives a purpose: it disappears from the public list and takes no new consent, but its
/// history stays.
pub async fn archive(tx: &mut Tx, key: &str, actor: &Actor) -> Result<Purpose, PurposeError> {
    let existing = model::Entity::find_by_id(key.to_string())
        .one(&*tx)
        .await?
        .ok_or(PurposeError::NotFound)?;
    let purpose: Purpose = if existing.archived_at.is_some() {
        existing.try_into()?
    } else {
        let now = clock::now();
        let mut row: model::ActiveModel = existing.into();
        row.archived_at = Set(Some(now));
        row.updated_at = Set(now);
        let purpose = row.update(&*tx).await?.try_into()?;
        audit::record(
            &*tx,
            actor,
            "purpose.archived",
            Target::new("purpose", key),
            json!({}),
        )
        .await?;
        purpose
    };
    Ok(purpose)
}

/// Deletes a purpose. Only one nobody has consented to (a mistake) may go: the caller asks the
/// ledger first ([`crate::actions::purposes::delete`]).
pub async fn delete(tx: &mut Tx, key: &str, actor: &Actor) -> Result<(), PurposeError> {
    model::Entity::delete_by_id(key.to_string())
        .exec(&*tx)
        .await?;
    audit::record(
        &*tx,
        actor,
        "purpose.deleted",
        Target::new("purpose", key),
        json!({}),
    )
    .await?;
    Ok(())
}

fn active_model(fields: &PurposeFields) -> Result<model::ActiveModel, DbErr> {
    let to_json = |v: serde_json::Result<String>| v.map_err(|e| DbErr::Json(e.to_string()));
    Ok(model::ActiveModel {
        texts: Set(to_json(serde_json::to_string(&fields.texts))?),
        legal_basis: Set(fields.legal_basis),
        required: Set(fields.required),
        separate_consent: Set(fields.separate_consent),
        separate_consent_reason: Set(fields.separate_consent_reason),
        direct_marketing: Set(fields.direct_marketing),
        recipients: Set(to_json(serde_json::to_string(&fields.recipients))?),
        data_categories: Set(to_json(serde_json::to_string(&fields.data_categories))?),
        retention_period: Set(fields.retention_period.clone()),
        ..Default::default()
    })
}
