//! Retention rules: how long each category of data is kept, what starts the clock, and what
//! happens when it runs out (GDPR Art 5(1)(e), PIPL Arts 19 and 47).
//!
//! Every registered data item carries its `purge_after`, computed from its category's rule when
//! it is recorded and recomputed, in batches, whenever the rule changes, so that shortening a
//! rule from `P90D` to `P30D` takes effect on the items already held.
//!
//! Transactions: this room owns `retention_rules`, `data_items` (see [`items`]),
//! `retention_choices` (see [`choices`]), `purge_runs` and `purge_batches`. Rule changes take
//! the edge's [`Tx`]; the purge run's walk and [`redate`] are jobs, one transaction per batch.
//! A whole run (this walk, Consentry's own data through each owning room's purge function, the
//! reviewers' digest) is an action: [`crate::actions::purges`].

pub mod api;
pub mod choices;
pub mod items;
pub mod model;

pub use model::RetentionAction;
pub mod purge;
pub mod register;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, prelude::Expr,
};

use crate::{
    audit::{self, Actor},
    clock,
    db::{Db, Tx},
    error::FieldError,
    period::Period,
    purpose,
    vocab::is_key,
};

/// The clock start meaning "when the item was created".
pub const CREATED: &str = "created";
/// Items recomputed per transaction when a rule changes.
const BATCH: u64 = 500;

/// The `retention_rules` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "retention_rules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub category: String,
        /// ISO 8601 duration in calendar units (`P30D`, `P3M`, `P1Y`).
        pub period: String,
        /// `created`, or the name of the event that starts the clock (`training_completed`).
        pub clock_start: String,
        pub action: super::model::RetentionAction,
        /// How long before the purge the person is told, if at all.
        pub notice_before: Option<String>,
        /// Whether the person is told after the purge.
        pub notify_after: bool,
        /// JSON `{"<language>": "<words>"}`: what the category is called in emails and pages.
        pub titles: Option<String>,
        /// JSON `["P30D", ...]`: periods a person may choose instead of `period`.
        pub options: Option<String>,
        /// Items under a held rule are never purged.
        pub legal_hold: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::Model as Rule;

/// What can go wrong with retention rules.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The named thing does not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("a purge run is in progress; try again when it has finished")]
    Busy,
    #[error("the item's purge was already sent to the main app")]
    Purging,
    #[error("Consentry's own data could not be purged: {0}")]
    OwnData(String),
    #[error("a rule for this category exists already")]
    Exists,
    #[error("the rule has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A rule as an admin writes it.
#[derive(Debug, Clone)]
pub struct RuleFields {
    pub period: String,
    pub clock_start: String,
    pub action: String,
    /// What the category is called, per language tag.
    pub titles: std::collections::BTreeMap<String, String>,
    /// Periods a person may choose instead of `period`.
    pub options: Vec<String>,
    pub notice_before: Option<String>,
    pub notify_after: bool,
    pub legal_hold: bool,
}

impl RuleFields {
    /// Checks the fields and returns the action they name.
    fn validate(&self) -> Result<RetentionAction, RetentionError> {
        let mut errors = Vec::new();
        match self.period.parse::<Period>() {
            Err(message) => errors.push(FieldError::new("period", message)),
            Ok(period) if period.is_zero() && self.clock_start == CREATED => {
                errors.push(FieldError::new(
                    "period",
                    "a zero period needs an event clock such as `processing_completed`: data \
                     kept for no time from its creation would never be kept at all",
                ))
            }
            Ok(_) => {}
        }
        match self.notice_before.as_deref().map(str::parse::<Period>) {
            Some(Err(message)) => errors.push(FieldError::new("notice_before", message)),
            Some(Ok(notice)) if notice.is_zero() => errors.push(FieldError::new(
                "notice_before",
                "leave it out for no notice",
            )),
            _ => {}
        }
        for (i, option) in self.options.iter().enumerate() {
            match option.parse::<Period>() {
                Err(message) => errors.push(FieldError::new(format!("options.{i}"), message)),
                Ok(p) if p.is_zero() && self.clock_start == CREATED => errors.push(
                    FieldError::new(format!("options.{i}"), "a zero period needs an event clock"),
                ),
                Ok(_) => {}
            }
        }
        if self.options.len() > 10 {
            errors.push(FieldError::new("options", "at most 10 periods"));
        }
        for (language, title) in &self.titles {
            if !crate::policy::document::is_language(language) {
                errors.push(FieldError::new(
                    format!("titles.{language}"),
                    "not a language tag such as `en` or `zh-CN`",
                ));
            } else if title.trim().is_empty() || title.chars().count() > 200 {
                errors.push(FieldError::new(
                    format!("titles.{language}"),
                    "1-200 characters",
                ));
            }
        }
        if !is_key(&self.clock_start) {
            errors.push(FieldError::new(
                "clock_start",
                "`created` or an event name of a-z, 0-9, `-` and `_`",
            ));
        }
        let action = match self.action.as_str() {
            "delete" => Some(RetentionAction::Delete),
            "anonymize" => Some(RetentionAction::Anonymize),
            _ => None,
        };
        match action {
            Some(action) if errors.is_empty() => Ok(action),
            _ => {
                if action.is_none() {
                    errors.push(FieldError::new("action", "`delete` or `anonymize`"));
                }
                Err(RetentionError::Invalid(errors))
            }
        }
    }
}

