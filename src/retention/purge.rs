//! The retention purge (GDPR Art 5(1)(e), PIPL Art 47: delete on one's own when the period
//! expires).
//!
//! A run walks the people whose items are due or entering their notice window, a chunk of
//! people per transaction. In each chunk it queues one notice email per person (listing
//! categories, counts and dates), and sends the main app, which holds the real data, a signed
//! erasure job per batch of due items; each chunk commits together with its outbox rows. Items
//! carry their progress (`noticed_at`, `purge_batch_id`), so a run killed at any point and
//! started again sends no notice twice, purges nothing twice and skips nothing. The main app
//! acknowledges each job with `POST /v1/purge-batches/{id}/complete`; its items are then
//! purged, and each person whose items of the run are all gone gets one "purged" email.
//!
//! A dry run walks the same chunks with the same conditions and writes nothing but its run
//! record, so its report is what a real run at the same instant would do.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, prelude::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    RetentionError, Rule, items,
    model::{self, BatchStatus, RetentionAction, RunStatus, RunTrigger},
};
use crate::{
    audit::{self, Actor},
    clock,
    config::Config,
    db::{Db, Tx},
    lease,
    notify::{
        email::{CategoryCount, EmailContent, NoticeLine},
        outbox::{self, QueuedEmail},
    },
    period::Period,
    subject,
};

/// The webhook event type of an erasure job for the main app.
pub const PURGE_REQUESTED: &str = "retention.purge_requested";
/// The lease every run holds, whatever started it: one run at a time.
const RUN_LEASE: &str = "purge_run";
/// Open items read to find the next chunk's people (one transaction per chunk): up to this
/// many people, each with all their items.
const ITEMS_PER_CHUNK: u64 = 4000;
/// Ids per `IN (...)` list, well under every database's parameter limit.
const IDS_PER_STATEMENT: usize = 1000;

/// A run as stored.
pub type PurgeRun = model::runs::Model;

/// What a run did or, dry, would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Report {
    /// People with items due or entering their notice window.
    pub subjects_examined: u64,
    /// Their items looked at: due, or entering the notice window.
    pub items_examined: u64,
    /// Items whose person was told in this run of their coming purge.
    pub items_noticed: u64,
    /// Notice emails queued: one per person with an address.
    pub notices_queued: u64,
    /// Items sent to the main app to purge.
    pub items_purging: u64,
    /// Erasure jobs sent to the main app.
    pub batches: u64,
    /// Items past their date but kept: on legal hold, in a held category, or of a person who
    /// restricted processing.
    pub items_held: u64,
    /// The same, per data category.
    pub categories: Vec<CategoryReport>,
    /// Consentry's own data deleted.
    pub own_data: OwnData,
}

/// A run's work in one data category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct CategoryReport {
    pub category: String,
    pub noticed: u64,
    pub purging: u64,
    pub held: u64,
}

/// Consentry's own records past their use, deleted by a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct OwnData {
    /// Export packages past their download period.
    pub export_packages: u64,
    /// Verification codes of abandoned requests.
    pub verification_codes: u64,
    /// Per-address daily budgets of days gone by.
    #[serde(default)]
    pub address_budgets: u64,
    /// Guardian-consent links past their expiry, used or not.
    pub guardian_tokens: u64,
    /// Portal sessions past their expiry, and used sign-in links past theirs.
    #[serde(default)]
    pub portal_sessions: u64,
    /// Console sessions past their expiry.
    #[serde(default)]
    pub console_sessions: u64,
    /// Counts of failed console sign-ins untouched for a day and no longer locking.
    #[serde(default)]
    pub sign_in_failures: u64,
    /// Delivered emails and webhooks older than `retention.keep_delivered_outbox`.
    pub outbox_messages: u64,
    /// Consent events of people erased longer ago than `retention.keep_erased_proofs`.
    pub consent_proofs: u64,
}

/// Purge runs at a glance, for monitoring.
pub struct RunSummary {
    /// (dry run, status, how many).
    pub runs: Vec<(bool, RunStatus, i64)>,
    /// When the last real run completed.
    pub last_success: Option<DateTime<Utc>>,
    /// Items sent for purging by all recorded real runs.
    pub items_purged: i64,
}

