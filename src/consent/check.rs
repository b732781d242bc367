//! "May we process this person's data for this purpose?" — the main app's hot path.
//!
//! The answer comes from the current-state rows alone: one query for any number of checks,
//! which joins the pairs asked about to the purposes, the people and their states. Single
//! checks are answered from memory when the same question was read recently, and otherwise
//! read on the calling thread (SQLite) or together with the other single checks waiting
//! (PostgreSQL) ([`Checks`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DbErr, QueryResult,
    prelude::*,
    sea_query::{
        Alias, Expr, ExprTrait, JoinType, Query, SelectStatement, SqliteQueryBuilder, ValueTuple,
    },
};

use super::model::{ConsentStatus, consents};
use crate::{
    config::DatabaseKind,
    db::{Batch, Batcher, Db, ROWS_PER_STATEMENT, Readers},
    purpose::{LegalBasis, model as purposes},
    subject::{AgeStatus, model as subjects},
};

/// The answer to one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub allowed: bool,
    /// The recorded state; `None` when the person never decided.
    pub status: Option<ConsentStatus>,
    /// The policy version the recorded decision was made under.
    pub policy_version: Option<i32>,
    pub needs_reconsent: bool,
    /// Why: `consent_granted`, `not_consent_based`, `no_consent`, `withdrawn`, `denied`, `gpc`
    /// (refused by a browser's Global Privacy Control signal), `reconsent_required`,
    /// `restricted`, `guardian_required`, `unknown_purpose`, `purpose_archived`.
    pub reason: &'static str,
}

/// The channel of decisions made by a browser's Global Privacy Control signal.
pub const GPC_CHANNEL: &str = "gpc";

/// What the answer depends on.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    purpose: Option<(LegalBasis, bool)>,
    subject: Option<(bool, AgeStatus)>,
    consent: Option<(ConsentStatus, i32, bool, Option<DateTime<Utc>>)>,
    /// The last decision came from a Global Privacy Control signal.
    gpc: bool,
}

fn evaluate(f: &Facts, now: DateTime<Utc>) -> CheckResult {
    let (status, policy_version, needs_reconsent, due) = match f.consent {
        Some((s, v, n, due)) => (Some(s), Some(v), n, due),
        None => (None, None, false, None),
    };
    let answer = |allowed, reason| CheckResult {
        allowed,
        status,
        policy_version,
        needs_reconsent,
        reason,
    };
    let Some((legal_basis, archived)) = f.purpose else {
        return answer(false, "unknown_purpose");
    };
    if archived {
        return answer(false, "purpose_archived");
    }
    if let Some((restricted, age)) = f.subject {
        if restricted {
            return answer(false, "restricted");
        }
        if age == AgeStatus::MinorGuardianPending {
            return answer(false, "guardian_required");
        }
    }
    if legal_basis != LegalBasis::Consent {
        return answer(true, "not_consent_based");
    }
    match status {
        Some(s) if super::model::counts(s, needs_reconsent, due, now) => {
            answer(true, "consent_granted")
        }
        Some(ConsentStatus::Granted) => answer(false, "reconsent_required"),
        Some(ConsentStatus::Withdrawn) => answer(false, "withdrawn"),
        Some(ConsentStatus::Denied) if f.gpc => answer(false, "gpc"),
        Some(ConsentStatus::Denied) => answer(false, "denied"),
        None => answer(false, "no_consent"),
    }
}

/// Single checks, answered from memory while the facts read for the same person and purpose
/// are current, and otherwise read on the calling thread (SQLite, [`Readers`]) or together
/// with the other checks waiting (PostgreSQL, [`Waiting`]).
///
/// A cached entry is used only while the database's change count ([`crate::db::Db::writes`])
/// has not moved since it was read: it moves when this process commits a write, so a
/// withdrawal is never answered from memory by the replica that recorded it, and when another
/// process commits one (`NOTIFY` on PostgreSQL, `data_version` polled on SQLite), so other
/// replicas and CLI commands are seen within milliseconds. Entries also expire after
/// `consent_cache.ttl_ms` whatever happens. The answer is evaluated at each call, so a
/// re-consent deadline passing is seen at once.
pub struct Checks {
    cache: Option<Remembered>,
    reads: Reads,
}

