//! Who is calling: API keys for the main app and the admin console, subject tokens for the
//! portal.
//!
//! Roles follow least privilege. `service` is the main app and reaches only the server-to-server
//! endpoints; `viewer` reads the admin console, `reviewer` also decides requests, `admin` also
//! changes configuration. No role implies `service`, and `service` implies no admin role.
//!
//! Transactions: this room owns `api_keys` and `portal_sessions`; creating and revoking take the edge's
//! [`crate::db::Tx`].

pub mod api;
pub mod keys;
pub mod session;
pub mod token;

use poem::Request;
use poem_openapi::{Enum, SecurityScheme, auth::Bearer};
use sea_orm::{DeriveActiveEnum, EnumIter, sea_query::StringLen};

use crate::{AppState, audit::Actor, error::ApiError};

/// What an API key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Enum, EnumIter, DeriveActiveEnum, serde::Deserialize,
)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Role {
    /// The main application, server to server.
    #[sea_orm(string_value = "service")]
    Service,
    /// Reads the admin console.
    #[sea_orm(string_value = "viewer")]
    Viewer,
    /// Reads and decides data-subject requests.
    #[sea_orm(string_value = "reviewer")]
    Reviewer,
    /// Everything in the admin console, including configuration and keys.
    #[sea_orm(string_value = "admin")]
    Admin,
}

impl Role {
    /// Whether a key with this role may call an operation that requires `required`.
    pub fn allows(self, required: Role) -> bool {
        use Role::*;
        matches!(
            (self, required),
            (Service, Service)
                | (Viewer, Viewer)
                | (Reviewer, Viewer | Reviewer)
                | (Admin, Viewer | Reviewer | Admin)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "service" => Ok(Role::Service),
            "viewer" => Ok(Role::Viewer),
            "reviewer" => Ok(Role::Reviewer),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}` (expected service, viewer, reviewer or admin)"
            )),
        }
    }
}

/// A caller authenticated by an API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
}

impl Caller {
    /// 403 unless the key's role covers `required`.
    pub fn require(&self, required: Role) -> Result<(), ApiError> {
        if self.role.allows(required) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this operation needs the `{}` role",
                required.as_str()
            )))
        }
    }

    /// The audit actor for writes made with this key.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.key_id.clone())
    }
}

/// `Authorization: Bearer <api key>`, for the main app (role `service`) and the admin console.
#[derive(SecurityScheme)]
#[oai(rename = "ApiKey", ty = "bearer", checker = "check_api_key")]
pub struct ApiKey(pub Caller);

async fn check_api_key(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    let state = app_state(req)?;
    Ok(keys::authenticate(&state.db, &state.key_cache, &bearer.token).await?)
}

/// `Authorization: Bearer <subject token>`: a short-lived JWT (HS256) that the main app mints
/// for the person using the portal; `sub` is their external id.
#[derive(SecurityScheme)]
#[oai(
    rename = "SubjectToken",
    ty = "bearer",
    bearer_format = "JWT",
    checker = "check_subject_token"
)]
pub struct SubjectToken(pub token::SubjectId);

async fn check_subject_token(req: &Request, bearer: Bearer) -> poem::Result<token::SubjectId> {
    let state = app_state(req)?;
    let verifier = state.subject_tokens.as_ref().ok_or_else(|| {
        ApiError::unauthorized("subject tokens are not configured on this server")
    })?;
    Ok(verifier.verify(&bearer.token)?)
}

fn app_state(req: &Request) -> Result<&AppState, ApiError> {
    req.data::<AppState>()
        .ok_or_else(|| ApiError::internal(&"application state missing from the request"))
}

#[cfg(test)]
mod tests {
    use super::Role::*;

    #[test]
    fn roles_follow_least_privilege() {
        assert!(Admin.allows(Viewer) && Admin.allows(Reviewer) && Admin.allows(Admin));
        assert!(Reviewer.allows(Viewer) && !Reviewer.allows(Admin));
        assert!(Viewer.allows(Viewer) && !Viewer.allows(Reviewer));
        assert!(!Admin.allows(Service) && !Service.allows(Viewer));
        assert!(Service.allows(Service));
    }
}
