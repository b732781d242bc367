//! Appending to the ledger, reading it back, and verifying its chain.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, prelude::*,
    sea_query::OnConflict,
};
use serde_json::json;

use super::{
    ConsentError,
    model::{Action, ConsentActor, ConsentStatus, consents, events},
};
use crate::vocab::CountryCode;
use crate::{
    audit, clock,
    config::Config,
    crypto,
    db::{Batcher, ROWS_PER_STATEMENT, Sets, Tx},
    error::FieldError,
    law,
    notify::outbox,
    policy::{self, Policy, PolicyStatus},
    purpose::{self, LegalBasis, Purpose},
    subject::{self, AgeEvent, AgeStatus, GENESIS_HASH, Subject},
};

/// Most decisions in one request.
pub const MAX_DECISIONS: usize = 50;
/// How far in the future a reported `occurred_at` may lie (clock skew between servers).
const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// The policy document a person was shown: a version of a policy, optionally pinned to one
/// document by id; otherwise the document for the subject's jurisdiction and language.
#[derive(Debug, Clone)]
pub struct PolicyRef {
    pub key: String,
    pub version: i32,
    pub id: Option<String>,
}

/// One purpose and the person's answer.
#[derive(Debug, Clone)]
pub struct Decision {
    pub purpose: String,
    pub granted: bool,
}

/// Everything needed to record decisions.
#[derive(Debug, Clone)]
pub struct RecordRequest {
    pub external_id: String,
    pub decisions: Vec<Decision>,
    pub policy: PolicyRef,
    pub actor: ConsentActor,
    pub channel: String,
    pub language: Option<String>,
    pub jurisdiction: Option<CountryCode>,
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
    /// When the person decided; defaults to now. The main app may report past decisions.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Required for admin corrections.
    pub reason: Option<String>,
    /// Writes an audit entry naming this actor (admin corrections).
    pub audited_by: Option<audit::Actor>,
}

/// The state of one purpose after a request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub purpose: String,
    pub status: ConsentStatus,
    pub policy_version: i32,
    pub needs_reconsent: bool,
    /// The event written; `None` when the decision repeated the current state.
    pub event_id: Option<String>,
}

/// Records decisions for one subject: one event per decision that changes something, the
/// current state, the chain head, and a `consent.withdrawn` webhook per withdrawal, all in the
/// caller's transaction. Repeating the current state records nothing.
#[tracing::instrument(skip_all, fields(decisions = req.decisions.len(), actor = ?req.actor), err)]
pub async fn record(
    tx: &mut Tx,
    config: &Config,
    req: RecordRequest,
) -> Result<Vec<Recorded>, ConsentError> {
    let now = clock::now();
    validate(&req, now)?;
    let mut keys: Vec<&str> = req.decisions.iter().map(|d| d.purpose.as_str()).collect();
    keys.sort_unstable();
    let purposes = tx
        .remember(format!("purposes:{}", keys.join(",")), async {
            purpose::find_many(&*tx, &keys).await
        })
        .await?;
    let mut subject = subject::find_or_create_locked(tx, &req.external_id).await?;
    let documents = documents(tx, &req.policy.key).await?;
    let mut current = current_states(&*tx, &[subject.id.as_str()], &keys).await?;
    let mut changes = Changes::default();
    let known = Known {
        config,
        now,
        purposes: &purposes,
        documents: &documents,
    };
    let (results, confirms_own) = decide(&known, &req, &mut subject, &mut current, &mut changes)?;
    changes.write(tx).await?;
    if let Some(by) = &req.audited_by {
        audit::record(
            &*tx,
            by,
            "consent.corrected",
            audit::Target::new("subject", &subject.id),
            json!({"events": results.iter().filter_map(|r| r.event_id.clone()).collect::<Vec<_>>()}),
        )
        .await?;
    }
    if confirms_own {
        subject::age_event(tx, &subject, AgeEvent::ConfirmedOwnConsent).await?;
    }
    Ok(results)
}

/// The published and retired documents of a policy, read once per transaction.
async fn documents(tx: &Tx, key: &str) -> Result<Arc<Vec<Policy>>, DbErr> {
    tx.remember(format!("policy-headers:{key}"), async {
        policy::list_public_headers(tx, key).await
    })
    .await
}

