//! The events the main app sends, their data, and what each does.

use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::{Enum, Object, Union, registry::Registry, types::ParseFromJSON};
use sea_orm::ActiveEnum;
use serde_json::{Value, json};
use validator::ValidateEmail;

use crate::vocab::CountryCode;
use crate::{
    age::AgeBand,
    audit::{self, Actor, Target},
    clock,
    config::Config,
    consent::{self, ConsentActor, Decision, PolicyRef, RecordRequest},
    db::Tx,
    error::{ApiError, FieldError, field_named_in},
    guardian,
    policy::{self, PolicyStatus},
    request::{self, RequestType},
    retention,
    retention::items,
    subject::{self, AgeStatus, Profile},
    vocab::is_key,
};

/// The envelope every event comes in, as read: `data` is parsed once `type` is known, so that
/// an unknown type is told apart from invalid data.
#[derive(Object)]
#[oai(rename = "RawEnvelope")]
pub struct Envelope {
    #[oai(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub data: Value,
}

/// The envelope every event comes in, as documented in the OpenAPI: `data` has the schema of
/// its `type`.
#[derive(Object)]
#[oai(rename = "Envelope")]
pub struct EnvelopeSchema {
    #[oai(rename = "type")]
    pub kind: EventType,
    /// When it happened in the main app.
    pub occurred_at: DateTime<Utc>,
    pub data: EventData,
}

/// The kinds of event the main app sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum EventType {
    #[oai(rename = "subject.upserted")]
    SubjectUpserted,
    #[oai(rename = "subject.deleted")]
    SubjectDeleted,
    #[oai(rename = "consent.recorded")]
    ConsentRecorded,
    #[oai(rename = "data.recorded")]
    DataRecorded,
    #[oai(rename = "data.recorded_many")]
    DataRecordedMany,
    #[oai(rename = "data.erased")]
    DataErased,
    #[oai(rename = "policy.accepted")]
    PolicyAccepted,
}

/// The data of each event type.
#[derive(Union)]
#[oai(one_of)]
pub enum EventData {
    SubjectUpserted(SubjectUpsertedEvent),
    SubjectDeleted(SubjectDeletedEvent),
    ConsentRecorded(ConsentRecordedEvent),
    DataRecorded(DataRecordedEvent),
    DataRecordedMany(DataRecordedManyEvent),
    DataErased(DataErasedEvent),
    PolicyAccepted(PolicyAcceptedEvent),
}

/// `subject.upserted`: a person was created or changed in the main app.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SubjectUpsertedEvent {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    #[oai(validator(max_length = 320))]
    pub email: Option<String>,
    /// What the app calls the person (a child's first name, say): a guardian's email and page
    /// name the child with it.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: Option<String>,
    #[oai(validator(min_length = 2, max_length = 16))]
    pub locale: Option<String>,
    pub jurisdiction: Option<CountryCode>,
    pub birth_date: Option<NaiveDate>,
    /// When no birth date is known.
    pub age_band: Option<AgeBand>,
    /// A parent or guardian to ask for consent when the person is a minor (ignored otherwise).
    #[oai(validator(max_length = 320))]
    pub guardian_email: Option<String>,
}

/// `subject.deleted`: the person cancelled their account; an erasure request is opened.
#[derive(Object)]
pub struct SubjectDeletedEvent {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
}

/// `consent.recorded`: decisions captured in the main app's own interface.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConsentRecordedEvent {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    #[oai(validator(min_items = 1, max_items = 50))]
    pub decisions: Vec<EventDecision>,
    #[oai(validator(minimum(value = "1")))]
    pub policy_version: i32,
    #[oai(
        default = "default_policy_key",
        validator(min_length = 1, max_length = 64)
    )]
    pub policy_key: String,
    #[oai(
        default = "default_channel",
        validator(min_length = 1, max_length = 32)
    )]
    pub channel: String,
    #[oai(validator(min_length = 2, max_length = 16))]
    pub language: Option<String>,
    #[oai(validator(max_length = 1024))]
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// One decision in a `consent.recorded` event.
#[derive(Object)]
pub struct EventDecision {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub purpose: String,
    pub granted: bool,
}