/// The facts of checks answered lately, by (person, purpose), with the change count they were
/// read at.
type Remembered = moka::sync::Cache<(String, String), (u64, Facts)>;

/// Where single checks the cache cannot answer are read.
enum Reads {
    /// On the calling thread, one query each, counted.
    Here(Arc<Readers>, AtomicU64),
    /// In batches.
    Batched(Batcher<Waiting>),
}

impl Checks {
    /// Starts the tasks that read checks together, where the engine wants them.
    pub fn start(db: &Db, config: &crate::config::ConsentCacheConfig) -> Self {
        Self {
            cache: config.enabled.then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(config.capacity)
                    .time_to_live(std::time::Duration::from_millis(config.ttl_ms))
                    .build()
            }),
            reads: match db.readers() {
                Some(readers) => Reads::Here(readers, AtomicU64::new(0)),
                None => Reads::Batched(Batcher::start(db.clone(), Waiting)),
            },
        }
    }

    /// One check, from memory when its facts are current.
    pub async fn check(
        &self,
        db: &Db,
        external_id: &str,
        purpose_key: &str,
        now: DateTime<Utc>,
    ) -> Result<CheckResult, DbErr> {
        let key = (external_id.to_string(), purpose_key.to_string());
        let Some(cache) = &self.cache else {
            return Ok(evaluate(&self.read(key).await?, now));
        };
        // Read before the database, so that a write committing meanwhile leaves the entry
        // filed under a count that is already past.
        let writes = db.writes();
        if let Some((read_at, facts)) = cache.get(&key)
            && read_at == writes
        {
            return Ok(evaluate(&facts, now));
        }
        let facts = self.read(key.clone()).await?;
        let answer = evaluate(&facts, now);
        cache.insert(key, (writes, facts));
        Ok(answer)
    }

    async fn read(&self, key: (String, String)) -> Result<Facts, DbErr> {
        match &self.reads {
            Reads::Here(readers, count) => {
                count.fetch_add(1, Ordering::Relaxed);
                read_here(readers, &key)
            }
            Reads::Batched(batcher) => batcher.submit(key).await,
        }
    }

    /// Queries made for single checks so far, and the checks they answered: their ratio is
    /// the mean batch.
    pub fn reads(&self) -> (u64, u64) {
        match &self.reads {
            Reads::Here(_, count) => {
                let n = count.load(Ordering::Relaxed);
                (n, n)
            }
            Reads::Batched(batcher) => batcher.counts(),
        }
    }
}

/// One check's facts, read on this thread.
fn read_here(
    readers: &Readers,
    (external_id, purpose_key): &(String, String),
) -> Result<Facts, DbErr> {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let pair = (String::new(), String::new());
        facts_query(&[&pair]).build(SqliteQueryBuilder).0
    });
    readers
        .read(|conn| {
            conn.prepare_cached(sql)?
                .query_row([external_id, purpose_key], |row| {
                    Ok(Row {
                        legal_basis: row.get("legal_basis")?,
                        archived_at: row.get("archived_at")?,
                        restricted: row.get("restricted")?,
                        age_status: row.get("age_status")?,
                        status: row.get("status")?,
                        policy_version: row.get("policy_version")?,
                        needs_reconsent: row.get("needs_reconsent")?,
                        reconsent_due_at: row.get("reconsent_due_at")?,
                        channel: row.get("channel")?,
                    })
                })
        })?
        .facts()
}

/// Single checks waiting for the database, read with one query per batch: under load the
/// round trip to a PostgreSQL backend is made once for many checks instead of once for each.
pub struct Waiting;

impl Batch for Waiting {
    type Item = (String, String);
    type Answer = Facts;
    const MAX: usize = 64;

    /// Four, so that round trips overlap (one, two and eight gave the same throughput or less).
    fn tasks(_: DatabaseKind) -> usize {
        4
    }

    fn handle<'a>(
        &'a self,
        db: &'a Db,
        items: Vec<Self::Item>,
    ) -> BoxFuture<'a, Result<Vec<Facts>, DbErr>> {
        Box::pin(async move { facts(db.conn(), &items).await })
    }
}