/// The current states of these people for these purposes, by person and purpose.
async fn current_states(
    conn: &impl ConnectionTrait,
    subject_ids: &[&str],
    purposes: &[&str],
) -> Result<BTreeMap<(String, String), consents::Model>, DbErr> {
    if subject_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(consents::Entity::find()
        .filter(consents::Column::SubjectId.is_in(subject_ids.iter().copied()))
        .filter(consents::Column::PurposeKey.is_in(purposes.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| ((c.subject_id.clone(), c.purpose_key.clone()), c))
        .collect())
}

/// What decisions change, gathered in memory by [`decide`] for one request or many, then
/// written with one statement per table.
#[derive(Default)]
struct Changes {
    events: Vec<events::Model>,
    /// The current state after the last change, by person and purpose.
    states: BTreeMap<(String, String), consents::Model>,
    /// `consent.withdrawn` webhooks: dedupe key and data.
    withdrawals: Vec<(String, serde_json::Value)>,
    /// Each changed person's new chain head: sequence number and hash.
    heads: BTreeMap<String, (i64, String)>,
}

impl Changes {
    async fn write(self, tx: &mut Tx) -> Result<(), DbErr> {
        for chunk in self.events.chunks(ROWS_PER_STATEMENT) {
            events::Entity::insert_many(chunk.iter().cloned().map(events::ActiveModel::from))
                .exec_without_returning(&*tx)
                .await?;
        }
        let states: Vec<consents::Model> = self.states.into_values().collect();
        for chunk in states.chunks(ROWS_PER_STATEMENT) {
            consents::Entity::insert_many(chunk.iter().cloned().map(consents::ActiveModel::from))
                .on_conflict(
                    OnConflict::columns([
                        consents::Column::SubjectId,
                        consents::Column::PurposeKey,
                    ])
                    .update_columns([
                        consents::Column::Status,
                        consents::Column::PolicyId,
                        consents::Column::PolicyKey,
                        consents::Column::PolicyVersion,
                        consents::Column::PolicyJurisdiction,
                        consents::Column::LastEventId,
                        consents::Column::Channel,
                        consents::Column::NeedsReconsent,
                        consents::Column::ReconsentDueAt,
                        consents::Column::UpdatedAt,
                    ])
                    .to_owned(),
                )
                .exec_without_returning(&*tx)
                .await?;
        }
        outbox::enqueue_webhooks(tx, "consent.withdrawn", &self.withdrawals).await?;
        let heads: Vec<(String, i64, String)> = self
            .heads
            .into_iter()
            .map(|(id, (seq, hash))| (id, seq, hash))
            .collect();
        for chunk in heads.chunks(ROWS_PER_STATEMENT) {
            subject::advance_consent_chains(&*tx, chunk).await?;
        }
        Ok(())
    }
}

/// What requests are decided against besides the person: the time, and the purposes and
/// policy documents read for them.
#[derive(Clone, Copy)]
struct Known<'a> {
    config: &'a Config,
    now: DateTime<Utc>,
    purposes: &'a BTreeMap<String, Purpose>,
    documents: &'a [Policy],
}