pub async fn run_summary(conn: &impl ConnectionTrait) -> Result<RunSummary, sea_orm::DbErr> {
    use model::runs;
    use sea_orm::sea_query::{Alias, Func};
    let runs = runs::Entity::find()
        .select_only()
        .column(runs::Column::DryRun)
        .column(runs::Column::Status)
        .column_as(runs::Column::Id.count(), "n")
        .group_by(runs::Column::DryRun)
        .group_by(runs::Column::Status)
        .into_tuple()
        .all(conn)
        .await?;
    let last_success = runs::Entity::find()
        .select_only()
        .column_as(runs::Column::FinishedAt.max(), "last")
        .filter(runs::Column::DryRun.eq(false))
        .filter(runs::Column::Status.eq(RunStatus::Completed))
        .into_tuple::<Option<DateTime<Utc>>>()
        .one(conn)
        .await?
        .flatten();
    // PostgreSQL sums a bigint into a numeric.
    let sum = Func::cast_as(
        Func::sum(Expr::col(runs::Column::ItemsPurged)),
        Alias::new("bigint"),
    );
    let items_purged = runs::Entity::find()
        .select_only()
        .column_as(sea_orm::sea_query::Expr::from(sum), "purged")
        .filter(runs::Column::DryRun.eq(false))
        .into_tuple::<Option<i64>>()
        .one(conn)
        .await?
        .flatten()
        .unwrap_or(0);
    Ok(RunSummary {
        runs,
        last_success,
        items_purged,
    })
}

/// Takes the run lease and records a new run. Fails with [`RetentionError::Busy`] while
/// another run holds the lease. A run left `running` by a process that died is marked
/// `interrupted`: holding the lease proves nothing else runs.
pub async fn start(
    db: &Db,
    config: &Config,
    dry_run: bool,
    as_of: DateTime<Utc>,
    actor: &Actor,
) -> Result<PurgeRun, RetentionError> {
    let id = uuid::Uuid::now_v7().to_string();
    if !lease::acquire(db, RUN_LEASE, &id, lease_ttl(config)).await? {
        return Err(RetentionError::Busy);
    }
    let txn = db.begin().await?;
    let now = clock::now();
    model::runs::Entity::update_many()
        .col_expr(
            model::runs::Column::Status,
            Expr::value(RunStatus::Interrupted),
        )
        .col_expr(model::runs::Column::FinishedAt, Expr::value(now))
        .filter(model::runs::Column::Status.eq(RunStatus::Running))
        .exec(&txn)
        .await?;
    let run = sea_orm::ActiveModelTrait::insert(
        model::runs::ActiveModel {
            id: Set(id),
            trigger: Set(trigger(actor)),
            dry_run: Set(dry_run),
            status: Set(RunStatus::Running),
            actor: Set(actor.to_string()),
            as_of: Set(as_of),
            started_at: Set(now),
            finished_at: Set(None),
            items_examined: Set(0),
            items_purged: Set(0),
            notices_queued: Set(0),
            report: Set(to_json(&Report::default())),
            errors: Set(None),
        },
        &txn,
    )
    .await?;
    txn.commit().await?;
    Ok(run)
}

/// What started a run, from who asked for it.
fn trigger(actor: &Actor) -> RunTrigger {
    match actor {
        Actor::Cli => RunTrigger::Cli,
        Actor::System => RunTrigger::Schedule,
        _ => RunTrigger::Manual,
    }
}

fn lease_ttl(config: &Config) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(config.retention.run_lease_seconds).unwrap_or(i64::MAX))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".into())
}