/// `data.recorded`: the main app stored an item about a person, or an item's retention clock
/// started (e.g. `clock_event: training_completed`).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DataRecordedEvent {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    /// The main app's id for the item.
    #[oai(validator(min_length = 1, max_length = 255))]
    pub item_ref: String,
    #[oai(validator(pattern = "^[a-z0-9_-]{1,64}$"))]
    pub category: String,
    /// When the item was created; defaults to the event's time.
    pub created_at: Option<DateTime<Utc>>,
    #[oai(validator(pattern = "^[a-z0-9_-]{1,64}$"))]
    pub clock_event: Option<String>,
}

/// `data.recorded_many`: many `data.recorded` at once (up to 5,000 items, within the body
/// limit), applied together or not at all. An item named twice counts once, as its last entry.
#[derive(Object, serde::Deserialize)]
pub struct DataRecordedManyEvent {
    #[oai(validator(min_items = 1, max_items = 5000))]
    pub items: Vec<BulkItem>,
}

/// One item of `data.recorded_many`, with the fields and rules of `data.recorded`:
/// `category` and `clock_event` take 1-64 characters from a-z, 0-9, `-` and `_`.
#[derive(Object, serde::Deserialize)]
#[oai(skip_serializing_if_is_none)]
pub struct BulkItem {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub item_ref: String,
    #[oai(validator(min_length = 1, max_length = 64))]
    pub category: String,
    pub created_at: Option<DateTime<Utc>>,
    #[oai(validator(min_length = 1, max_length = 64))]
    pub clock_event: Option<String>,
}

impl DataRecordedManyEvent {
    /// Parses thousands of items with serde and checks them by hand: the schema validators
    /// compile their patterns item by item, which costs more than the database work.
    fn parse(data: Value) -> Result<Self, ApiError> {
        let event: Self = serde_json::from_value(data).map_err(|e| {
            ApiError::validation(vec![FieldError::new("data.items", e.to_string())])
        })?;
        let mut errors = Vec::new();
        if event.items.is_empty() || event.items.len() > items::MAX_BULK {
            errors.push(FieldError::new(
                "data.items",
                format!("1 to {} items", items::MAX_BULK),
            ));
        }
        let id = |s: &str| !s.is_empty() && s.len() <= 255;
        for (i, item) in event.items.iter().enumerate() {
            let field = |name: &str| format!("data.items.{i}.{name}");
            if !id(&item.external_id) {
                errors.push(FieldError::new(field("external_id"), "1-255 characters"));
            }
            if !id(&item.item_ref) {
                errors.push(FieldError::new(field("item_ref"), "1-255 characters"));
            }
            if !is_key(&item.category) {
                errors.push(FieldError::new(field("category"), KEY_RULE));
            }
            if item.clock_event.as_deref().is_some_and(|e| !is_key(e)) {
                errors.push(FieldError::new(field("clock_event"), KEY_RULE));
            }
            if errors.len() >= 50 {
                break;
            }
        }
        if errors.is_empty() {
            Ok(event)
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

/// What a category or clock event may be named.
const KEY_RULE: &str = "1-64 characters from a-z, 0-9, `-` and `_`";

/// `data.erased`: the main app deleted an item.
#[derive(Object)]
pub struct DataErasedEvent {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub item_ref: String,
}

/// `policy.accepted`: the person accepted a policy version in the main app.
#[derive(Object)]
pub struct PolicyAcceptedEvent {
    #[oai(validator(min_length = 1, max_length = 255))]
    pub external_id: String,
    #[oai(
        default = "default_policy_key",
        validator(min_length = 1, max_length = 64)
    )]
    pub policy_key: String,
    #[oai(validator(minimum(value = "1")))]
    pub policy_version: i32,
}

fn default_policy_key() -> String {
    crate::policy::DEFAULT_KEY.into()
}

fn default_channel() -> String {
    "main_app".into()
}

/// Parses an event's data with the schema's validators. Missing fields are named one by one
/// (the parser stops at the first); other failures name the field when the parser does.
fn parse<T: ParseFromJSON>(data: Value) -> Result<T, ApiError> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let missing: Vec<FieldError> = registry
        .schemas
        .get(&*T::name())
        .map(|schema| {
            schema
                .required
                .iter()
                .filter(|f| data.get(**f).is_none_or(Value::is_null))
                .map(|f| FieldError::new(format!("data.{f}"), "required"))
                .collect()
        })
        .unwrap_or_default();
    if !missing.is_empty() {
        return Err(ApiError::validation(missing));
    }
    T::parse_from_json(Some(data)).map_err(|e| {
        let field = field_named_in(e.message()).map_or("data".to_string(), |f| format!("data.{f}"));
        ApiError::validation(vec![FieldError::new(field, e.message())])
    })
}

