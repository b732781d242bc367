//! "May we process this person's data for this purpose?" — the main app's hot path.
//!
//! The answer comes from the current-state rows alone: one indexed query for a single check,
//! three set queries for a batch, whatever its size. Single checks are answered from memory
//! when the same question was read recently ([`Checks`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryResult,
    prelude::*,
    sea_query::{Alias, Expr, ExprTrait, JoinType, Query},
};

use super::model::{ConsentStatus, consents};
use crate::{
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

/// One check, in one query.
pub async fn check(
    conn: &impl ConnectionTrait,
    external_id: &str,
    purpose_key: &str,
    now: DateTime<Utc>,
) -> Result<CheckResult, DbErr> {
    Ok(evaluate(&facts(conn, external_id, purpose_key).await?, now))
}

/// Single checks answered from the facts read for the same person and purpose, while they are
/// current. An entry is used only while the database's change count ([`crate::db::Db::writes`])
/// has not moved since it was read: it moves when this process commits a write, so a
/// withdrawal is never answered from memory by the replica that recorded it, and when another
/// process commits one (`NOTIFY` on PostgreSQL, `data_version` polled on SQLite), so other
/// replicas and CLI commands are seen within milliseconds. Entries also expire after
/// `consent_cache.ttl_ms` whatever happens. The answer is evaluated at each call, so a
/// re-consent deadline passing is seen at once.
pub struct Checks {
    cache: Option<moka::sync::Cache<(String, String), (u64, Facts)>>,
}

impl Checks {
    pub fn new(config: &crate::config::ConsentCacheConfig) -> Self {
        Self {
            cache: config.enabled.then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(config.capacity)
                    .time_to_live(std::time::Duration::from_millis(config.ttl_ms))
                    .build()
            }),
        }
    }

    /// [`check`], from memory when the facts are current.
    pub async fn check(
        &self,
        db: &crate::db::Db,
        external_id: &str,
        purpose_key: &str,
        now: DateTime<Utc>,
    ) -> Result<CheckResult, DbErr> {
        let Some(cache) = &self.cache else {
            return check(db.conn(), external_id, purpose_key, now).await;
        };
        let key = (external_id.to_string(), purpose_key.to_string());
        // Read before the database, so that a write committing meanwhile leaves the entry
        // filed under a count that is already past.
        let writes = db.writes();
        if let Some((read_at, facts)) = cache.get(&key)
            && read_at == writes
        {
            return Ok(evaluate(&facts, now));
        }
        let facts = facts(db.conn(), external_id, purpose_key).await?;
        let answer = evaluate(&facts, now);
        cache.insert(key, (writes, facts));
        Ok(answer)
    }
}

/// The facts of one check, in one query.
async fn facts(
    conn: &impl ConnectionTrait,
    external_id: &str,
    purpose_key: &str,
) -> Result<Facts, DbErr> {
    let (p, s, c) = (Alias::new("p"), Alias::new("s"), Alias::new("c"));
    let query = Query::select()
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
        .from_as(purposes::Entity, p.clone())
        .join_as(
            JoinType::LeftJoin,
            subjects::Entity,
            s.clone(),
            Expr::col((s.clone(), subjects::Column::ExternalId)).eq(external_id),
        )
        .join_as(
            JoinType::LeftJoin,
            consents::Entity,
            c.clone(),
            Expr::col((c.clone(), consents::Column::SubjectId))
                .equals((s.clone(), subjects::Column::Id))
                .and(
                    Expr::col((c.clone(), consents::Column::PurposeKey))
                        .equals((p.clone(), purposes::Column::Key)),
                ),
        )
        .and_where(Expr::col((p, purposes::Column::Key)).eq(purpose_key))
        .to_owned();
    match conn.query_one(&query).await? {
        None => Ok(Facts::default()),
        Some(row) => facts_from_row(&row),
    }
}

fn facts_from_row(row: &QueryResult) -> Result<Facts, DbErr> {
    let parse = |e: sea_orm::DbErr| e;
    let legal_basis: String = row.try_get("", "legal_basis")?;
    let archived_at: Option<DateTime<Utc>> = row.try_get("", "archived_at")?;
    let restricted: Option<bool> = row.try_get("", "restricted")?;
    let age_status: Option<String> = row.try_get("", "age_status")?;
    let status: Option<String> = row.try_get("", "status")?;
    let policy_version: Option<i32> = row.try_get("", "policy_version")?;
    let needs_reconsent: Option<bool> = row.try_get("", "needs_reconsent")?;
    let due: Option<DateTime<Utc>> = row.try_get("", "reconsent_due_at")?;
    let channel: Option<String> = row.try_get("", "channel")?;
    Ok(Facts {
        purpose: Some((
            LegalBasis::try_from_value(&legal_basis).map_err(parse)?,
            archived_at.is_some(),
        )),
        subject: match (restricted, age_status) {
            (Some(r), Some(a)) => Some((r, AgeStatus::try_from_value(&a).map_err(parse)?)),
            _ => None,
        },
        consent: match (status, policy_version) {
            (Some(s), Some(v)) => Some((
                ConsentStatus::try_from_value(&s).map_err(parse)?,
                v,
                needs_reconsent.unwrap_or(false),
                due,
            )),
            _ => None,
        },
        gpc: channel.as_deref() == Some(GPC_CHANNEL),
    })
}

/// Many checks at once: the subjects, purposes and consents involved are read with one query
/// each.
pub async fn check_many(
    conn: &impl ConnectionTrait,
    pairs: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Vec<CheckResult>, DbErr> {
    let external_ids: Vec<&str> = pairs.iter().map(|(s, _)| s.as_str()).collect();
    let purpose_keys: Vec<&str> = pairs.iter().map(|(_, p)| p.as_str()).collect();
    let subjects: BTreeMap<String, subjects::Model> = subjects::Entity::find()
        .filter(subjects::Column::ExternalId.is_in(external_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|s| (s.external_id.clone(), s))
        .collect();
    let purposes: BTreeMap<String, purposes::Model> = purposes::Entity::find()
        .filter(purposes::Column::Key.is_in(purpose_keys.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|p| (p.key.clone(), p))
        .collect();
    let subject_ids: Vec<&str> = subjects.values().map(|s| s.id.as_str()).collect();
    let consents: BTreeMap<(String, String), consents::Model> = consents::Entity::find()
        .filter(consents::Column::SubjectId.is_in(subject_ids))
        .filter(consents::Column::PurposeKey.is_in(purpose_keys))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| ((c.subject_id.clone(), c.purpose_key.clone()), c))
        .collect();
    Ok(pairs
        .iter()
        .map(|(external_id, purpose_key)| {
            let subject = subjects.get(external_id);
            let consent = subject.and_then(|s| consents.get(&(s.id.clone(), purpose_key.clone())));
            let facts = Facts {
                purpose: purposes
                    .get(purpose_key)
                    .map(|p| (p.legal_basis, p.archived_at.is_some())),
                subject: subject.map(|s| (s.restricted, s.age_status)),
                consent: consent.map(|c| {
                    (
                        c.status,
                        c.policy_version,
                        c.needs_reconsent,
                        c.reconsent_due_at,
                    )
                }),
                gpc: consent.is_some_and(|c| c.channel == GPC_CHANNEL),
            };
            evaluate(&facts, now)
        })
        .collect())
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