/// Records how a run ended in the caller's transaction (which may add what follows from it, such
/// as the reviewers' digest): completed, or failed with `failure`, and its report.
pub async fn record_outcome(
    txn: &mut Tx,
    run: &PurgeRun,
    report: &Report,
    failure: Option<&RetentionError>,
) -> Result<(), RetentionError> {
    let errors = failure.map(|e| {
        tracing::error!(run = %run.id, error = %e, "purge run failed");
        to_json(&[e.to_string()])
    });
    model::runs::Entity::update_many()
        .col_expr(
            model::runs::Column::Status,
            Expr::value(if errors.is_some() {
                RunStatus::Failed
            } else {
                RunStatus::Completed
            }),
        )
        .col_expr(model::runs::Column::FinishedAt, Expr::value(clock::now()))
        .col_expr(
            model::runs::Column::ItemsExamined,
            Expr::value(count(report.items_examined)),
        )
        .col_expr(
            model::runs::Column::ItemsPurged,
            Expr::value(count(report.items_purging)),
        )
        .col_expr(
            model::runs::Column::NoticesQueued,
            Expr::value(count(report.notices_queued)),
        )
        .col_expr(model::runs::Column::Report, Expr::value(to_json(&report)))
        .col_expr(model::runs::Column::Errors, Expr::value(errors))
        .filter(model::runs::Column::Id.eq(&run.id))
        .exec(&*txn)
        .await?;
    Ok(())
}