/// A verified event whose data is parsed and checked, ready to apply.
pub struct Event {
    /// The type as sent (a known one).
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    data: EventData,
}

/// Parses and checks an event's data before anything is written, so that a refused event
/// leaves no trace, not even its id.
pub fn parse_event(envelope: Envelope) -> Result<Event, ApiError> {
    let kind =
        EventType::parse_from_json(Some(Value::String(envelope.kind.clone()))).map_err(|_| {
            ApiError::validation(vec![FieldError::new(
                "type",
                format!("unknown event type `{}`", envelope.kind),
            )])
        })?;
    // The consent script's anonymous visitors have ids of their own in the ledger; a person the
    // main app names never shares one.
    if envelope
        .data
        .get("external_id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.starts_with(crate::experience::VISITOR_PREFIX))
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "data.external_id",
            "a person's id may not start with `visitor:`, which names the consent script's visitors",
        )]));
    }
    let data = match kind {
        EventType::SubjectUpserted => {
            let e: SubjectUpsertedEvent = parse(envelope.data)?;
            let invalid: Vec<FieldError> = [
                ("data.email", &e.email),
                ("data.guardian_email", &e.guardian_email),
            ]
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.validate_email()))
            .map(|(field, _)| FieldError::new(field, "not an email address"))
            .collect();
            if !invalid.is_empty() {
                return Err(ApiError::validation(invalid));
            }
            EventData::SubjectUpserted(e)
        }
        EventType::SubjectDeleted => EventData::SubjectDeleted(parse(envelope.data)?),
        EventType::ConsentRecorded => EventData::ConsentRecorded(parse(envelope.data)?),
        EventType::DataRecorded => EventData::DataRecorded(parse(envelope.data)?),
        EventType::DataRecordedMany => {
            EventData::DataRecordedMany(DataRecordedManyEvent::parse(envelope.data)?)
        }
        EventType::DataErased => EventData::DataErased(parse(envelope.data)?),
        EventType::PolicyAccepted => EventData::PolicyAccepted(parse(envelope.data)?),
    };
    Ok(Event {
        kind: envelope.kind,
        occurred_at: clock::truncate(envelope.occurred_at),
        data,
    })
}