/// Decides one request against the state read before (`subject`, and `current` by person and
/// purpose), in memory: what it changes goes to `changes`, and `subject` and `current` move
/// with it, so that a later request in the same batch sees them. A refusal changes nothing.
/// Returns what was recorded and whether the person is confirming their own consent past the
/// age threshold (see [`check_subject`]).
fn decide(
    known: &Known<'_>,
    req: &RecordRequest,
    subject: &mut Subject,
    current: &mut BTreeMap<(String, String), consents::Model>,
    changes: &mut Changes,
) -> Result<(Vec<Recorded>, bool), ConsentError> {
    let Known {
        config,
        now,
        purposes,
        documents,
    } = *known;
    check_purposes(req, purposes)?;
    let jurisdiction = req
        .jurisdiction
        .as_ref()
        .map(|c| c.to_string())
        .or_else(|| subject.jurisdiction.clone());
    let shown = resolve_policy(documents, req, subject, jurisdiction.as_deref())?;
    let confirms_own = check_subject(config, req, subject, purposes, now.date_naive())?;
    let superseded_by = superseding_material_version(documents, &shown);
    let language = req
        .language
        .clone()
        .or_else(|| subject.locale.clone())
        .unwrap_or_else(|| shown.language.clone());
    let mut results = Vec::with_capacity(req.decisions.len());
    for decision in &req.decisions {
        let key = (subject.id.clone(), decision.purpose.clone());
        let existing = current.get(&key);
        let action = match (decision.granted, existing.map(|c| c.status)) {
            (true, _) => Action::Grant,
            (false, Some(ConsentStatus::Granted)) => Action::Withdraw,
            (false, _) => Action::Deny,
        };
        if let Some(c) = existing
            && is_repeat(action, c, &shown)
        {
            results.push(Recorded {
                purpose: decision.purpose.clone(),
                status: c.status,
                policy_version: c.policy_version,
                needs_reconsent: c.needs_reconsent,
                event_id: None,
            });
            continue;
        }
        let mut event = events::Model {
            id: uuid::Uuid::now_v7().to_string(),
            subject_id: subject.id.clone(),
            seq: subject.consent_seq + 1,
            purpose_key: decision.purpose.clone(),
            action,
            policy_id: shown.id.clone(),
            policy_sha256: shown.content_sha256.clone(),
            actor: req.actor,
            channel: req.channel.clone(),
            language: language.clone(),
            jurisdiction: jurisdiction
                .clone()
                .unwrap_or_else(|| shown.jurisdiction.clone()),
            user_agent: super::evidence::user_agent(req.user_agent.as_deref()),
            ip: super::evidence::ip(&config.consent, req.ip),
            reason: req.reason.clone(),
            occurred_at: req.occurred_at.map(clock::truncate).unwrap_or(now),
            recorded_at: now,
            prev_hash: subject.consent_hash.clone(),
            hash: String::new(),
        };
        event.hash = event_hash(&event);
        subject.consent_seq = event.seq;
        subject.consent_hash = event.hash.clone();
        changes
            .heads
            .insert(subject.id.clone(), (event.seq, event.hash.clone()));

        let needs_reconsent = action == Action::Grant && superseded_by.is_some();
        let state = consents::Model {
            subject_id: subject.id.clone(),
            purpose_key: decision.purpose.clone(),
            status: action.status(),
            policy_id: shown.id.clone(),
            policy_key: shown.key.clone(),
            policy_version: shown.version,
            policy_jurisdiction: shown.jurisdiction.clone(),
            last_event_id: event.id.clone(),
            channel: req.channel.clone(),
            needs_reconsent,
            reconsent_due_at: if needs_reconsent { superseded_by } else { None },
            updated_at: now,
        };
        current.insert(key.clone(), state.clone());
        changes.states.insert(key, state);
        if action == Action::Withdraw {
            changes.withdrawals.push((
                format!("consent.withdrawn:{}", event.id),
                json!({
                    "external_id": req.external_id,
                    "purpose": decision.purpose,
                    "event_id": event.id,
                    "occurred_at": clock::canonical(event.occurred_at),
                }),
            ));
        }
        results.push(Recorded {
            purpose: decision.purpose.clone(),
            status: action.status(),
            policy_version: shown.version,
            needs_reconsent,
            event_id: Some(event.id.clone()),
        });
        changes.events.push(event);
    }
    Ok((results, confirms_own))
}

/// The answer to one request of a batch.
type Answer = Result<Vec<Recorded>, ConsentError>;