fn options_json(options: &[String]) -> Option<String> {
    (!options.is_empty()).then(|| serde_json::to_string(options).unwrap_or_default())
}

fn titles_json(titles: &std::collections::BTreeMap<String, String>) -> Option<String> {
    (!titles.is_empty()).then(|| serde_json::to_string(titles).unwrap_or_default())
}

/// What a category is called for a person with `locale`: the rule's words in that language, or
/// in English, or the category's key when the rule names none.
pub fn category_title(rule: Option<&Rule>, category: &str, locale: Option<&str>) -> String {
    let language = crate::notify::templates::language_for(locale.unwrap_or("en"));
    rule.and_then(|r| r.titles.as_deref())
        .and_then(|t| serde_json::from_str::<std::collections::BTreeMap<String, String>>(t).ok())
        .and_then(|t| t.get(language).or_else(|| t.get("en")).cloned())
        .unwrap_or_else(|| category.to_string())
}

/// When an item falls due under `rule`: its clock start plus the period, at the same time of
/// day. `None` while an event-started clock has not started.
pub fn purge_after(rule: &Rule, item: &items::Model) -> Option<DateTime<Utc>> {
    due_under(
        rule,
        item.created_at,
        item.clock_event.as_deref(),
        item.clock_started_at,
    )
}

/// When an item created at `created_at`, whose clock event (if any) happened at `started`, falls
/// due under `rule`.
pub(crate) fn due_under(
    rule: &Rule,
    created_at: DateTime<Utc>,
    clock_event: Option<&str>,
    started: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let start = if rule.clock_start == CREATED {
        created_at
    } else if clock_event == Some(rule.clock_start.as_str()) {
        started?
    } else {
        return None;
    };
    rule.period.parse::<Period>().ok()?.after_instant(start)
}

/// Every rule, by category.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<Rule>, DbErr> {
    entity::Entity::find()
        .order_by_asc(entity::Column::Category)
        .all(conn)
        .await
}

/// The rule of a category.
pub async fn get(conn: &impl ConnectionTrait, category: &str) -> Result<Rule, RetentionError> {
    entity::Entity::find_by_id(category)
        .one(conn)
        .await?
        .ok_or(RetentionError::NotFound("retention rule"))
}

/// Creates a rule; the edge then dates the category's items by it with [`redate`] after the
/// commit.
pub async fn create(
    tx: &mut Tx,
    category: &str,
    fields: RuleFields,
    actor: &Actor,
) -> Result<Rule, RetentionError> {
    if !is_key(category) {
        return Err(RetentionError::Invalid(vec![FieldError::new(
            "category",
            "1-64 characters from a-z, 0-9, `-` and `_`",
        )]));
    }
    let action = fields.validate()?;
    if entity::Entity::find_by_id(category)
        .one(&*tx)
        .await?
        .is_some()
    {
        return Err(RetentionError::Exists);
    }
    let now = clock::now();
    let rule = sea_orm::ActiveModelTrait::insert(
        entity::ActiveModel {
            category: Set(category.to_string()),
            period: Set(fields.period),
            clock_start: Set(fields.clock_start),
            action: Set(action),
            titles: Set(titles_json(&fields.titles)),
            options: Set(options_json(&fields.options)),
            notice_before: Set(fields.notice_before),
            notify_after: Set(fields.notify_after),
            legal_hold: Set(fields.legal_hold),
            created_at: Set(now),
            updated_at: Set(now),
        },
        &*tx,
    )
    .await?;
    audit::record(
        &*tx,
        actor,
        "retention_rule.created",
        audit::Target::new("retention_rule", category),
        serde_json::json!({"period": rule.period, "clock_start": rule.clock_start}),
    )
    .await?;
    Ok(rule)
}

