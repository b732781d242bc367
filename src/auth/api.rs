//! `/v1/admin/keys`: list, create and revoke API keys (admin only).

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use super::{ApiKey, Role, keys};
use crate::{AppState, api_tags::ApiTags, error::ApiError};

pub struct KeysApi {
    state: AppState,
}

impl KeysApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// An API key as listed: never the secret.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct KeyView {
    id: String,
    name: String,
    role: Role,
    created_at: DateTime<Utc>,
    /// Refreshed at most once a minute.
    #[oai(skip_serializing_if_is_none)]
    last_used_at: Option<DateTime<Utc>>,
    #[oai(skip_serializing_if_is_none)]
    revoked_at: Option<DateTime<Utc>>,
}

impl From<keys::ApiKeyRecord> for KeyView {
    fn from(r: keys::ApiKeyRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            role: r.role,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Object)]
struct CreateKey {
    /// Who or what the key is for, e.g. `main-app-prod`.
    #[oai(validator(min_length = 1, max_length = 100))]
    name: String,
    role: Role,
}

/// A new key. `key` is shown this once and cannot be recovered.
#[derive(Object)]
struct CreatedKey {
    #[oai(flatten)]
    view: KeyView,
    /// The full key, for `Authorization: Bearer <key>`.
    key: String,
}

#[derive(ApiResponse)]
enum CreateKeyResponse {
    /// The key was created; store `key` now.
    #[oai(status = 201)]
    Created(Json<CreatedKey>),
}

#[derive(ApiResponse)]
enum RevokeKeyResponse {
    /// The key is revoked (or already was); requests using it now get 401.
    #[oai(status = 200)]
    Revoked(Json<KeyView>),
}

#[OpenApi(prefix_path = "/v1/admin/keys", tag = "ApiTags::Admin")]
impl KeysApi {
    /// List API keys
    #[oai(path = "/", method = "get")]
    async fn list(&self, auth: ApiKey) -> Result<Json<Vec<KeyView>>, ApiError> {
        auth.0.require(Role::Admin)?;
        let keys = keys::list(self.state.db.conn()).await?;
        Ok(Json(keys.into_iter().map(Into::into).collect()))
    }

    /// Create an API key
    #[oai(path = "/", method = "post")]
    async fn create(
        &self,
        auth: ApiKey,
        body: Json<CreateKey>,
    ) -> Result<CreateKeyResponse, ApiError> {
        auth.0.require(Role::Admin)?;
        let issued = crate::actions::operations::create_key(
            &self.state.db,
            body.0.role,
            &body.0.name,
            &auth.0.actor(),
        )
        .await?;
        Ok(CreateKeyResponse::Created(Json(CreatedKey {
            view: issued.record.into(),
            key: issued.secret.expose().to_string(),
        })))
    }

    /// Revoke an API key
    #[oai(path = "/:id", method = "delete")]
    async fn revoke(&self, auth: ApiKey, id: Path<String>) -> Result<RevokeKeyResponse, ApiError> {
        auth.0.require(Role::Admin)?;
        let record = crate::actions::operations::revoke_key(
            &self.state.db,
            &self.state.key_cache,
            &id.0,
            &auth.0.actor(),
        )
        .await?;
        Ok(RevokeKeyResponse::Revoked(Json(record.into())))
    }
}
