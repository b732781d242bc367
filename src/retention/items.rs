//! The data-item registry: what the main app stores about each person (an uploaded photo, a
//! generated image, a log bundle), registered by its `data.recorded` and `data.erased` events,
//! so that retention can be enforced and access requests can list it. Retention owns the
//! `data_items` table: every write to it is a function of this room.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, prelude::Expr, sea_query::OnConflict,
};

use crate::db::{ROWS_PER_STATEMENT, Tx};

/// The `data_items` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "data_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub subject_id: String,
        /// The data category, e.g. `generated_images`, `server_logs`.
        pub category: String,
        /// The main app's id for the item.
        pub external_ref: String,
        pub created_at: DateTimeUtc,
        /// The event that starts the retention clock (e.g. `training_completed`), if not
        /// creation.
        pub clock_event: Option<String>,
        pub clock_started_at: Option<DateTimeUtc>,
        /// When retention expires; set by the retention rules.
        pub purge_after: Option<DateTimeUtc>,
        pub erased_at: Option<DateTimeUtc>,
        pub recorded_at: DateTimeUtc,
        /// Held items are never purged, whatever their date.
        pub legal_hold: bool,
        /// When the person was told of the coming purge; a notice goes out once per item.
        pub noticed_at: Option<DateTimeUtc>,
        /// The purge run and batch that asked the main app to purge the item.
        pub purge_run_id: Option<String>,
        pub purge_batch_id: Option<String>,
        /// When the main app acknowledged the purge.
        pub purged_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::{Column, Entity, Model, Model as DataItem};

/// A `data.recorded` event: a new item, or a clock event for a known one.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub category: String,
    pub external_ref: String,
    pub created_at: DateTime<Utc>,
    pub clock_event: Option<String>,
    pub clock_started_at: Option<DateTime<Utc>>,
}

/// Registers an item, or updates its clock when it is known already.
pub async fn record(tx: &Tx, subject_id: &str, item: Recorded) -> Result<(), DbErr> {
    entity::Entity::insert(new_row(subject_id, item))
        .on_conflict(
            OnConflict::columns([entity::Column::SubjectId, entity::Column::ExternalRef])
                .update_columns([entity::Column::ClockEvent, entity::Column::ClockStartedAt])
                .to_owned(),
        )
        .exec_without_returning(tx)
        .await?;
    Ok(())
}

/// Most items one bulk registration takes.
pub const MAX_BULK: usize = 5000;

/// Registers many items (or updates their clocks), each dated by its category's rule, with a
/// few statements per thousand items instead of several per item. An item already known keeps
/// the creation time it was first registered with.
pub async fn record_many(tx: &Tx, items: Vec<(String, Recorded)>) -> Result<u64, DbErr> {
    let rules: std::collections::HashMap<String, super::Rule> = super::list(tx)
        .await?
        .into_iter()
        .map(|r| (r.category.clone(), r))
        .collect();
    let mut recorded = 0;
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let chunk: Vec<(String, Recorded)> = items.by_ref().take(ROWS_PER_STATEMENT).collect();
        let known: std::collections::HashMap<(String, String), DateTime<Utc>> =
            entity::Entity::find()
                .filter(sea_orm::sea_query::ExprTrait::in_tuples(
                    sea_orm::sea_query::Expr::tuple([
                        Expr::col(entity::Column::SubjectId),
                        Expr::col(entity::Column::ExternalRef),
                    ]),
                    chunk
                        .iter()
                        .map(|(s, i)| (s.clone(), i.external_ref.clone())),
                ))
                .all(tx)
                .await?
                .into_iter()
                .map(|i| ((i.subject_id, i.external_ref), i.created_at))
                .collect();
        let people: Vec<&str> = chunk.iter().map(|(s, _)| s.as_str()).collect();
        let chosen = super::choices::latest(tx, &people).await?;
        let rows: Vec<entity::ActiveModel> = chunk
            .into_iter()
            .map(|(subject_id, item)| {
                let created_at = known
                    .get(&(subject_id.clone(), item.external_ref.clone()))
                    .copied()
                    .unwrap_or(item.created_at);
                let due = rules.get(&item.category).and_then(|rule| {
                    let choice = chosen.get(&(subject_id.clone(), item.category.clone()));
                    let rule = super::choices::effective(rule, choice.map(String::as_str));
                    super::due_under(
                        &rule,
                        created_at,
                        item.clock_event.as_deref(),
                        item.clock_started_at,
                    )
                });
                let mut row = new_row(&subject_id, item);
                row.purge_after = Set(due);
                row
            })
            .collect();
        recorded += rows.len() as u64;
        entity::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([entity::Column::SubjectId, entity::Column::ExternalRef])
                    .update_columns([
                        entity::Column::ClockEvent,
                        entity::Column::ClockStartedAt,
                        entity::Column::PurgeAfter,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(tx)
            .await?;
    }
    Ok(recorded)
}

/// A newly registered item: not yet dated by a rule, held, noticed or purged.
pub fn new_row(subject_id: &str, item: Recorded) -> entity::ActiveModel {
    entity::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        subject_id: Set(subject_id.to_string()),
        category: Set(item.category),
        external_ref: Set(item.external_ref),
        created_at: Set(item.created_at),
        clock_event: Set(item.clock_event),
        clock_started_at: Set(item.clock_started_at),
        purge_after: Set(None),
        erased_at: Set(None),
        recorded_at: Set(crate::clock::now()),
        legal_hold: Set(false),
        noticed_at: Set(None),
        purge_run_id: Set(None),
        purge_batch_id: Set(None),
        purged_at: Set(None),
    }
}