/// Applies one parsed event in the caller's transaction and returns the answer to store and
/// send.
pub async fn apply(tx: &mut Tx, config: &Config, event: Event) -> Result<Value, ApiError> {
    let occurred_at = event.occurred_at;
    match event.data {
        EventData::SubjectUpserted(e) => {
            let subject = subject::upsert(
                tx,
                config,
                &e.external_id,
                Profile {
                    email: e.email,
                    display_name: e.name,
                    locale: e.locale,
                    jurisdiction: e.jurisdiction,
                    birth_date: e.birth_date,
                    age_band: e.age_band,
                },
                clock::now().date_naive(),
            )
            .await?;
            let guardian_requested = match &e.guardian_email {
                Some(email) if subject.age_status == AgeStatus::MinorGuardianPending => {
                    guardian::request(tx, config, &subject, email, &Actor::MainApp).await?;
                    true
                }
                _ => false,
            };
            audit::record(
                &*tx,
                &Actor::MainApp,
                "subject.upserted",
                Target::new("subject", &subject.id),
                json!({"age_status": subject.age_status.to_value()}),
            )
            .await?;
            Ok(json!({
                "subject": subject.external_id,
                "age_status": subject.age_status.to_value(),
                "guardian_requested": guardian_requested,
            }))
        }
        EventData::SubjectDeleted(e) => {
            let subject = subject::find_or_create_locked(tx, &e.external_id).await?;
            let request = request::intake::open_verified(
                tx,
                config,
                &subject,
                request::intake::Intake {
                    kind: RequestType::Erase,
                    details: request::intake::Details {
                        reason: Some("account_cancelled".into()),
                        ..Default::default()
                    },
                    locale: None,
                    jurisdiction: None,
                },
                "main_app",
                &Actor::MainApp,
            )
            .await
            .map_err(ApiError::from)?;
            Ok(json!({
                "request_id": request.id,
                "status": request.status.to_value(),
                "duplicate_of": request.duplicate_of,
            }))
        }
        EventData::ConsentRecorded(e) => {
            let recorded = consent::record(
                tx,
                config,
                RecordRequest {
                    external_id: e.external_id,
                    decisions: e
                        .decisions
                        .into_iter()
                        .map(|d| Decision {
                            purpose: d.purpose,
                            granted: d.granted,
                        })
                        .collect(),
                    policy: PolicyRef {
                        key: e.policy_key,
                        version: e.policy_version,
                        id: None,
                    },
                    actor: ConsentActor::MainApp,
                    channel: e.channel,
                    language: e.language,
                    jurisdiction: None,
                    user_agent: e.user_agent,
                    ip: e.ip,
                    occurred_at: Some(occurred_at),
                    reason: None,
                    audited_by: None,
                },
            )
            .await?;
            Ok(
                json!({"events": recorded.iter().filter_map(|r| r.event_id.clone()).collect::<Vec<_>>()}),
            )
        }
        EventData::DataRecorded(e) => {
            let subject = subject::find_or_create_locked(tx, &e.external_id).await?;
            let clock_started_at = e.clock_event.as_ref().map(|_| occurred_at);
            items::record(
                tx,
                &subject.id,
                items::Recorded {
                    category: e.category,
                    external_ref: e.item_ref.clone(),
                    created_at: e.created_at.map(clock::truncate).unwrap_or(occurred_at),
                    clock_event: e.clock_event,
                    clock_started_at,
                },
            )
            .await?;
            retention::date_recorded(tx, &subject.id, &e.item_ref).await?;
            Ok(json!({"item_ref": e.item_ref}))
        }
        EventData::DataRecordedMany(e) => {
            let mut latest: std::collections::HashMap<(String, String), BulkItem> =
                std::collections::HashMap::with_capacity(e.items.len());
            for item in e.items {
                latest.insert((item.external_id.clone(), item.item_ref.clone()), item);
            }
            let mut people: Vec<&str> = latest.keys().map(|(who, _)| who.as_str()).collect();
            people.sort_unstable();
            people.dedup();
            let ids = subject::find_or_create_many(tx, &people).await?;
            let items: Vec<(String, items::Recorded)> = latest
                .into_values()
                .filter_map(|i| {
                    let subject_id = ids.get(&i.external_id)?.clone();
                    Some((
                        subject_id,
                        items::Recorded {
                            category: i.category,
                            external_ref: i.item_ref,
                            created_at: i.created_at.map(clock::truncate).unwrap_or(occurred_at),
                            clock_started_at: i.clock_event.as_ref().map(|_| occurred_at),
                            clock_event: i.clock_event,
                        },
                    ))
                })
                .collect();
            let recorded = items::record_many(tx, items).await?;
            Ok(json!({"recorded": recorded}))
        }
        EventData::DataErased(e) => {
            let subject = subject::find_or_create_locked(tx, &e.external_id).await?;
            let n = items::erased(tx, &subject.id, &e.item_ref, occurred_at).await?;
            Ok(json!({"item_ref": e.item_ref, "erased": n}))
        }
        EventData::PolicyAccepted(e) => {
            let subject = subject::find_or_create_locked(tx, &e.external_id).await?;
            let doc = policy::of_version(
                &*tx,
                &e.policy_key,
                e.policy_version,
                subject.jurisdiction.as_deref(),
                subject.locale.as_deref(),
            )
            .await?
            .filter(|d| d.status == PolicyStatus::Published)
            .ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(
                    "data.policy_version",
                    "not a published version of this policy",
                )])
            })?;
            let id =
                subject::record_acceptance(tx, &subject.id, &doc, "main_app", occurred_at).await?;
            Ok(json!({"acceptance_id": id}))
        }
    }
}