/// Gives up a finished run's lease, so the next run may start.
pub async fn release(db: &Db, run: &PurgeRun) -> Result<(), RetentionError> {
    lease::release(db, RUN_LEASE, &run.id).await?;
    Ok(())
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One line for the admin digest.
pub fn summary(report: &Report) -> String {
    format!(
        "{} item(s) sent for purging in {} job(s), {} notice(s) queued, {} held item(s) kept",
        report.items_purging, report.batches, report.notices_queued, report.items_held
    )
}

/// The rules as a run applies them.
struct Plan {
    rules: HashMap<String, Rule>,
    /// Categories under a rule-level legal hold.
    held: Vec<String>,
    /// Per category with a notice period: items due by this instant are in the window.
    windows: Vec<(String, DateTime<Utc>)>,
    as_of: DateTime<Utc>,
}

impl Plan {
    async fn load(
        conn: &impl ConnectionTrait,
        as_of: DateTime<Utc>,
    ) -> Result<Self, RetentionError> {
        let rules = super::list(conn).await?;
        let held = rules
            .iter()
            .filter(|r| r.legal_hold)
            .map(|r| r.category.clone())
            .collect();
        let windows = rules
            .iter()
            .filter(|r| !r.legal_hold)
            .filter_map(|r| {
                let notice: Period = r.notice_before.as_deref()?.parse().ok()?;
                Some((r.category.clone(), notice.after_instant(as_of)?))
            })
            .collect();
        Ok(Self {
            rules: rules.into_iter().map(|r| (r.category.clone(), r)).collect(),
            held,
            windows,
            as_of,
        })
    }

    /// Items still held by Consentry and not yet sent for purging.
    fn open() -> Condition {
        Condition::all()
            .add(items::Column::ErasedAt.is_null())
            .add(items::Column::PurgeBatchId.is_null())
    }

    /// People who restricted processing: their data is kept, as for a legal claim (GDPR
    /// Art 18(1)(c)), until the restriction is lifted.
    fn restricted() -> sea_orm::sea_query::SelectStatement {
        subject::model::Entity::find()
            .select_only()
            .column(subject::model::Column::Id)
            .filter(subject::model::Column::Restricted.eq(true))
            .into_query()
    }

    /// Open items that a run acts on: due, or entering their notice window unnoticed; never
    /// held ones. Restricted people's items are left out as each chunk's people are read: a
    /// subquery here would be evaluated for every chunk.
    fn work(&self) -> Condition {
        let mut when = Condition::any().add(items::Column::PurgeAfter.lte(self.as_of));
        for (category, until) in &self.windows {
            when = when.add(
                Condition::all()
                    .add(items::Column::Category.eq(category))
                    .add(items::Column::NoticedAt.is_null())
                    .add(items::Column::PurgeAfter.lte(*until)),
            );
        }
        let mut work = Self::open()
            .add(items::Column::LegalHold.eq(false))
            .add(when);
        if !self.held.is_empty() {
            work = work.add(items::Column::Category.is_not_in(self.held.clone()));
        }
        work
    }

    /// Open items past their date that a hold keeps.
    fn held(&self) -> Condition {
        let mut hold = Condition::any()
            .add(items::Column::LegalHold.eq(true))
            .add(items::Column::SubjectId.in_subquery(Self::restricted()));
        if !self.held.is_empty() {
            hold = hold.add(items::Column::Category.is_in(self.held.clone()));
        }
        Self::open()
            .add(items::Column::PurgeAfter.lte(self.as_of))
            .add(hold)
    }

    fn action(&self, category: &str) -> RetentionAction {
        self.rules
            .get(category)
            .map_or(RetentionAction::Delete, |r| r.action)
    }
}

/// What one chunk of people comes to.
#[derive(Default)]
struct Chunk {
    /// Per person: (category, day) → items, for the notice.
    notices: BTreeMap<String, BTreeMap<(String, chrono::NaiveDate), u64>>,
    noticed: Vec<String>,
    /// Due items in batches for the main app.
    batches: Vec<Vec<items::Model>>,
}

impl Chunk {
    fn of(plan: &Plan, found: Vec<items::Model>, batch_size: usize) -> Self {
        let mut chunk = Chunk::default();
        let mut due = Vec::new();
        for item in found {
            let Some(at) = item.purge_after else { continue };
            if at <= plan.as_of {
                due.push(item);
            } else {
                *chunk
                    .notices
                    .entry(item.subject_id.clone())
                    .or_default()
                    .entry((item.category.clone(), at.date_naive()))
                    .or_default() += 1;
                chunk.noticed.push(item.id);
            }
        }
        let mut rest = due.into_iter().peekable();
        while rest.peek().is_some() {
            chunk.batches.push(rest.by_ref().take(batch_size).collect());
        }
        chunk
    }
}

/// Walks every person with work, one chunk per transaction.
pub async fn walk(
    db: &Db,
    config: &Config,
    run: &PurgeRun,
    report: &mut Report,
) -> Result<(), RetentionError> {
    let conn = db.conn();
    let plan = Plan::load(conn, run.as_of).await?;
    let mut categories: BTreeMap<String, CategoryReport> = BTreeMap::new();
    let held: Vec<(String, i64)> = items::Entity::find()
        .select_only()
        .column(items::Column::Category)
        .column_as(items::Column::Id.count(), "n")
        .filter(plan.held())
        .group_by(items::Column::Category)
        .into_tuple()
        .all(conn)
        .await?;
    for (category, n) in held {
        let n = u64::try_from(n).unwrap_or(0);
        report.items_held += n;
        category_entry(&mut categories, &category).held += n;
    }
    let batch_size = usize::try_from(config.retention.batch_size).unwrap_or(usize::MAX);
    let mut after: Option<String> = None;
    loop {
        if !lease::acquire(db, RUN_LEASE, &run.id, lease_ttl(config)).await? {
            return Err(RetentionError::Busy);
        }
        // The next people in id order, read as item rows rather than with DISTINCT, so that
        // both databases walk the index in order and stop at the limit.
        let mut people = items::Entity::find()
            .select_only()
            .column(items::Column::SubjectId)
            .filter(plan.work());
        if let Some(last) = &after {
            people = people.filter(items::Column::SubjectId.gt(last.as_str()));
        }
        let mut people: Vec<String> = people
            .order_by_asc(items::Column::SubjectId)
            .limit(ITEMS_PER_CHUNK)
            .into_tuple()
            .all(conn)
            .await?;
        people.dedup();
        let Some(last) = people.last().cloned() else {
            break;
        };
        let found = items::Entity::find()
            .filter(items::Column::SubjectId.is_in(people.clone()))
            .filter(plan.work())
            .order_by_asc(items::Column::SubjectId)
            .order_by_asc(items::Column::Id)
            .all(conn)
            .await?;
        let subjects: HashMap<String, subject::Subject> = subject::model::Entity::find()
            .filter(subject::model::Column::Id.is_in(people.clone()))
            .all(conn)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let found: Vec<items::Model> = found
            .into_iter()
            .filter(|i| subjects.get(&i.subject_id).is_some_and(|s| !s.restricted))
            .collect();
        report.subjects_examined += subjects.values().filter(|s| !s.restricted).count() as u64;
        report.items_examined += found.len() as u64;
        let chunk = Chunk::of(&plan, found, batch_size);
        for lines in chunk.notices.values() {
            for ((category, _), n) in lines {
                category_entry(&mut categories, category).noticed += n;
            }
        }
        for item in chunk.batches.iter().flatten() {
            category_entry(&mut categories, &item.category).purging += 1;
        }
        report.items_noticed += chunk.noticed.len() as u64;
        report.items_purging += chunk.batches.iter().map(Vec::len).sum::<usize>() as u64;
        report.batches += chunk.batches.len() as u64;
        report.notices_queued += chunk
            .notices
            .keys()
            .filter(|id| subjects.get(*id).is_some_and(|s| s.email.is_some()))
            .count() as u64;
        if run.dry_run {
            let tx = db.begin().await?;
            record_progress(&tx, &run.id, report).await?;
            tx.commit().await?;
        } else {
            apply(db, run, &plan, &chunk, &subjects, report).await?;
        }
        after = Some(last);
    }
    report.categories = categories.into_values().collect();
    Ok(())
}

/// Shows a running run's totals so far, in the transaction that commits its latest chunk, so
/// that the run's record tells how far it has got.
async fn record_progress(tx: &Tx, run_id: &str, report: &Report) -> Result<(), sea_orm::DbErr> {
    model::runs::Entity::update_many()
        .col_expr(
            model::runs::Column::ItemsExamined,
            Expr::value(count(report.items_examined)),
        )
        .col_expr(
            model::runs::Column::ItemsPurged,
            Expr::value(count(report.items_purging)),
        )
        .col_expr(
            model::runs::Column::NoticesQueued,
            Expr::value(count(report.notices_queued)),
        )
        .filter(model::runs::Column::Id.eq(run_id))
        .exec(tx)
        .await?;
    Ok(())
}

fn category_entry<'a>(
    categories: &'a mut BTreeMap<String, CategoryReport>,
    category: &str,
) -> &'a mut CategoryReport {
    categories
        .entry(category.to_string())
        .or_insert_with(|| CategoryReport {
            category: category.to_string(),
            ..Default::default()
        })
}

