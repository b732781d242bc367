//! The registry of systems that hold people's data: the main app, and beside it object storage,
//! a training cluster, an analytics property, a mailing tool, a CDN cache. Each system says
//! which requests it carries out, which data categories it holds, where its jobs go and how
//! many days it is allowed; an approved request becomes one job per system that must act (see
//! `request::fulfil`). Under GDPR Arts 17(2) and 19 and PIPL Art 47 the controller must reach
//! every one of them and be able to show that it did.
//!
//! A system's signing secret is sealed at rest with the systems key and shown once, when it is
//! made; a system without an endpoint of its own is reached through the main app's webhook URL,
//! signed with the main app's secret. Systems that have had jobs are retired, never deleted: a
//! request's proof names them.
//!
//! Transactions: this room owns `systems`; its writers take the edge's [`Tx`].

pub mod api;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    prelude::*,
};
use serde_json::json;

use crate::{
    audit::{self, Actor, Target},
    clock,
    config::{Config, parse_webhook_secrets},
    crypto,
    db::Tx,
    error::FieldError,
    vocab::{RequestType, is_key},
};

/// The `systems` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "systems")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub name: String,
        pub description: String,
        /// Where jobs are posted; `None` for the main app's webhook URL.
        pub endpoint: Option<String>,
        /// The signing secret, sealed with the systems key; `None` with no endpoint of its own.
        pub secret_sealed: Option<String>,
        /// JSON list of request types.
        pub request_types: String,
        /// JSON list of data categories.
        pub categories: String,
        pub allowance_days: i32,
        pub required: bool,
        pub retired_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What can go wrong with the registry.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("no such system")]
    NotFound,
    #[error("a system with this key already exists")]
    Exists,
    #[error("the system is retired")]
    Retired,
    #[error("invalid system")]
    Invalid(Vec<FieldError>),
    #[error("systems key: {0}")]
    Key(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The request types a system can carry out: the ones that need the data where it is kept.
/// Restriction and objection are Consentry's own.
pub const TYPES: [RequestType; 4] = [
    RequestType::Access,
    RequestType::Export,
    RequestType::Rectify,
    RequestType::Erase,
];

/// Longest allowance: past it, the legal deadline (one month, or 15 working days) is lost.
pub const MAX_ALLOWANCE_DAYS: u32 = 60;

/// A registered system.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    pub key: String,
    pub name: String,
    pub description: String,
    pub endpoint: Option<String>,
    /// Whether a signing secret of its own is set (never the secret itself).
    pub has_secret: bool,
    pub request_types: Vec<RequestType>,
    pub categories: Vec<String>,
    /// Days a job may take before it is overdue.
    pub allowance_days: u32,
    /// Whether the request waits for this system's confirmation.
    pub required: bool,
    pub retired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl System {
    fn from_row(row: entity::Model) -> Self {
        let request_types: Vec<String> =
            serde_json::from_str(&row.request_types).unwrap_or_default();
        Self {
            has_secret: row.secret_sealed.is_some(),
            request_types: request_types
                .iter()
                .filter_map(|t| RequestType::try_from_value(t).ok())
                .collect(),
            categories: serde_json::from_str(&row.categories).unwrap_or_default(),
            allowance_days: u32::try_from(row.allowance_days).unwrap_or(0),
            key: row.key,
            name: row.name,
            description: row.description,
            endpoint: row.endpoint,
            required: row.required,
            retired_at: row.retired_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    /// Whether an approved request of `kind` becomes a job for this system: it carries out the
    /// type, and for an erasure of some categories only, it holds one of them.
    pub fn reaches(&self, kind: RequestType, scope: Option<&[String]>) -> bool {
        self.retired_at.is_none()
            && self.request_types.contains(&kind)
            && scope.is_none_or(|categories| {
                categories
                    .iter()
                    .any(|c| self.categories.iter().any(|held| held == c))
            })
    }
}

/// What an admin sets; the key is fixed at creation.
#[derive(Debug, Clone)]
pub struct SystemFields {
    pub name: String,
    pub description: String,
    pub endpoint: Option<String>,
    pub request_types: Vec<RequestType>,
    pub categories: Vec<String>,
    pub allowance_days: u32,
    pub required: bool,
}

impl SystemFields {
    /// The rules the OpenAPI schema and the console's form cannot express.
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new(
                "name",
                "give the system a name of 1 to 200 characters",
            ));
        }
        if self.description.chars().count() > 2000 {
            errors.push(FieldError::new(
                "description",
                "keep the description to 2000 characters",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            // Never echo the URL: its query or user part may hold a token.
            match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => errors.push(FieldError::new(
                    "endpoint",
                    "give an http:// or https:// URL, or leave it empty for the main app's webhook URL",
                )),
            }
        }
        if self.request_types.is_empty() {
            errors.push(FieldError::new(
                "request_types",
                "choose at least one request type",
            ));
        }
        if let Some(other) = self.request_types.iter().find(|t| !TYPES.contains(t)) {
            errors.push(FieldError::new(
                "request_types",
                format!(
                    "{} is carried out by Consentry alone; a system handles access, export, \
                     rectify and erase",
                    other.to_value()
                ),
            ));
        }
        if self.categories.is_empty() {
            errors.push(FieldError::new(
                "categories",
                "name at least one data category it holds",
            ));
        }
        if let Some(bad) = self.categories.iter().find(|c| !is_key(c)) {
            errors.push(FieldError::new(
                "categories",
                format!("`{bad}`: lower-case letters, digits, `-` and `_`, up to 64"),
            ));
        }
        if !(1..=MAX_ALLOWANCE_DAYS).contains(&self.allowance_days) {
            errors.push(FieldError::new(
                "allowance_days",
                format!("give a number of days from 1 to {MAX_ALLOWANCE_DAYS}"),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn types_json(&self) -> String {
        let mut types: Vec<String> = self.request_types.iter().map(|t| t.to_value()).collect();
        types.sort();
        types.dedup();
        json!(types).to_string()
    }

    fn categories_json(&self) -> String {
        let mut categories = self.categories.clone();
        categories.sort();
        categories.dedup();
        json!(categories).to_string()
    }

    /// What the audit log keeps of a change: the endpoint's host only.
    fn audited(&self) -> serde_json::Value {
        json!({
            "name": self.name,
            "endpoint_host": self.endpoint.as_deref()
                .and_then(|e| url::Url::parse(e).ok())
                .and_then(|u| u.host_str().map(str::to_string)),
            "request_types": serde_json::from_str::<serde_json::Value>(&self.types_json()).ok(),
            "categories": serde_json::from_str::<serde_json::Value>(&self.categories_json()).ok(),
            "allowance_days": self.allowance_days,
            "required": self.required,
        })
    }
}

/// What happens to a system's signing secret on a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    /// Keep the one set (a new one is made if the system gains an endpoint without one).
    Keep,
    /// Use this `whsec_…` secret.
    Set(String),
    /// Make a new one, shown once.
    Rotate,
}

/// The key that seals systems' signing secrets.
fn sealing_key(config: &Config) -> Result<[u8; 32], SystemError> {
    crypto::key(
        config.requests.systems_key.as_ref(),
        &config.data_dir.join("systems.key"),
    )
    .map_err(SystemError::Key)
}

/// A new Standard Webhooks secret.
fn new_secret() -> String {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(crypto::random_bytes::<32>())
    )
}

/// Decides the secret to store: sealed, and the one to show once if it was made here.
fn secret_for(
    config: &Config,
    endpoint: Option<&str>,
    sealed: Option<String>,
    change: SecretChange,
) -> Result<(Option<String>, Option<String>), SystemError> {
    if endpoint.is_none() {
        // Jobs go through the main app's webhook URL, signed with its secret.
        return match change {
            SecretChange::Set(_) => Err(SystemError::Invalid(vec![FieldError::new(
                "secret",
                "a system without an endpoint is signed with the main app's secret",
            )])),
            _ => Ok((None, None)),
        };
    }
    let key = sealing_key(config)?;
    let given = match change {
        SecretChange::Keep if sealed.is_some() => return Ok((sealed, None)),
        SecretChange::Set(secret) => {
            let valid = parse_webhook_secrets(&secret).is_ok_and(|keys| keys.len() == 1);
            if !valid {
                return Err(SystemError::Invalid(vec![FieldError::new(
                    "secret",
                    "one Standard Webhooks secret: whsec_ followed by base64",
                )]));
            }
            return Ok((Some(crypto::seal(&key, secret.as_bytes())), None));
        }
        SecretChange::Keep | SecretChange::Rotate => new_secret(),
    };
    Ok((Some(crypto::seal(&key, given.as_bytes())), Some(given)))
}

/// Registers a system. Returns it and its signing secret when one was made here (shown once).
pub async fn create(
    tx: &mut Tx,
    config: &Config,
    key: &str,
    fields: SystemFields,
    secret: Option<String>,
    actor: &Actor,
) -> Result<(System, Option<String>), SystemError> {
    let mut errors = fields.validate().err().unwrap_or_default();
    if !is_key(key) {
        errors.insert(
            0,
            FieldError::new("key", "lower-case letters, digits, `-` and `_`, up to 64"),
        );
    }
    if !errors.is_empty() {
        return Err(SystemError::Invalid(errors));
    }
    if entity::Entity::find_by_id(key).one(&*tx).await?.is_some() {
        return Err(SystemError::Exists);
    }
    let change = secret.map_or(SecretChange::Keep, SecretChange::Set);
    let (sealed, shown) = secret_for(config, fields.endpoint.as_deref(), None, change)?;
    let now = clock::now();
    entity::Entity::insert(entity::ActiveModel {
        key: Set(key.to_string()),
        name: Set(fields.name.trim().to_string()),
        description: Set(fields.description.trim().to_string()),
        endpoint: Set(fields.endpoint.clone()),
        secret_sealed: Set(sealed),
        request_types: Set(fields.types_json()),
        categories: Set(fields.categories_json()),
        allowance_days: Set(fields.allowance_days as i32),
        required: Set(fields.required),
        retired_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(&*tx)
    .await?;
    audit::record(
        &*tx,
        actor,
        "system.created",
        Target::new("data_system", key),
        fields.audited(),
    )
    .await?;
    Ok((get(&*tx, key).await?, shown))
}

/// Changes a system's declaration, and its secret as `secret` says. Jobs already sent keep
/// their due dates; jobs still to be delivered go to the new endpoint, signed with the new
/// secret.
pub async fn update(
    tx: &mut Tx,
    config: &Config,
    key: &str,
    fields: SystemFields,
    secret: SecretChange,
    actor: &Actor,
) -> Result<(System, Option<String>), SystemError> {
    let row = entity::Entity::find_by_id(key)
        .one(&*tx)
        .await?
        .ok_or(SystemError::NotFound)?;
    if row.retired_at.is_some() {
        return Err(SystemError::Retired);
    }
    fields.validate().map_err(SystemError::Invalid)?;
    let rotated = secret == SecretChange::Rotate;
    let (sealed, shown) = secret_for(
        config,
        fields.endpoint.as_deref(),
        row.secret_sealed.clone(),
        secret,
    )?;
    let mut details = fields.audited();
    details["secret_rotated"] = json!(rotated || shown.is_some());
    entity::Entity::update(entity::ActiveModel {
        key: Set(key.to_string()),
        name: Set(fields.name.trim().to_string()),
        description: Set(fields.description.trim().to_string()),
        endpoint: Set(fields.endpoint.clone()),
        secret_sealed: Set(sealed),
        request_types: Set(fields.types_json()),
        categories: Set(fields.categories_json()),
        allowance_days: Set(fields.allowance_days as i32),
        required: Set(fields.required),
        updated_at: Set(clock::now()),
        ..Default::default()
    })
    .exec(&*tx)
    .await?;
    audit::record(
        &*tx,
        actor,
        "system.updated",
        Target::new("data_system", key),
        details,
    )
    .await?;
    Ok((get(&*tx, key).await?, shown))
}

/// Retires a system: no new jobs; its past jobs and their evidence stay as proof.
pub async fn retire(tx: &mut Tx, key: &str, actor: &Actor) -> Result<System, SystemError> {
    let system = get(&*tx, key).await?;
    if system.retired_at.is_some() {
        return Ok(system);
    }
    let now = clock::now();
    entity::Entity::update(entity::ActiveModel {
        key: Set(key.to_string()),
        retired_at: Set(Some(now)),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(&*tx)
    .await?;
    audit::record(
        &*tx,
        actor,
        "system.retired",
        Target::new("data_system", key),
        json!({"name": system.name}),
    )
    .await?;
    get(&*tx, key).await
}

/// One system.
pub async fn get(conn: &impl ConnectionTrait, key: &str) -> Result<System, SystemError> {
    entity::Entity::find_by_id(key)
        .one(conn)
        .await?
        .map(System::from_row)
        .ok_or(SystemError::NotFound)
}

/// Every system, the retired last, each group by name.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<System>, DbErr> {
    let mut systems: Vec<System> = entity::Entity::find()
        .order_by_asc(entity::Column::Name)
        .all(conn)
        .await?
        .into_iter()
        .map(System::from_row)
        .collect();
    systems.sort_by_key(|s| s.retired_at.is_some());
    Ok(systems)
}

/// The systems in service (not retired).
pub async fn active(conn: &impl ConnectionTrait) -> Result<Vec<System>, DbErr> {
    Ok(entity::Entity::find()
        .filter(entity::Column::RetiredAt.is_null())
        .order_by_asc(entity::Column::Key)
        .all(conn)
        .await?
        .into_iter()
        .map(System::from_row)
        .collect())
}

/// Where a job for a system goes and the secret that signs it: the system's own, or `None`
/// for the main app's webhook URL and secret.
pub struct Endpoint {
    pub url: String,
    pub secret: Vec<u8>,
}

/// The endpoint of system `key`, for the dispatcher.
pub async fn endpoint(
    conn: &impl ConnectionTrait,
    config: &Config,
    key: &str,
) -> Result<Option<Endpoint>, SystemError> {
    let row = entity::Entity::find_by_id(key)
        .one(conn)
        .await?
        .ok_or(SystemError::NotFound)?;
    let (Some(url), Some(sealed)) = (row.endpoint, row.secret_sealed) else {
        return Ok(None);
    };
    let secret = secret_bytes(config, &sealed)?;
    Ok(Some(Endpoint { url, secret }))
}

/// The signing secret of system `key` (its raw bytes), to verify its reports; `None` for a
/// system without a secret of its own.
pub async fn verifying_secret(
    conn: &impl ConnectionTrait,
    config: &Config,
    key: &str,
) -> Result<Option<Vec<u8>>, SystemError> {
    let row = entity::Entity::find_by_id(key)
        .one(conn)
        .await?
        .ok_or(SystemError::NotFound)?;
    row.secret_sealed
        .map(|sealed| secret_bytes(config, &sealed))
        .transpose()
}

fn secret_bytes(config: &Config, sealed: &str) -> Result<Vec<u8>, SystemError> {
    let key = sealing_key(config)?;
    let secret = crypto::open(&key, sealed)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| SystemError::Key("a system's secret does not open with this key".into()))?;
    parse_webhook_secrets(&secret)
        .ok()
        .and_then(|mut keys| keys.pop())
        .ok_or_else(|| SystemError::Key("a system's stored secret is not a whsec_ secret".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(types: &[RequestType], categories: &[&str]) -> System {
        System {
            key: "images".into(),
            name: "Image storage".into(),
            description: String::new(),
            endpoint: None,
            has_secret: false,
            request_types: types.to_vec(),
            categories: categories.iter().map(|c| String::from(*c)).collect(),
            allowance_days: 7,
            required: true,
            retired_at: None,
            created_at: clock::now(),
            updated_at: clock::now(),
        }
    }

    #[test]
    fn a_scoped_erasure_reaches_only_the_systems_holding_its_categories() {
        let images = system(&[RequestType::Erase], &["photos", "generated_images"]);
        assert!(images.reaches(RequestType::Erase, None));
        assert!(images.reaches(RequestType::Erase, Some(&["photos".into()])));
        assert!(!images.reaches(RequestType::Erase, Some(&["server_logs".into()])));
        assert!(!images.reaches(RequestType::Export, None));
        let retired = System {
            retired_at: Some(clock::now()),
            ..images
        };
        assert!(!retired.reaches(RequestType::Erase, None));
    }

    #[test]
    fn fields_are_checked_together() {
        let fields = SystemFields {
            name: " ".into(),
            description: String::new(),
            endpoint: Some("ftp://files.example".into()),
            request_types: vec![RequestType::Restrict],
            categories: vec!["Photos".into()],
            allowance_days: 0,
            required: true,
        };
        let errors = fields.validate().unwrap_err();
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "endpoint",
                "request_types",
                "categories",
                "allowance_days"
            ]
        );
    }
}
