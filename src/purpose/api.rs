//! `/v1/purposes` (public) and `/v1/admin/purposes` (admin).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{LegalBasis, Purpose, PurposeFields, PurposeText, Recipient, SeparateConsentReason};
use crate::{
    AppState,
    api_tags::ApiTags,
    auth::{ApiKey, Role},
    error::ApiError,
};

pub struct PurposesApi {
    state: AppState,
}

impl PurposesApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// A purpose as shown to the public, in one language.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PublicPurpose {
    key: String,
    title: String,
    description: String,
    legal_basis: LegalBasis,
    /// Necessary for the service: shown, not withdrawable.
    required: bool,
    /// PIPL separate consent: asked on its own, never bundled.
    separate_consent: bool,
    #[oai(skip_serializing_if_is_none)]
    separate_consent_reason: Option<SeparateConsentReason>,
    /// Direct marketing: an objection to it takes effect on receipt and cannot be rejected.
    direct_marketing: bool,
    recipients: Vec<Recipient>,
    data_categories: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    retention_period: Option<String>,
}

/// A purpose with every language, for the admin console.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PurposeView {
    key: String,
    /// Title and description per language tag.
    texts: BTreeMap<String, PurposeText>,
    legal_basis: LegalBasis,
    required: bool,
    separate_consent: bool,
    #[oai(skip_serializing_if_is_none)]
    separate_consent_reason: Option<SeparateConsentReason>,
    /// Direct marketing: an objection to it takes effect on receipt and cannot be rejected.
    direct_marketing: bool,
    recipients: Vec<Recipient>,
    data_categories: Vec<String>,
    #[oai(skip_serializing_if_is_none)]
    retention_period: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    archived_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Purpose> for PurposeView {
    fn from(p: Purpose) -> Self {
        Self {
            key: p.key,
            texts: p.texts,
            legal_basis: p.legal_basis,
            required: p.required,
            separate_consent: p.separate_consent,
            separate_consent_reason: p.separate_consent_reason,
            direct_marketing: p.direct_marketing,
            recipients: p.recipients,
            data_categories: p.data_categories,
            retention_period: p.retention_period,
            archived_at: p.archived_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// The fields of a purpose.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PurposeBody {
    /// Title and description per language tag (`en`, `zh-CN`, ...).
    texts: BTreeMap<String, PurposeText>,
    legal_basis: LegalBasis,
    #[oai(default)]
    required: bool,
    #[oai(default)]
    separate_consent: bool,
    separate_consent_reason: Option<SeparateConsentReason>,
    /// Direct marketing (or marketing by automated decision): an objection to it takes effect
    /// on receipt, without review (GDPR Art 21(2)-(3), PIPL Arts 24, 44).
    #[oai(default)]
    direct_marketing: bool,
    #[oai(default, validator(max_items = 100))]
    recipients: Vec<Recipient>,
    #[oai(default, validator(max_items = 100))]
    data_categories: Vec<String>,
    /// ISO 8601 duration such as `P30D`, `P3M`, `P1Y`.
    #[oai(validator(max_length = 32))]
    retention_period: Option<String>,
}

impl From<PurposeBody> for PurposeFields {
    fn from(b: PurposeBody) -> Self {
        Self {
            texts: b.texts,
            legal_basis: b.legal_basis,
            required: b.required,
            separate_consent: b.separate_consent,
            separate_consent_reason: b.separate_consent_reason,
            direct_marketing: b.direct_marketing,
            recipients: b.recipients,
            data_categories: b.data_categories,
            retention_period: b.retention_period,
        }
    }
}

/// A new purpose: its key and fields.
#[derive(Object)]
struct NewPurpose {
    /// Stable identifier cited by consent events, e.g. `marketing_email`.
    #[oai(validator(min_length = 1, max_length = 64))]
    key: String,
    #[oai(flatten)]
    fields: PurposeBody,
}

#[derive(ApiResponse)]
enum CreatePurposeResponse {
    /// The purpose was created.
    #[oai(status = 201)]
    Created(Json<PurposeView>),
}

#[derive(ApiResponse)]
enum DeletePurposeResponse {
    /// The purpose was deleted (it had no consents).
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi]
impl PurposesApi {
    /// List purposes
    ///
    /// The active purposes in one language (`lang`, falling back to English), with their legal
    /// basis, recipients, data categories and retention period.
    #[oai(path = "/v1/purposes", method = "get", tag = "ApiTags::Public")]
    async fn public_list(
        &self,
        #[oai(validator(max_length = 16))] lang: Query<Option<String>>,
    ) -> Result<Json<Vec<PublicPurpose>>, ApiError> {
        let lang = lang.0.unwrap_or_else(|| "en".into());
        let purposes = super::list(self.state.db.conn(), false).await?;
        Ok(Json(
            purposes
                .into_iter()
                .map(|p| {
                    let text = p.text(&lang).cloned().unwrap_or(PurposeText {
                        title: p.key.clone(),
                        description: String::new(),
                        guardian: None,
                    });
                    PublicPurpose {
                        key: p.key,
                        title: text.title,
                        description: text.description,
                        legal_basis: p.legal_basis,
                        required: p.required,
                        separate_consent: p.separate_consent,
                        separate_consent_reason: p.separate_consent_reason,
                        direct_marketing: p.direct_marketing,
                        recipients: p.recipients,
                        data_categories: p.data_categories,
                        retention_period: p.retention_period,
                    }
                })
                .collect(),
        ))
    }

    /// List purposes, archived included
    #[oai(path = "/v1/admin/purposes", method = "get", tag = "ApiTags::Admin")]
    async fn admin_list(&self, auth: ApiKey) -> Result<Json<Vec<PurposeView>>, ApiError> {
        auth.0.require(Role::Viewer)?;
        let purposes = super::list(self.state.db.conn(), true).await?;
        Ok(Json(purposes.into_iter().map(Into::into).collect()))
    }

    /// Create a purpose
    #[oai(path = "/v1/admin/purposes", method = "post", tag = "ApiTags::Admin")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<NewPurpose>,
    ) -> Result<CreatePurposeResponse, ApiError> {
        auth.0.require(Role::Admin)?;
        let NewPurpose { key, fields } = body.0;
        let purpose =
            crate::actions::purposes::create(&self.state.db, &key, fields.into(), &auth.0.actor())
                .await?;
        Ok(CreatePurposeResponse::Created(Json(purpose.into())))
    }

    /// Get a purpose
    #[oai(
        path = "/v1/admin/purposes/:key",
        method = "get",
        tag = "ApiTags::Admin"
    )]
    async fn admin_get(
        &self,
        auth: ApiKey,
        key: Path<String>,
    ) -> Result<Json<PurposeView>, ApiError> {
        auth.0.require(Role::Viewer)?;
        Ok(Json(super::get(self.state.db.conn(), &key.0).await?.into()))
    }

    /// Replace a purpose's fields
    #[oai(
        path = "/v1/admin/purposes/:key",
        method = "put",
        tag = "ApiTags::Admin"
    )]
    async fn update(
        &self,
        auth: ApiKey,
        key: Path<String>,
        body: Json<PurposeBody>,
    ) -> Result<Json<PurposeView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let purpose = crate::actions::purposes::update(
            &self.state.db,
            &key.0,
            body.0.into(),
            &auth.0.actor(),
        )
        .await?;
        Ok(Json(purpose.into()))
    }

    /// Archive a purpose
    ///
    /// It leaves the public list and takes no new consent; its consent history stays.
    #[oai(
        path = "/v1/admin/purposes/:key/archive",
        method = "post",
        tag = "ApiTags::Admin"
    )]
    async fn archive(
        &self,
        auth: ApiKey,
        key: Path<String>,
    ) -> Result<Json<PurposeView>, ApiError> {
        auth.0.require(Role::Admin)?;
        let purpose =
            crate::actions::purposes::archive(&self.state.db, &key.0, &auth.0.actor()).await?;
        Ok(Json(purpose.into()))
    }

    /// Delete a purpose nobody consented to
    ///
    /// A purpose with recorded consents is refused with 409: archive it instead.
    #[oai(
        path = "/v1/admin/purposes/:key",
        method = "delete",
        tag = "ApiTags::Admin"
    )]
    async fn delete(
        &self,
        auth: ApiKey,
        key: Path<String>,
    ) -> Result<DeletePurposeResponse, ApiError> {
        auth.0.require(Role::Admin)?;
        crate::actions::purposes::delete(&self.state.db, &key.0, &auth.0.actor()).await?;
        Ok(DeletePurposeResponse::Deleted)
    }
}