/// Records a batch of requests as [`record`] would one by one, in this order, with a few
/// statements for the whole batch: the people, purposes, documents and current states read
/// with one query each, every decision made in memory, and the changes written with one
/// statement per table. A request that needs more than the ledger (an audit entry, an age
/// event) or follows one about the same person is recorded alone afterwards. An `Err` means
/// the database refused the set (such as another writer meeting one of the same new people
/// first): nothing of it stays meaningful and the caller rolls it back.
async fn record_set(
    tx: &mut Tx,
    config: &Config,
    reqs: &[RecordRequest],
) -> Result<Vec<Option<Answer>>, DbErr> {
    let now = clock::now();
    let mut answers: Vec<Option<Answer>> = reqs
        .iter()
        .map(|req| validate(req, now).err().map(Err))
        .collect();
    let mut keys: Vec<&str> = reqs
        .iter()
        .flat_map(|r| r.decisions.iter().map(|d| d.purpose.as_str()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let purposes = purpose::find_many(&*tx, &keys).await?;
    let mut people: Vec<&str> = reqs.iter().map(|r| r.external_id.as_str()).collect();
    people.sort_unstable();
    people.dedup();
    let mut subjects: BTreeMap<String, (Subject, bool)> = subject::find_many_locked(tx, &people)
        .await?
        .into_iter()
        .map(|s| (s.external_id.clone(), (s, true)))
        .collect();
    let ids: Vec<&str> = subjects.values().map(|(s, _)| s.id.as_str()).collect();
    let mut current = current_states(&*tx, &ids, &keys).await?;
    let mut changes = Changes::default();
    // People whose later requests wait for an earlier one's extra writes.
    let mut waiting = std::collections::BTreeSet::new();
    let mut kept_new = std::collections::BTreeSet::new();
    let mut confirming = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        if answers[i].is_some() {
            continue;
        }
        if req.audited_by.is_some() || waiting.contains(&req.external_id) {
            waiting.insert(req.external_id.clone());
            continue;
        }
        let documents = documents(tx, &req.policy.key).await?;
        let (subject, stored) = subjects
            .entry(req.external_id.clone())
            .or_insert_with(|| (subject::first_met(&req.external_id), false));
        let known = Known {
            config,
            now,
            purposes: &purposes,
            documents: &documents,
        };
        let decided = decide(&known, req, subject, &mut current, &mut changes);
        if let Ok((_, confirms_own)) = &decided {
            if !*stored {
                kept_new.insert(req.external_id.clone());
            }
            if *confirms_own {
                confirming.push(subject.clone());
                waiting.insert(req.external_id.clone());
            }
        }
        answers[i] = Some(decided.map(|(results, _)| results));
    }
    let new: Vec<Subject> = kept_new
        .iter()
        .filter_map(|id| subjects.get(id).map(|(s, _)| s.clone()))
        .collect();
    if subject::insert_first_met(&*tx, &new).await? != new.len() as u64 {
        return Err(DbErr::Custom(
            "another writer stored one of the batch's new people first".into(),
        ));
    }
    changes.write(tx).await?;
    for subject in &confirming {
        subject::age_event(tx, subject, AgeEvent::ConfirmedOwnConsent).await?;
    }
    Ok(answers)
}

/// The shared commit's way with consent decisions: the whole batch as a set
/// (`record_set`), the requests it leaves then each alone under a savepoint; if the
/// database refuses the set, every request alone.
pub struct DecisionSets {
    config: Arc<Config>,
    refused: std::sync::atomic::AtomicU64,
}

/// Consent decisions that stand alone (the portal's, the main app's, a banner's), recorded in
/// a transaction shared with other people's.
pub type Decisions = Batcher<DecisionSets>;

impl DecisionSets {
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            refused: Default::default(),
        }
    }

    /// Sets the database refused, each then written decision by decision: for `/metrics`.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Sets for DecisionSets {
    type Item = RecordRequest;
    type Answer = Answer;

    fn key(item: &RecordRequest) -> &str {
        &item.external_id
    }

    fn write<'t>(
        &'t self,
        tx: &'t mut Tx,
        items: Vec<RecordRequest>,
    ) -> BoxFuture<'t, Result<Vec<Answer>, DbErr>> {
        Box::pin(async move {
            let point = tx.savepoint().await?;
            let answers = match record_set(tx, &self.config, &items).await {
                Ok(answers) => {
                    tx.keep(point).await?;
                    answers
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a set of consent decisions was refused; recording each alone");
                    tx.roll_back_to(point).await?;
                    self.refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    items.iter().map(|_| None).collect()
                }
            };
            let mut out = Vec::with_capacity(items.len());
            for (req, answer) in items.into_iter().zip(answers) {
                if let Some(answer) = answer {
                    out.push(answer);
                    continue;
                }
                let point = tx.savepoint().await?;
                let answer = record(tx, &self.config, req).await;
                if answer.is_ok() {
                    tx.keep(point).await?;
                } else {
                    tx.roll_back_to(point).await?;
                }
                out.push(answer);
            }
            Ok(out)
        })
    }
}

/// [`record`] for decisions that stand alone (the portal's, the main app's): in a transaction
/// shared with other people's decisions, answered once it has committed.
pub async fn record_alone(
    decisions: &Decisions,
    req: RecordRequest,
) -> Result<Vec<Recorded>, ConsentError> {
    decisions.submit(req).await?
}