/// Changes a rule, audited with the old and the new values; the edge then dates the category's
/// items again with [`redate`] after the commit.
pub async fn update(
    tx: &mut Tx,
    category: &str,
    fields: RuleFields,
    actor: &Actor,
) -> Result<Rule, RetentionError> {
    let action = fields.validate()?;
    let old = get(&*tx, category).await?;
    let mut row: entity::ActiveModel = old.clone().into();
    row.period = Set(fields.period);
    row.clock_start = Set(fields.clock_start);
    row.action = Set(action);
    row.titles = Set(titles_json(&fields.titles));
    row.options = Set(options_json(&fields.options));
    row.notice_before = Set(fields.notice_before);
    row.notify_after = Set(fields.notify_after);
    row.legal_hold = Set(fields.legal_hold);
    row.updated_at = Set(clock::now());
    let rule = sea_orm::ActiveModelTrait::update(row, &*tx).await?;
    audit::record(
        &*tx,
        actor,
        "retention_rule.updated",
        audit::Target::new("retention_rule", category),
        serde_json::json!({
            "period": {"from": old.period, "to": rule.period},
            "clock_start": {"from": old.clock_start, "to": rule.clock_start},
            "legal_hold": {"from": old.legal_hold, "to": rule.legal_hold},
        }),
    )
    .await?;
    Ok(rule)
}

/// Deletes a rule; the category's items lose their date (and show up as a coverage gap).
pub async fn delete(tx: &mut Tx, category: &str, actor: &Actor) -> Result<(), RetentionError> {
    let rule = get(&*tx, category).await?;
    entity::Entity::delete_by_id(category).exec(&*tx).await?;
    items::Entity::update_many()
        .col_expr(
            items::Column::PurgeAfter,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(items::Column::Category.eq(category))
        .exec(&*tx)
        .await?;
    audit::record(
        &*tx,
        actor,
        "retention_rule.deleted",
        audit::Target::new("retention_rule", category),
        serde_json::json!({"period": rule.period}),
    )
    .await?;
    Ok(())
}

/// Recomputes `purge_after` of every item in a rule's category, one batch per transaction, in
/// id order, so the work holds no long transaction and memory stays flat. A job of its own,
/// run by the edge that changed the rule once that change committed.
pub async fn redate(db: &Db, rule: &Rule) -> Result<u64, DbErr> {
    let mut after: Option<String> = None;
    let mut done = 0;
    loop {
        let txn = db.begin().await?;
        let mut query = items::Entity::find()
            .filter(items::Column::Category.eq(&rule.category))
            .filter(items::Column::ErasedAt.is_null());
        if let Some(id) = &after {
            query = query.filter(items::Column::Id.gt(id.as_str()));
        }
        let batch = query
            .order_by_asc(items::Column::Id)
            .limit(BATCH)
            .all(&txn)
            .await?;
        let people: Vec<&str> = batch.iter().map(|i| i.subject_id.as_str()).collect();
        let chosen = choices::latest(&txn, &people).await?;
        for item in &batch {
            let choice = chosen.get(&(item.subject_id.clone(), item.category.clone()));
            let rule = choices::effective(rule, choice.map(String::as_str));
            date_item(&txn, &rule, item).await?;
        }
        txn.commit().await?;
        done += batch.len() as u64;
        after = batch.last().map(|i| i.id.clone());
        if (batch.len() as u64) < BATCH {
            return Ok(done);
        }
    }
}

pub(crate) async fn date_item(tx: &Tx, rule: &Rule, item: &items::Model) -> Result<(), DbErr> {
    let due = purge_after(rule, item);
    if due != item.purge_after {
        items::Entity::update_many()
            .col_expr(items::Column::PurgeAfter, Expr::value(due))
            .filter(items::Column::Id.eq(&item.id))
            .exec(tx)
            .await?;
    }
    Ok(())
}

/// Dates one item by its category's rule, in the caller's transaction (after `data.recorded`).
pub async fn date_recorded(tx: &Tx, subject_id: &str, external_ref: &str) -> Result<(), DbErr> {
    let Some(item) = items::Entity::find()
        .filter(items::Column::SubjectId.eq(subject_id))
        .filter(items::Column::ExternalRef.eq(external_ref))
        .one(tx)
        .await?
    else {
        return Ok(());
    };
    if let Some(rule) = entity::Entity::find_by_id(item.category.as_str())
        .one(tx)
        .await?
    {
        let chosen = choices::latest(tx, &[subject_id]).await?;
        let choice = chosen.get(&(subject_id.to_string(), item.category.clone()));
        date_item(
            tx,
            &choices::effective(&rule, choice.map(String::as_str)),
            &item,
        )
        .await?;
    }
    Ok(())
}

/// Categories that data is held or promised under without a retention rule: those of
/// registered items and those named by purposes.
pub async fn gaps(conn: &impl ConnectionTrait) -> Result<Vec<Gap>, DbErr> {
    let ruled: Vec<String> = list(conn).await?.into_iter().map(|r| r.category).collect();
    let mut gaps: std::collections::BTreeMap<String, Gap> = Default::default();
    let held: Vec<(String, i64)> = items::Entity::find()
        .select_only()
        .column(items::Column::Category)
        .column_as(items::Column::Id.count(), "items")
        .filter(items::Column::ErasedAt.is_null())
        .group_by(items::Column::Category)
        .into_tuple()
        .all(conn)
        .await?;
    for (category, count) in held {
        if !ruled.contains(&category) {
            gaps.entry(category.clone())
                .or_insert_with(|| Gap::new(category))
                .items = count;
        }
    }
    for purpose in purpose::list(conn, false).await? {
        for category in &purpose.data_categories {
            if !ruled.contains(category) {
                gaps.entry(category.clone())
                    .or_insert_with(|| Gap::new(category.clone()))
                    .purposes
                    .push(purpose.key.clone());
            }
        }
    }
    Ok(gaps.into_values().collect())
}

/// A category without a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub category: String,
    /// Items held in it.
    pub items: i64,
    /// Purposes that name it.
    pub purposes: Vec<String>,
}