/// Writes one chunk: the notices with their items marked, the batches with their items marked
/// and their jobs queued, all in one transaction.
async fn apply(
    db: &Db,
    run: &PurgeRun,
    plan: &Plan,
    chunk: &Chunk,
    subjects: &HashMap<String, subject::Subject>,
    report: &Report,
) -> Result<(), RetentionError> {
    let mut notices = Vec::with_capacity(chunk.notices.len());
    for (subject_id, lines) in &chunk.notices {
        let Some(person) = subjects.get(subject_id) else {
            continue;
        };
        let Some(to) = &person.email else { continue };
        let items: Vec<NoticeLine> = lines
            .iter()
            .map(|((category, on), count)| NoticeLine {
                category: super::category_title(
                    plan.rules.get(category),
                    category,
                    person.locale.as_deref(),
                ),
                count: *count,
                on: *on,
            })
            .collect();
        let Some(purge_date) = items.iter().map(|l| l.on).min() else {
            continue;
        };
        notices.push(QueuedEmail {
            dedupe_key: format!("retention-notice:{}:{subject_id}", run.id),
            to: to.clone(),
            locale: person.locale.clone().unwrap_or_else(|| "en".into()),
            content: EmailContent::RetentionNotice { purge_date, items },
        });
    }
    let mut txn = db.begin().await?;
    outbox::enqueue_emails(&mut txn, notices).await?;
    for ids in chunk.noticed.chunks(IDS_PER_STATEMENT) {
        items::Entity::update_many()
            .col_expr(items::Column::NoticedAt, Expr::value(run.as_of))
            .filter(items::Column::Id.is_in(ids.iter().cloned()))
            .exec(&txn)
            .await?;
    }
    for batch in &chunk.batches {
        let batch_id = uuid::Uuid::now_v7().to_string();
        model::batches::Entity::insert(model::batches::ActiveModel {
            id: Set(batch_id.clone()),
            run_id: Set(run.id.clone()),
            status: Set(BatchStatus::Pending),
            items: Set(batch.len() as i64),
            created_at: Set(clock::now()),
            acknowledged_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        for ids in batch.chunks(IDS_PER_STATEMENT) {
            items::Entity::update_many()
                .col_expr(items::Column::PurgeBatchId, Expr::value(batch_id.clone()))
                .col_expr(items::Column::PurgeRunId, Expr::value(run.id.clone()))
                .filter(items::Column::Id.is_in(ids.iter().map(|i| i.id.clone())))
                .exec(&txn)
                .await?;
        }
        let listed: Vec<_> = batch
            .iter()
            .filter_map(|item| {
                let person = subjects.get(&item.subject_id)?;
                Some(json!({
                    "external_id": person.external_id,
                    "item_ref": item.external_ref,
                    "category": item.category,
                    "action": plan.action(&item.category),
                }))
            })
            .collect();
        outbox::enqueue_webhook(
            &mut txn,
            &format!("purge-batch:{batch_id}"),
            PURGE_REQUESTED,
            json!({
                "batch_id": batch_id,
                "run_id": run.id,
                "items": listed,
                "complete_path": format!("/v1/purge-batches/{batch_id}/complete"),
            }),
        )
        .await?;
    }
    record_progress(&txn, &run.id, report).await?;
    txn.commit().await?;
    Ok(())
}

/// A run by id.
pub async fn get(conn: &impl ConnectionTrait, id: &str) -> Result<PurgeRun, RetentionError> {
    model::runs::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(RetentionError::NotFound("purge run"))
}

/// The newest runs first.
pub async fn list(
    conn: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<PurgeRun>, RetentionError> {
    Ok(model::runs::Entity::find()
        .order_by_desc(model::runs::Column::StartedAt)
        .order_by_desc(model::runs::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// A run's erasure jobs: (pending, acknowledged).
pub async fn batch_counts(
    conn: &impl ConnectionTrait,
    run_id: &str,
) -> Result<(u64, u64), RetentionError> {
    let rows: Vec<(BatchStatus, i64)> = model::batches::Entity::find()
        .select_only()
        .column(model::batches::Column::Status)
        .column_as(model::batches::Column::Id.count(), "n")
        .filter(model::batches::Column::RunId.eq(run_id))
        .group_by(model::batches::Column::Status)
        .into_tuple()
        .all(conn)
        .await?;
    let of = |status: BatchStatus| {
        rows.iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
            .sum()
    };
    Ok((of(BatchStatus::Pending), of(BatchStatus::Acknowledged)))
}

/// Records the main app's acknowledgement of an erasure job: its items are purged, and each
/// person none of whose items of the run is still pending gets one "purged" email listing
/// them (for categories whose rule says to tell). Acknowledging twice changes nothing.
pub async fn acknowledge(
    tx: &mut Tx,
    batch_id: &str,
) -> Result<model::batches::Model, RetentionError> {
    let now = clock::now();
    // Claimed by the conditional update before anything is read, so that parallel copies
    // apply once and each answers with the batch as the first left it.
    let claimed = model::batches::Entity::update_many()
        .col_expr(
            model::batches::Column::Status,
            Expr::value(BatchStatus::Acknowledged),
        )
        .col_expr(model::batches::Column::AcknowledgedAt, Expr::value(now))
        .filter(model::batches::Column::Id.eq(batch_id))
        .filter(model::batches::Column::Status.eq(BatchStatus::Pending))
        .exec(&*tx)
        .await?;
    let batch = model::batches::Entity::find_by_id(batch_id)
        .one(&*tx)
        .await?
        .ok_or(RetentionError::NotFound("purge batch"))?;
    if claimed.rows_affected == 0 {
        return Ok(batch);
    }
    items::Entity::update_many()
        .col_expr(items::Column::PurgedAt, Expr::value(now))
        .filter(items::Column::PurgeBatchId.eq(batch_id))
        .exec(&*tx)
        .await?;
    items::Entity::update_many()
        .col_expr(items::Column::ErasedAt, Expr::value(now))
        .filter(items::Column::PurgeBatchId.eq(batch_id))
        .filter(items::Column::ErasedAt.is_null())
        .exec(&*tx)
        .await?;
    let people: Vec<String> = items::Entity::find()
        .select_only()
        .column(items::Column::SubjectId)
        .distinct()
        .filter(items::Column::PurgeBatchId.eq(batch_id))
        .into_tuple()
        .all(&*tx)
        .await?;
    let tell: HashMap<String, Rule> = super::list(&*tx)
        .await?
        .into_iter()
        .filter(|r| r.notify_after)
        .map(|r| (r.category.clone(), r))
        .collect();
    for people in people.chunks(IDS_PER_STATEMENT) {
        tell_purged(tx, &batch.run_id, people, &tell, now).await?;
    }
    audit::record(
        &*tx,
        &Actor::MainApp,
        "purge_batch.acknowledged",
        audit::Target::new("purge_batch", batch_id),
        json!({"run_id": batch.run_id, "items": batch.items}),
    )
    .await?;
    let batch = model::batches::Entity::find_by_id(batch_id)
        .one(&*tx)
        .await?
        .ok_or(RetentionError::NotFound("purge batch"))?;
    Ok(batch)
}

/// Queues the "purged" email of each of `people` whose items of the run are all purged.
async fn tell_purged(
    tx: &mut Tx,
    run_id: &str,
    people: &[String],
    tell: &HashMap<String, Rule>,
    now: DateTime<Utc>,
) -> Result<(), RetentionError> {
    let rows: Vec<(String, String, Option<DateTime<Utc>>)> = items::Entity::find()
        .select_only()
        .column(items::Column::SubjectId)
        .column(items::Column::Category)
        .column(items::Column::PurgedAt)
        .filter(items::Column::PurgeRunId.eq(run_id))
        .filter(items::Column::SubjectId.is_in(people.iter().cloned()))
        .into_tuple()
        .all(&*tx)
        .await?;
    let mut per_person: BTreeMap<&str, (bool, BTreeMap<&str, u64>)> = BTreeMap::new();
    for (subject_id, category, purged_at) in &rows {
        let (pending, counts) = per_person.entry(subject_id).or_default();
        *pending |= purged_at.is_none();
        if tell.contains_key(category) {
            *counts.entry(category).or_default() += 1;
        }
    }
    per_person.retain(|_, (pending, counts)| !*pending && !counts.is_empty());
    let done: Vec<String> = per_person.keys().map(|id| id.to_string()).collect();
    let mut emails = Vec::with_capacity(done.len());
    for person in subject::model::Entity::find()
        .filter(subject::model::Column::Id.is_in(done))
        .all(&*tx)
        .await?
    {
        let (Some(to), Some((_, counts))) = (&person.email, per_person.remove(person.id.as_str()))
        else {
            continue;
        };
        emails.push(QueuedEmail {
            dedupe_key: format!("retention-purged:{run_id}:{}", person.id),
            to: to.clone(),
            locale: person.locale.clone().unwrap_or_else(|| "en".into()),
            content: EmailContent::RetentionPurged {
                purged_on: now.date_naive(),
                items: counts
                    .into_iter()
                    .map(|(category, count)| CategoryCount {
                        category: super::category_title(
                            tell.get(category),
                            category,
                            person.locale.as_deref(),
                        ),
                        count,
                    })
                    .collect(),
            },
        });
    }
    outbox::enqueue_emails(tx, emails).await?;
    Ok(())
}

/// Puts one item on legal hold or releases it. An item whose purge was already sent to the
/// main app cannot be held any more.
pub async fn set_hold(
    tx: &mut Tx,
    external_id: &str,
    item_ref: &str,
    held: bool,
    reason: &str,
    actor: &Actor,
) -> Result<items::Model, RetentionError> {
    let person = subject::find(&*tx, external_id)
        .await?
        .ok_or(RetentionError::NotFound("subject"))?;
    let item = items::Entity::find()
        .filter(items::Column::SubjectId.eq(&person.id))
        .filter(items::Column::ExternalRef.eq(item_ref))
        .one(&*tx)
        .await?
        .ok_or(RetentionError::NotFound("data item"))?;
    if held && (item.purge_batch_id.is_some() || item.erased_at.is_some()) {
        return Err(RetentionError::Purging);
    }
    items::Entity::update_many()
        .col_expr(items::Column::LegalHold, Expr::value(held))
        .filter(items::Column::Id.eq(&item.id))
        .exec(&*tx)
        .await?;
    audit::record(
        &*tx,
        actor,
        if held {
            "data_item.held"
        } else {
            "data_item.released"
        },
        audit::Target::new("data_item", &item.id),
        json!({"category": item.category, "reason": reason}),
    )
    .await?;
    let item = items::Entity::find_by_id(item.id)
        .one(&*tx)
        .await?
        .ok_or(RetentionError::NotFound("data item"))?;
    Ok(item)
}