/// Where a withdrawal came from, for [`withdraw`].
pub struct Withdrawal<'a> {
    /// `objection`, `unsubscribe:one-click`, `unsubscribe:page`.
    pub channel: &'a str,
    pub language: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
}

/// Withdraws a person's granted consents to `purposes`, each under the policy version it was
/// given with (the person saw no new document: they only took their consent back). Purposes
/// not granted need nothing. Used by objections and by one-click unsubscribe.
pub async fn withdraw(
    tx: &mut Tx,
    config: &Config,
    subject: &Subject,
    purposes: &[String],
    how: Withdrawal<'_>,
) -> Result<Vec<Recorded>, ConsentError> {
    let mut recorded = Vec::new();
    for current in current(&*tx, &subject.id).await? {
        if !purposes.contains(&current.purpose_key) || current.status != ConsentStatus::Granted {
            continue;
        }
        recorded.extend(
            record(
                tx,
                config,
                RecordRequest {
                    external_id: subject.external_id.clone(),
                    decisions: vec![Decision {
                        purpose: current.purpose_key.clone(),
                        granted: false,
                    }],
                    policy: PolicyRef {
                        key: current.policy_key.clone(),
                        version: current.policy_version,
                        id: Some(current.policy_id.clone()),
                    },
                    actor: ConsentActor::Subject,
                    channel: how.channel.into(),
                    language: how.language.clone(),
                    jurisdiction: None,
                    user_agent: how.user_agent.clone(),
                    ip: how.ip,
                    occurred_at: None,
                    reason: None,
                    audited_by: None,
                },
            )
            .await?,
        );
    }
    Ok(recorded)
}

/// Deletes (or, dry, counts) the consent events and current states of people erased at or
/// before `cutoff`, once the legal period for keeping proof has passed; the subject room then
/// forgets their policy acceptances and resets their chains, so that what remains is an erased
/// id with no history. Part of the purge of Consentry's own data; returns the events counted.
pub async fn purge_proofs(tx: &mut Tx, cutoff: DateTime<Utc>, dry_run: bool) -> Result<u64, DbErr> {
    let erased = || subject::erased_before(cutoff);
    if dry_run {
        return events::Entity::find()
            .filter(events::Column::SubjectId.in_subquery(erased()))
            .count(&*tx)
            .await;
    }
    let deleted = events::Entity::delete_many()
        .filter(events::Column::SubjectId.in_subquery(erased()))
        .exec(&*tx)
        .await?
        .rows_affected;
    consents::Entity::delete_many()
        .filter(consents::Column::SubjectId.in_subquery(erased()))
        .exec(&*tx)
        .await?;
    subject::forget_proofs(tx, cutoff, false).await?;
    Ok(deleted)
}

/// A decision that would leave the state as it is. A grant under another policy version is
/// not a repeat: it is fresh consent to the new text.
fn is_repeat(action: Action, current: &consents::Model, shown: &Policy) -> bool {
    match action {
        Action::Grant => {
            current.status == ConsentStatus::Granted
                && current.policy_id == shown.id
                && !current.needs_reconsent
        }
        Action::Withdraw | Action::Deny => current.status != ConsentStatus::Granted,
    }
}

