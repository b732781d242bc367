//! Retention a person chooses ("you choose how long we keep your photos"): a rule may offer
//! periods, and a person picks one per category. Each choice is kept with its evidence (when,
//! through what, the browser), like a consent decision; the latest one counts while its rule
//! still offers it, and dates the person's items of that category instead of the rule's period.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use super::{RetentionError, Rule, items};
use crate::{db::Tx, error::FieldError};

/// The `retention_choices` table: every choice, newest last.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "retention_choices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub subject_id: String,
        pub category: String,
        /// One of the periods the rule offered.
        pub period: String,
        /// `portal` or `main_app`.
        pub channel: String,
        pub user_agent: Option<String>,
        /// Truncated or hashed as consent evidence is (`consent.ip_evidence`).
        pub ip: Option<String>,
        pub chosen_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::Model as Choice;

/// The periods a rule offers a person to choose from.
pub fn options(rule: &Rule) -> Vec<String> {
    rule.options
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default()
}

/// The rule as it applies to one person: with their chosen period when the rule still offers it.
pub fn effective(rule: &Rule, choice: Option<&str>) -> Rule {
    match choice {
        Some(period) if options(rule).iter().any(|o| o == period) => Rule {
            period: period.to_string(),
            ..rule.clone()
        },
        _ => rule.clone(),
    }
}

/// The latest choice of each of `subject_ids`, by (subject, category).
pub async fn latest(
    conn: &impl ConnectionTrait,
    subject_ids: &[&str],
) -> Result<HashMap<(String, String), String>, DbErr> {
    let mut latest = HashMap::new();
    for chunk in subject_ids.chunks(1000) {
        for choice in entity::Entity::find()
            .filter(entity::Column::SubjectId.is_in(chunk.iter().copied()))
            .order_by_asc(entity::Column::ChosenAt)
            .all(conn)
            .await?
        {
            latest.insert((choice.subject_id, choice.category), choice.period);
        }
    }
    Ok(latest)
}

/// A person's latest choice per category.
pub async fn of_subject(
    conn: &impl ConnectionTrait,
    subject_id: &str,
) -> Result<Vec<Choice>, DbErr> {
    let mut latest: HashMap<String, Choice> = HashMap::new();
    for choice in entity::Entity::find()
        .filter(entity::Column::SubjectId.eq(subject_id))
        .order_by_asc(entity::Column::ChosenAt)
        .all(conn)
        .await?
    {
        latest.insert(choice.category.clone(), choice);
    }
    let mut choices: Vec<Choice> = latest.into_values().collect();
    choices.sort_by(|a, b| a.category.cmp(&b.category));
    Ok(choices)
}

/// The categories that offer a choice, each with its rule and the person's current choice (one
/// the rule still offers).
pub async fn offered(
    conn: &impl ConnectionTrait,
    subject_id: Option<&str>,
) -> Result<Vec<(Rule, Option<Choice>)>, DbErr> {
    let chosen = match subject_id {
        Some(id) => of_subject(conn, id).await?,
        None => Vec::new(),
    };
    Ok(super::list(conn)
        .await?
        .into_iter()
        .filter_map(|rule| {
            let options = options(&rule);
            if options.is_empty() {
                return None;
            }
            let choice = chosen
                .iter()
                .find(|c| c.category == rule.category && options.contains(&c.period))
                .cloned();
            Some((rule, choice))
        })
        .collect())
}

/// How a choice was made.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub channel: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Records a person's choice for a category and dates their items of it again. Refused when
/// the category has no rule or the rule does not offer that period. Returns how many items were
/// dated.
pub async fn choose(
    tx: &mut Tx,
    subject_id: &str,
    category: &str,
    period: &str,
    evidence: Evidence,
    now: DateTime<Utc>,
) -> Result<u64, RetentionError> {
    let rule = super::get(&*tx, category).await?;
    let offered = options(&rule);
    if !offered.iter().any(|o| o == period) {
        return Err(RetentionError::Invalid(vec![FieldError::new(
            "period",
            if offered.is_empty() {
                "this category offers no choice".to_string()
            } else {
                format!("one of {}", offered.join(", "))
            },
        )]));
    }
    entity::Entity::insert(entity::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        subject_id: Set(subject_id.to_string()),
        category: Set(category.to_string()),
        period: Set(period.to_string()),
        channel: Set(evidence.channel),
        user_agent: Set(evidence.user_agent),
        ip: Set(evidence.ip),
        chosen_at: Set(now),
    })
    .exec_without_returning(&*tx)
    .await?;
    let rule = effective(&rule, Some(period));
    let mut dated = 0;
    for item in items::Entity::find()
        .filter(items::Column::SubjectId.eq(subject_id))
        .filter(items::Column::Category.eq(category))
        .filter(items::Column::ErasedAt.is_null())
        .filter(items::Column::PurgeBatchId.is_null())
        .all(&*tx)
        .await?
    {
        super::date_item(tx, &rule, &item).await?;
        dated += 1;
    }
    Ok(dated)
}