impl Gap {
    fn new(category: String) -> Self {
        Self {
            category,
            items: 0,
            purposes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(period: &str, clock_start: &str) -> Rule {
        let now = clock::now();
        Rule {
            category: "photos".into(),
            period: period.into(),
            clock_start: clock_start.into(),
            action: RetentionAction::Delete,
            titles: None,
            options: None,
            notice_before: None,
            notify_after: false,
            legal_hold: false,
            created_at: now,
            updated_at: now,
        }
    }

    fn item(created: &str, event: Option<(&str, &str)>) -> items::Model {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        items::Model {
            id: "i".into(),
            subject_id: "s".into(),
            category: "photos".into(),
            external_ref: "r".into(),
            created_at: at(created),
            clock_event: event.map(|(e, _)| e.to_string()),
            clock_started_at: event.map(|(_, t)| at(t)),
            purge_after: None,
            erased_at: None,
            recorded_at: at(created),
            legal_hold: false,
            noticed_at: None,
            purge_run_id: None,
            purge_batch_id: None,
            purged_at: None,
        }
    }

    #[test]
    fn the_clock_starts_at_creation_or_at_the_named_event() {
        let due = purge_after(
            &rule("P30D", "created"),
            &item("2026-01-10T08:00:00Z", None),
        );
        assert_eq!(due, Some("2026-02-09T08:00:00Z".parse().unwrap()));
        // Three months from 30 November end on the last day of February.
        let due = purge_after(&rule("P3M", "created"), &item("2026-11-30T12:00:00Z", None));
        assert_eq!(due, Some("2027-02-28T12:00:00Z".parse().unwrap()));
        let training = rule("P6M", "training_completed");
        assert_eq!(
            purge_after(&training, &item("2026-01-01T00:00:00Z", None)),
            None
        );
        let done = item(
            "2026-01-01T00:00:00Z",
            Some(("training_completed", "2026-03-15T10:00:00Z")),
        );
        assert_eq!(
            purge_after(&training, &done),
            Some("2026-09-15T10:00:00Z".parse().unwrap())
        );
    }
}