fn validate(req: &RecordRequest, now: DateTime<Utc>) -> Result<(), ConsentError> {
    let mut errors = Vec::new();
    if req.decisions.is_empty() || req.decisions.len() > MAX_DECISIONS {
        errors.push(FieldError::new(
            "decisions",
            format!("between 1 and {MAX_DECISIONS} decisions"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, d) in req.decisions.iter().enumerate() {
        if !seen.insert(d.purpose.as_str()) {
            errors.push(FieldError::new(
                format!("decisions.{i}.purpose"),
                "each purpose may appear once per request",
            ));
        }
    }
    if req.actor == ConsentActor::Admin && req.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        errors.push(FieldError::new(
            "reason",
            "an admin correction must say why it was made",
        ));
    }
    if let Some(at) = req.occurred_at
        && at > now + MAX_CLOCK_SKEW
    {
        errors.push(FieldError::new("occurred_at", "lies in the future"));
    }
    if let Some(l) = &req.language
        && !policy::document::is_language(l)
    {
        errors.push(FieldError::new("language", "a language tag such as `en`"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConsentError::Invalid(errors))
    }
}

/// Unknown and archived purposes are refused; a purpose needing separate consent is granted
/// on its own (PIPL Arts 23, 25, 26, 29, 39); a required purpose cannot be withdrawn.
fn check_purposes(
    req: &RecordRequest,
    purposes: &BTreeMap<String, Purpose>,
) -> Result<(), ConsentError> {
    let unknown: Vec<FieldError> = req
        .decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| !purposes.contains_key(&d.purpose))
        .map(|(i, d)| {
            FieldError::new(
                format!("decisions.{i}.purpose"),
                format!("no purpose `{}`", d.purpose),
            )
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ConsentError::Invalid(unknown));
    }
    for d in &req.decisions {
        let p = &purposes[&d.purpose];
        if p.archived_at.is_some() && d.granted {
            return Err(ConsentError::refused(
                "purpose_archived",
                format!("`{}` is archived and takes no new consent", p.key),
            ));
        }
        if p.required && !d.granted {
            return Err(ConsentError::RequiredPurpose(p.key.clone()));
        }
        // Separate consent is not bundled with other consents; refusals beside it bundle nothing.
        if p.separate_consent && d.granted && req.decisions.iter().filter(|o| o.granted).count() > 1
        {
            return Err(ConsentError::refused(
                "separate_consent",
                format!(
                    "`{}` needs separate consent (PIPL {}): grant it apart from other purposes",
                    p.key,
                    p.separate_consent_reason
                        .map(|r| r.to_value())
                        .unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// A restricted subject grants nothing; a minor grants nothing that rests on consent unless the
/// guardian (or an admin correcting the record) records it, even once a guardian has been
/// verified (withdrawing is always possible). Under
/// PIPL a child's data is sensitive (Art 28), so each consent-based purpose is granted on its
/// own (Art 29).
///
/// Returns whether the person has grown past the threshold and is now confirming their own
/// consents: they are then recorded as an adult.
fn check_subject(
    config: &Config,
    req: &RecordRequest,
    subject: &Subject,
    purposes: &BTreeMap<String, Purpose>,
    today: chrono::NaiveDate,
) -> Result<bool, ConsentError> {
    let consent_grants = || {
        req.decisions
            .iter()
            .filter(|d| d.granted && purposes[&d.purpose].legal_basis == LegalBasis::Consent)
    };
    if subject.restricted && req.decisions.iter().any(|d| d.granted) {
        return Err(ConsentError::refused(
            "restricted",
            "processing of this subject's data is restricted; no consent can be granted",
        ));
    }
    let minor = matches!(
        subject.age_status,
        AgeStatus::MinorGuardianPending | AgeStatus::MinorGuardianVerified
    );
    let confirms_own = minor
        && req.actor == ConsentActor::Subject
        && subject::may_confirm_own_consent(config, subject, today);
    if confirms_own {
        return Ok(true);
    }
    let guardian_needed = minor
        && !matches!(req.actor, ConsentActor::Guardian | ConsentActor::Admin)
        && consent_grants().next().is_some();
    if guardian_needed {
        return Err(ConsentError::refused(
            "guardian_required",
            "the subject is below the age of digital consent; a guardian must consent",
        ));
    }
    if minor
        && law::child_needs_separate_consent(subject.jurisdiction.as_deref())
        && consent_grants().count() > 1
    {
        return Err(ConsentError::refused(
            "separate_consent",
            "a child's data is sensitive under PIPL: grant each purpose in a request of its own",
        ));
    }
    Ok(false)
}

/// The published document the person was shown, among the policy's published and retired
/// documents.
fn resolve_policy(
    documents: &[Policy],
    req: &RecordRequest,
    subject: &Subject,
    jurisdiction: Option<&str>,
) -> Result<Policy, ConsentError> {
    let unusable = |detail: String| ConsentError::refused("policy_not_published", detail);
    let doc = match &req.policy.id {
        Some(id) => documents
            .iter()
            .find(|p| &p.id == id && p.version == req.policy.version),
        None => {
            let language = req.language.as_deref().or(subject.locale.as_deref());
            policy::pick(documents, Some(req.policy.version), jurisdiction, language)
        }
    };
    let doc = doc.ok_or_else(|| {
        unusable(format!(
            "{} version {} is not published",
            req.policy.key, req.policy.version
        ))
    })?;
    if doc.status != PolicyStatus::Published {
        return Err(unusable(format!(
            "{} version {} is {}; consent needs a published version",
            doc.key,
            doc.version,
            doc.status.to_value()
        )));
    }
    Ok(doc.clone())
}

/// The effective date of a newer material version of the same policy and jurisdiction, if one
/// is published: consent given under `shown` then already needs renewing.
fn superseding_material_version(documents: &[Policy], shown: &Policy) -> Option<DateTime<Utc>> {
    documents
        .iter()
        .filter(|p| p.jurisdiction == shown.jurisdiction && p.version > shown.version && p.material)
        .min_by_key(|p| p.version)
        .map(|p| p.effective_at)
}

/// SHA-256 over the previous hash and the event's canonical JSON.
pub fn event_hash(e: &events::Model) -> String {
    let document = json!({
        "id": e.id,
        "subject_id": e.subject_id,
        "seq": e.seq,
        "purpose": e.purpose_key,
        "action": e.action.to_value(),
        "policy_id": e.policy_id,
        "policy_sha256": e.policy_sha256,
        "actor": e.actor.to_value(),
        "channel": e.channel,
        "language": e.language,
        "jurisdiction": e.jurisdiction,
        "user_agent": e.user_agent,
        "ip": e.ip,
        "reason": e.reason,
        "occurred_at": clock::canonical(e.occurred_at),
        "recorded_at": clock::canonical(e.recorded_at),
    });
    let input = format!("{}\n{}", e.prev_hash, crypto::canonical_json(&document));
    crypto::sha256_hex(input.as_bytes())
}

/// The current state of each purpose for a subject.
pub async fn current(
    conn: &impl ConnectionTrait,
    subject_id: &str,
) -> Result<Vec<consents::Model>, DbErr> {
    consents::Entity::find()
        .filter(consents::Column::SubjectId.eq(subject_id))
        .order_by_asc(consents::Column::PurposeKey)
        .all(conn)
        .await
}

/// A page of a subject's events, newest first, before sequence number `before` if given.
pub async fn history(
    conn: &impl ConnectionTrait,
    subject_id: &str,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<events::Model>, DbErr> {
    let mut query = events::Entity::find().filter(events::Column::SubjectId.eq(subject_id));
    if let Some(before) = before {
        query = query.filter(events::Column::Seq.lt(before));
    }
    query
        .order_by_desc(events::Column::Seq)
        .limit(limit)
        .all(conn)
        .await
}

/// One event of a subject.
pub async fn event(
    conn: &impl ConnectionTrait,
    subject_id: &str,
    event_id: &str,
) -> Result<events::Model, ConsentError> {
    events::Entity::find_by_id(event_id.to_string())
        .filter(events::Column::SubjectId.eq(subject_id))
        .one(conn)
        .await?
        .ok_or(ConsentError::EventNotFound)
}

/// The outcome of walking a subject's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub ok: bool,
    pub checked: u64,
    pub first_broken_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Events read per round trip while verifying.
const VERIFY_PAGE: u64 = 1000;

/// How many people have a decision recorded for a purpose (one that may not be deleted).
pub async fn count_for_purpose(
    conn: &impl ConnectionTrait,
    purpose_key: &str,
) -> Result<u64, DbErr> {
    sea_orm::PaginatorTrait::count(
        consents::Entity::find().filter(consents::Column::PurposeKey.eq(purpose_key)),
        conn,
    )
    .await
}

/// How many events the ledger holds, for monitoring.
pub async fn event_count(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    sea_orm::PaginatorTrait::count(events::Entity::find(), conn).await
}

/// Recomputes every hash of a subject's chain in order, and checks that the head on the
/// subject row matches the last event (so that deleting the newest events shows too).
pub async fn verify(conn: &impl ConnectionTrait, subject: &Subject) -> Result<ChainReport, DbErr> {
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut checked = 0;
    let broken = |seq: i64, checked: u64, problem: &str| ChainReport {
        ok: false,
        checked,
        first_broken_seq: Some(seq),
        problem: Some(problem.to_string()),
    };
    loop {
        let page = events::Entity::find()
            .filter(events::Column::SubjectId.eq(&subject.id))
            .filter(events::Column::Seq.gte(expected_seq))
            .order_by_asc(events::Column::Seq)
            .limit(VERIFY_PAGE)
            .all(conn)
            .await?;
        let done = (page.len() as u64) < VERIFY_PAGE;
        for e in page {
            if e.seq != expected_seq {
                return Ok(broken(expected_seq, checked, "an event is missing"));
            }
            if e.prev_hash != prev_hash {
                return Ok(broken(
                    e.seq,
                    checked,
                    "the link to the previous event is broken",
                ));
            }
            if event_hash(&e) != e.hash {
                return Ok(broken(e.seq, checked, "the event was altered"));
            }
            checked += 1;
            expected_seq += 1;
            prev_hash = e.hash;
        }
        if done {
            break;
        }
    }
    if subject.consent_seq != expected_seq - 1 || subject.consent_hash != prev_hash {
        return Ok(broken(
            expected_seq,
            checked,
            "the chain ends before its recorded head: events were removed",
        ));
    }
    Ok(ChainReport {
        ok: true,
        checked,
        first_broken_seq: None,
        problem: None,
    })
}

/// The subject with this external id, or [`ConsentError::SubjectNotFound`].
pub async fn subject(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Subject, ConsentError> {
    subject::find(conn, external_id)
        .await?
        .ok_or(ConsentError::SubjectNotFound)
}

/// Current-state counts per purpose, policy version and status.
#[derive(Debug, Clone)]
pub struct StatsRow {
    pub purpose: String,
    pub policy_version: i32,
    pub status: ConsentStatus,
    pub needs_reconsent: bool,
    pub count: i64,
}

/// Grants and withdrawals of one purpose in one week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekOfEvents {
    pub purpose: String,
    /// The Monday the week starts on.
    pub week: chrono::NaiveDate,
    pub grants: i64,
    pub withdrawals: i64,
}

/// Grants and withdrawals per purpose and week since `first` (a Monday), for the console's
/// chart. Reads only the three columns it counts, in the order of the events' index.
pub async fn weekly(
    conn: &impl ConnectionTrait,
    first: chrono::NaiveDate,
) -> Result<Vec<WeekOfEvents>, DbErr> {
    use chrono::Datelike;
    let since = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let rows: Vec<(String, Action, DateTime<Utc>)> = events::Entity::find()
        .select_only()
        .column(events::Column::PurposeKey)
        .column(events::Column::Action)
        .column(events::Column::OccurredAt)
        .filter(events::Column::OccurredAt.gte(since))
        .into_tuple()
        .all(conn)
        .await?;
    let mut weeks: BTreeMap<(String, chrono::NaiveDate), (i64, i64)> = BTreeMap::new();
    for (purpose, action, at) in rows {
        let day = at.date_naive();
        let monday = day - TimeDelta::days(day.weekday().num_days_from_monday().into());
        let counts = weeks.entry((purpose, monday)).or_default();
        match action {
            Action::Grant => counts.0 += 1,
            Action::Withdraw => counts.1 += 1,
            Action::Deny => {}
        }
    }
    Ok(weeks
        .into_iter()
        .map(|((purpose, week), (grants, withdrawals))| WeekOfEvents {
            purpose,
            week,
            grants,
            withdrawals,
        })
        .collect())
}

/// Counts of current consents, for the admin console.
pub async fn stats(conn: &impl ConnectionTrait) -> Result<Vec<StatsRow>, DbErr> {
    let rows: Vec<(String, i32, ConsentStatus, bool, i64)> = consents::Entity::find()
        .select_only()
        .column(consents::Column::PurposeKey)
        .column(consents::Column::PolicyVersion)
        .column(consents::Column::Status)
        .column(consents::Column::NeedsReconsent)
        .column_as(consents::Column::SubjectId.count(), "count")
        .group_by(consents::Column::PurposeKey)
        .group_by(consents::Column::PolicyVersion)
        .group_by(consents::Column::Status)
        .group_by(consents::Column::NeedsReconsent)
        .order_by_asc(consents::Column::PurposeKey)
        .order_by_asc(consents::Column::PolicyVersion)
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(purpose, policy_version, status, needs_reconsent, count)| StatsRow {
                purpose,
                policy_version,
                status,
                needs_reconsent,
                count,
            },
        )
        .collect())
}