/// Marks an item erased by the main app. Unknown items are ignored: the main app may erase
/// data it never registered.
pub async fn erased(
    tx: &Tx,
    subject_id: &str,
    external_ref: &str,
    at: DateTime<Utc>,
) -> Result<u64, DbErr> {
    Ok(entity::Entity::update_many()
        .col_expr(entity::Column::ErasedAt, Expr::value(at))
        .filter(entity::Column::SubjectId.eq(subject_id))
        .filter(entity::Column::ExternalRef.eq(external_ref))
        .filter(entity::Column::ErasedAt.is_null())
        .exec(tx)
        .await?
        .rows_affected)
}

/// Marks every item of an erased person erased by Consentry.
pub async fn erase_all_of(tx: &mut Tx, subject_id: &str, at: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(entity::Entity::update_many()
        .col_expr(entity::Column::ErasedAt, Expr::value(at))
        .filter(entity::Column::SubjectId.eq(subject_id))
        .filter(entity::Column::ErasedAt.is_null())
        .exec(&*tx)
        .await?
        .rows_affected)
}

/// Marks a person's items in `categories` or among `item_refs` erased by Consentry (a scoped
/// erasure), and returns how many went per category.
pub async fn erase_scope(
    tx: &mut Tx,
    subject_id: &str,
    categories: &[String],
    item_refs: &[String],
    at: DateTime<Utc>,
) -> Result<Vec<(String, u64)>, DbErr> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for item in in_scope(&*tx, subject_id, categories, item_refs).await? {
        *counts.entry(item.category).or_default() += 1;
    }
    entity::Entity::update_many()
        .col_expr(entity::Column::ErasedAt, Expr::value(at))
        .filter(scope(subject_id, categories, item_refs))
        .exec(&*tx)
        .await?;
    Ok(counts.into_iter().collect())
}

/// A person's items not yet erased that a scoped erasure covers, for the reviewer to see.
pub async fn in_scope(
    conn: &impl ConnectionTrait,
    subject_id: &str,
    categories: &[String],
    item_refs: &[String],
) -> Result<Vec<DataItem>, DbErr> {
    entity::Entity::find()
        .filter(scope(subject_id, categories, item_refs))
        .order_by_asc(entity::Column::CreatedAt)
        .all(conn)
        .await
}

fn scope(subject_id: &str, categories: &[String], item_refs: &[String]) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(entity::Column::SubjectId.eq(subject_id))
        .add(entity::Column::ErasedAt.is_null())
        .add(
            sea_orm::Condition::any()
                .add(entity::Column::Category.is_in(categories.iter().map(String::as_str)))
                .add(entity::Column::ExternalRef.is_in(item_refs.iter().map(String::as_str))),
        )
}

/// One page of a person's items in the order they were recorded (ids are UUIDv7), after the
/// item `after`, and the cursor of the next page: a person may have millions of items.
pub async fn page_of_subject(
    conn: &impl ConnectionTrait,
    subject_id: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<(Vec<DataItem>, Option<String>), DbErr> {
    let mut query = entity::Entity::find()
        .filter(entity::Column::SubjectId.eq(subject_id))
        .order_by_asc(entity::Column::Id);
    if let Some(after) = after {
        query = query.filter(entity::Column::Id.gt(after));
    }
    let mut rows = query.limit(limit + 1).all(conn).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok((rows, next))
}

/// How many items, not yet erased, a person has in each category, by category.
pub async fn held_by_category(
    conn: &impl ConnectionTrait,
    subject_id: &str,
) -> Result<Vec<(String, i64)>, DbErr> {
    entity::Entity::find()
        .select_only()
        .column(entity::Column::Category)
        .column_as(entity::Column::Id.count(), "items")
        .filter(entity::Column::SubjectId.eq(subject_id))
        .filter(entity::Column::ErasedAt.is_null())
        .group_by(entity::Column::Category)
        .order_by_asc(entity::Column::Category)
        .into_tuple()
        .all(conn)
        .await
}

/// How many items a person has.
pub async fn count_of_subject(conn: &impl ConnectionTrait, subject_id: &str) -> Result<u64, DbErr> {
    entity::Entity::find()
        .filter(entity::Column::SubjectId.eq(subject_id))
        .count(conn)
        .await
}