/// Many checks at once, in one query per thousand.
pub async fn check_many(
    conn: &impl ConnectionTrait,
    pairs: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Vec<CheckResult>, DbErr> {
    Ok(facts(conn, pairs)
        .await?
        .iter()
        .map(|f| evaluate(f, now))
        .collect())
}

/// The facts of each (person, purpose) pair, in order: one query per thousand distinct pairs,
/// which joins them as a `VALUES` list to the purposes, the people and their current states.
async fn facts(
    conn: &impl ConnectionTrait,
    pairs: &[(String, String)],
) -> Result<Vec<Facts>, DbErr> {
    let distinct: Vec<&(String, String)> =
        pairs.iter().collect::<BTreeSet<_>>().into_iter().collect();
    let mut found = BTreeMap::new();
    for chunk in distinct.chunks(ROWS_PER_STATEMENT) {
        for row in conn.query_all(&facts_query(chunk)).await? {
            let external_id: String = row.try_get("", "external_id")?;
            let purpose_key: String = row.try_get("", "purpose_key")?;
            found.insert((external_id, purpose_key), Row::read(&row)?.facts()?);
        }
    }
    Ok(pairs
        .iter()
        .map(|pair| found.get(pair).cloned().unwrap_or_default())
        .collect())
}

fn facts_query(pairs: &[&(String, String)]) -> SelectStatement {
    let (q, p, s, c) = (
        Alias::new("q"),
        Alias::new("p"),
        Alias::new("s"),
        Alias::new("c"),
    );
    // The columns of a `VALUES` list are named so on both engines.
    let (q_subject, q_purpose) = (
        (q.clone(), Alias::new("column1")),
        (q.clone(), Alias::new("column2")),
    );
    Query::select()
        .expr_as(Expr::col(q_subject.clone()), Alias::new("external_id"))
        .expr_as(Expr::col(q_purpose.clone()), Alias::new("purpose_key"))
        .expr_as(
            Expr::col((p.clone(), purposes::Column::LegalBasis)),
            Alias::new("legal_basis"),
        )
        .expr_as(
            Expr::col((p.clone(), purposes::Column::ArchivedAt)),
            Alias::new("archived_at"),
        )
        .expr_as(
            Expr::col((s.clone(), subjects::Column::Restricted)),
            Alias::new("restricted"),
        )
        .expr_as(
            Expr::col((s.clone(), subjects::Column::AgeStatus)),
            Alias::new("age_status"),
        )
        .expr_as(
            Expr::col((c.clone(), consents::Column::Status)),
            Alias::new("status"),
        )
        .expr_as(
            Expr::col((c.clone(), consents::Column::PolicyVersion)),
            Alias::new("policy_version"),
        )
        .expr_as(
            Expr::col((c.clone(), consents::Column::NeedsReconsent)),
            Alias::new("needs_reconsent"),
        )
        .expr_as(
            Expr::col((c.clone(), consents::Column::ReconsentDueAt)),
            Alias::new("reconsent_due_at"),
        )
        .expr_as(
            Expr::col((c.clone(), consents::Column::Channel)),
            Alias::new("channel"),
        )
        .from_values(
            pairs.iter().map(|(subject, purpose)| {
                ValueTuple::Two(subject.as_str().into(), purpose.as_str().into())
            }),
            q,
        )
        .join_as(
            JoinType::LeftJoin,
            purposes::Entity,
            p.clone(),
            Expr::col((p, purposes::Column::Key)).equals(q_purpose.clone()),
        )
        .join_as(
            JoinType::LeftJoin,
            subjects::Entity,
            s.clone(),
            Expr::col((s.clone(), subjects::Column::ExternalId)).equals(q_subject),
        )
        .join_as(
            JoinType::LeftJoin,
            consents::Entity,
            c.clone(),
            Expr::col((c.clone(), consents::Column::SubjectId))
                .equals((s, subjects::Column::Id))
                .and(Expr::col((c, consents::Column::PurposeKey)).equals(q_purpose)),
        )
        .to_owned()
}

/// A row of [`facts_query`], as either driver reads it.
struct Row {
    legal_basis: Option<String>,
    archived_at: Option<DateTime<Utc>>,
    restricted: Option<bool>,
    age_status: Option<String>,
    status: Option<String>,
    policy_version: Option<i32>,
    needs_reconsent: Option<bool>,
    reconsent_due_at: Option<DateTime<Utc>>,
    channel: Option<String>,
}

impl Row {
    fn read(row: &QueryResult) -> Result<Self, DbErr> {
        Ok(Self {
            legal_basis: row.try_get("", "legal_basis")?,
            archived_at: row.try_get("", "archived_at")?,
            restricted: row.try_get("", "restricted")?,
            age_status: row.try_get("", "age_status")?,
            status: row.try_get("", "status")?,
            policy_version: row.try_get("", "policy_version")?,
            needs_reconsent: row.try_get("", "needs_reconsent")?,
            reconsent_due_at: row.try_get("", "reconsent_due_at")?,
            channel: row.try_get("", "channel")?,
        })
    }

    fn facts(self) -> Result<Facts, DbErr> {
        Ok(Facts {
            purpose: match self.legal_basis {
                Some(basis) => Some((
                    LegalBasis::try_from_value(&basis)?,
                    self.archived_at.is_some(),
                )),
                None => None,
            },
            subject: match (self.restricted, self.age_status) {
                (Some(r), Some(a)) => Some((r, AgeStatus::try_from_value(&a)?)),
                _ => None,
            },
            consent: match (self.status, self.policy_version) {
                (Some(s), Some(v)) => Some((
                    ConsentStatus::try_from_value(&s)?,
                    v,
                    self.needs_reconsent.unwrap_or(false),
                    self.reconsent_due_at,
                )),
                _ => None,
            },
            gpc: self.channel.as_deref() == Some(GPC_CHANNEL),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn facts(basis: LegalBasis, consent: Option<ConsentStatus>) -> Facts {
        Facts {
            purpose: Some((basis, false)),
            subject: Some((false, AgeStatus::Adult)),
            consent: consent.map(|s| (s, 1, false, None)),
            gpc: false,
        }
    }

    #[test]
    fn consent_based_purposes_need_a_grant() {
        let now = Utc::now();
        let granted = evaluate(
            &facts(LegalBasis::Consent, Some(ConsentStatus::Granted)),
            now,
        );
        assert!(granted.allowed);
        let withdrawn = evaluate(
            &facts(LegalBasis::Consent, Some(ConsentStatus::Withdrawn)),
            now,
        );
        assert_eq!((withdrawn.allowed, withdrawn.reason), (false, "withdrawn"));
        let none = evaluate(&facts(LegalBasis::Consent, None), now);
        assert_eq!((none.allowed, none.reason), (false, "no_consent"));
        let contract = evaluate(&facts(LegalBasis::Contract, None), now);
        assert_eq!(
            (contract.allowed, contract.reason),
            (true, "not_consent_based")
        );
    }

    #[test]
    fn restriction_and_missing_guardians_override_everything() {
        let now = Utc::now();
        let mut f = facts(LegalBasis::Contract, Some(ConsentStatus::Granted));
        f.subject = Some((true, AgeStatus::Adult));
        assert_eq!(evaluate(&f, now).reason, "restricted");
        f.subject = Some((false, AgeStatus::MinorGuardianPending));
        assert_eq!(evaluate(&f, now).reason, "guardian_required");
        f.purpose = None;
        assert_eq!(evaluate(&f, now).reason, "unknown_purpose");
    }

    #[test]
    fn consent_needing_renewal_counts_until_the_new_version_takes_effect() {
        let now = Utc::now();
        let mut f = facts(LegalBasis::Consent, None);
        f.consent = Some((
            ConsentStatus::Granted,
            1,
            true,
            Some(now + TimeDelta::days(3)),
        ));
        let before = evaluate(&f, now);
        assert!(before.allowed && before.needs_reconsent);
        f.consent = Some((
            ConsentStatus::Granted,
            1,
            true,
            Some(now - TimeDelta::days(1)),
        ));
        assert_eq!(evaluate(&f, now).reason, "reconsent_required");
    }
}
