//! Subjects: the people the main app knows, by its own user id (`external_id`).
//!
//! A subject row is created the first time anything is recorded about a person (a consent, an
//! event from the main app), so that the main app may send events in any order.
//!
//! This room owns the `subjects` and `policy_acceptances` tables: other rooms change a person
//! only through its functions ([`restrict`], [`lift_restriction`], [`erase`], [`age_event`],
//! [`advance_consent_chains`], ...), each taking the caller's [`Tx`]. The age status moves only
//! through [`AgeStatus::after`], the one state machine every writer shares.

pub mod api;
pub mod model;

use std::collections::BTreeMap;

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, TryIntoModel, prelude::*, sea_query::SelectStatement,
};

use crate::{age::Outcome, clock, db::Tx};
pub use model::{AgeStatus, Model as Subject};

/// What moves a person's age status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeEvent {
    /// The age gate assessed the person's birth date or age band; `None` when neither is known.
    Assessed(Option<Outcome>),
    /// A guardian consented through a valid link.
    GuardianVerified,
    /// A minor who has grown past the threshold confirmed their own consents.
    ConfirmedOwnConsent,
}

impl AgeStatus {
    /// The status after `event`. A verified guardian's consent stands until the person confirms
    /// their own; a minor who grows up stays a minor until then, so that consents given by a
    /// guardian are never silently taken as the adult's own.
    pub fn after(self, event: AgeEvent) -> AgeStatus {
        use AgeStatus::*;
        match (event, self) {
            (AgeEvent::Assessed(None), current) => current,
            (AgeEvent::Assessed(Some(_)), MinorGuardianVerified) => MinorGuardianVerified,
            (AgeEvent::Assessed(Some(Outcome::Allowed)), MinorGuardianPending) => {
                MinorGuardianPending
            }
            (AgeEvent::Assessed(Some(Outcome::Allowed)), _) => Adult,
            (AgeEvent::Assessed(Some(Outcome::GuardianRequired)), _) => MinorGuardianPending,
            (AgeEvent::GuardianVerified, MinorGuardianPending | MinorGuardianVerified) => {
                MinorGuardianVerified
            }
            (AgeEvent::ConfirmedOwnConsent, MinorGuardianPending | MinorGuardianVerified) => Adult,
            (AgeEvent::GuardianVerified | AgeEvent::ConfirmedOwnConsent, current) => current,
        }
    }
}

/// The genesis hash of every subject's consent chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The subject with this internal id, if known.
pub async fn by_id(conn: &impl ConnectionTrait, id: &str) -> Result<Option<Subject>, DbErr> {
    model::Entity::find_by_id(id.to_string()).one(conn).await
}

/// The people with this email address (compared without case), for staff looking someone up.
pub async fn with_email(conn: &impl ConnectionTrait, email: &str) -> Result<Vec<Subject>, DbErr> {
    use sea_orm::sea_query::{ExprTrait, Func};
    model::Entity::find()
        .filter(
            Expr::expr(Func::lower(Expr::col(model::Column::Email)))
                .eq(email.trim().to_lowercase()),
        )
        .all(conn)
        .await
}

/// The subject with this external id, if known.
pub async fn find(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Option<Subject>, DbErr> {
    model::Entity::find()
        .filter(model::Column::ExternalId.eq(external_id))
        .one(conn)
        .await
}

/// The subject with this external id, created (age unknown, no contact details) when new, and
/// locked until the transaction ends (PostgreSQL; SQLite has a single writer), so that appends
/// to the subject's consent chain queue up instead of forking it.
pub async fn find_or_create_locked(tx: &mut Tx, external_id: &str) -> Result<Subject, DbErr> {
    let tx = &*tx;
    let locked = || {
        model::Entity::find()
            .filter(model::Column::ExternalId.eq(external_id))
            .lock_exclusive()
            .one(tx)
    };
    if let Some(subject) = locked().await? {
        return Ok(subject);
    }
    create(tx, external_id).await?;
    locked()
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("subject vanished after insert".into()))
}

/// Many people by their external ids, locked until the transaction ends like
/// [`find_or_create_locked`] does, in external id order so that writers locking overlapping
/// sets wait for one another instead of deadlocking. People not met yet are absent: a caller
/// that decides in memory stands in [`first_met`] for them and stores only those it keeps.
pub async fn find_many_locked(tx: &Tx, external_ids: &[&str]) -> Result<Vec<Subject>, DbErr> {
    model::Entity::find()
        .filter(model::Column::ExternalId.is_in(external_ids.iter().copied()))
        .order_by_asc(model::Column::ExternalId)
        .lock_exclusive()
        .all(tx)
        .await
}

/// A person as first met ([`new_row`]), not stored yet: see [`insert_first_met`].
pub fn first_met(external_id: &str) -> Subject {
    new_row(external_id)
        .try_into_model()
        .expect("a new row sets every column")
}

/// Stores people made with [`first_met`], with one statement. Returns how many were stored:
/// fewer than given when another writer stored one of the same people meanwhile, and the
/// caller's decisions about them were made against a person who is not the stored one.
pub async fn insert_first_met(tx: &Tx, people: &[Subject]) -> Result<u64, DbErr> {
    if people.is_empty() {
        return Ok(0);
    }
    let rows = people.iter().map(|p| model::ActiveModel::from(p.clone()));
    let inserted = model::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([model::Column::ExternalId])
        .exec_without_returning(tx)
        .await?;
    Ok(match inserted {
        sea_orm::TryInsertResult::Inserted(n) => n,
        _ => 0,
    })
}

/// The internal ids of many people by their external ids, creating those who are new (as
/// [`find_or_create_locked`] does one by one), with a few statements per thousand.
pub async fn find_or_create_many(
    tx: &mut Tx,
    external_ids: &[&str],
) -> Result<std::collections::HashMap<String, String>, DbErr> {
    let mut ids = std::collections::HashMap::with_capacity(external_ids.len());
    for chunk in external_ids.chunks(1000) {
        let find = || {
            model::Entity::find()
                .select_only()
                .column(model::Column::ExternalId)
                .column(model::Column::Id)
                .filter(model::Column::ExternalId.is_in(chunk.iter().copied()))
                .into_tuple::<(String, String)>()
                .all(&*tx)
        };
        let found: std::collections::HashMap<String, String> = find().await?.into_iter().collect();
        let new: Vec<model::ActiveModel> = chunk
            .iter()
            .filter(|id| !found.contains_key(**id))
            .map(|id| new_row(id))
            .collect();
        if new.is_empty() {
            ids.extend(found);
        } else {
            model::Entity::insert_many(new)
                .on_conflict_do_nothing_on([model::Column::ExternalId])
                .exec_without_returning(&*tx)
                .await?;
            ids.extend(find().await?);
        }
    }
    Ok(ids)
}

/// The subject with this internal id, locked until the transaction ends.
pub async fn lock(tx: &mut Tx, id: &str) -> Result<Option<Subject>, DbErr> {
    model::Entity::find_by_id(id)
        .lock_exclusive()
        .one(&*tx)
        .await
}

/// Inserts a subject unless one with this external id exists.
async fn create(tx: &Tx, external_id: &str) -> Result<(), DbErr> {
    model::Entity::insert(new_row(external_id))
        .on_conflict_do_nothing_on([model::Column::ExternalId])
        .exec_without_returning(tx)
        .await?;
    Ok(())
}

/// A new person as first met: age unknown, no contact details, an empty consent chain.
pub fn new_row(external_id: &str) -> model::ActiveModel {
    let now = clock::now();
    model::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        external_id: Set(external_id.to_string()),
        email: Set(None),
        display_name: Set(None),
        locale: Set(None),
        jurisdiction: Set(None),
        birth_date: Set(None),
        age_status: Set(AgeStatus::Unknown),
        age_band: Set(None),
        guardian_email: Set(None),
        guardian_verified_at: Set(None),
        minor_pending_since: Set(None),
        restricted: Set(false),
        consent_seq: Set(0),
        consent_hash: Set(GENESIS_HASH.to_string()),
        created_at: Set(now),
        updated_at: Set(now),
        erased_at: Set(None),
        restriction_lifts_at: Set(None),
    }
}

/// What the main app tells us about a person (`subject.upserted`); absent fields stay as they
/// are.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub locale: Option<String>,
    pub jurisdiction: Option<crate::vocab::CountryCode>,
    pub birth_date: Option<chrono::NaiveDate>,
    pub age_band: Option<crate::age::AgeBand>,
}

/// Creates or updates a subject and re-assesses their age. A person under the threshold waits
/// for a guardian (`minor_guardian_pending`) unless a guardian already consented; a person who
/// has grown past it keeps their status until they confirm their own consents (the ledger then
/// records them as an adult).
pub async fn upsert(
    tx: &mut Tx,
    config: &crate::config::Config,
    external_id: &str,
    profile: Profile,
    today: chrono::NaiveDate,
) -> Result<Subject, DbErr> {
    use crate::age::{self, AgeEvidence};

    let subject = find_or_create_locked(tx, external_id).await?;
    let previous = subject.age_status;
    let mut row: model::ActiveModel = subject.clone().into();
    if let Some(v) = profile.email {
        row.email = Set(Some(v));
    }
    if let Some(v) = profile.display_name {
        row.display_name = Set(Some(v));
    }
    if let Some(v) = profile.locale {
        row.locale = Set(Some(v));
    }
    if let Some(v) = &profile.jurisdiction {
        row.jurisdiction = Set(Some(v.to_string()));
    }
    if let Some(v) = profile.birth_date {
        row.birth_date = Set(Some(v));
    }
    if let Some(v) = profile.age_band {
        row.age_band = Set(Some(v.as_str().to_string()));
    }
    let country = profile
        .jurisdiction
        .map(crate::vocab::CountryCode::into_string)
        .or(subject.jurisdiction.clone())
        .unwrap_or_default();
    let evidence = profile
        .birth_date
        .or(subject.birth_date)
        .map(AgeEvidence::BirthDate)
        .or_else(|| {
            profile
                .age_band
                .or_else(|| subject.age_band.as_deref().and_then(age::AgeBand::parse))
                .map(AgeEvidence::Band)
        });
    let assessed = evidence.and_then(|e| age::assess(&config.age, &country, e, today));
    let status = previous.after(AgeEvent::Assessed(assessed.map(|a| a.outcome)));
    let now = clock::now();
    row.age_status = Set(status);
    if status == AgeStatus::MinorGuardianPending && previous != status {
        row.minor_pending_since = Set(Some(now));
    }
    row.updated_at = Set(now);
    sea_orm::ActiveModelTrait::update(row, &*tx).await
}

/// Moves a person's age status on an event other than an assessment (see
/// [`AgeStatus::after`]); returns the new status.
pub async fn age_event(
    tx: &mut Tx,
    subject: &Subject,
    event: AgeEvent,
) -> Result<AgeStatus, DbErr> {
    let status = subject.age_status.after(event);
    if status != subject.age_status {
        let now = clock::now();
        let mut update = model::Entity::update_many()
            .col_expr(model::Column::AgeStatus, Expr::value(status))
            .col_expr(model::Column::UpdatedAt, Expr::value(now))
            .filter(model::Column::Id.eq(&subject.id));
        if event == AgeEvent::GuardianVerified {
            update = update.col_expr(model::Column::GuardianVerifiedAt, Expr::value(now));
        }
        update.exec(&*tx).await?;
    }
    Ok(status)
}

/// Records the guardian asked to consent for a minor.
pub async fn set_guardian_email(tx: &mut Tx, subject_id: &str, email: &str) -> Result<(), DbErr> {
    update(tx, subject_id, |u| {
        u.col_expr(model::Column::GuardianEmail, Expr::value(email))
    })
    .await
}

/// Moves the heads of people's consent chains to their newest events, with one statement:
/// `(id, seq, hash)` each. Called only by the consent ledger, inside the transaction that
/// appends the events.
pub async fn advance_consent_chains(tx: &Tx, heads: &[(String, i64, String)]) -> Result<(), DbErr> {
    if heads.is_empty() {
        return Ok(());
    }
    let mut seq = sea_orm::sea_query::CaseStatement::new();
    let mut hash = sea_orm::sea_query::CaseStatement::new();
    for (id, s, h) in heads {
        seq = seq.case(model::Column::Id.eq(id.as_str()), *s);
        hash = hash.case(model::Column::Id.eq(id.as_str()), h.as_str());
    }
    model::Entity::update_many()
        .col_expr(
            model::Column::ConsentSeq,
            seq.finally(Expr::col(model::Column::ConsentSeq)).into(),
        )
        .col_expr(
            model::Column::ConsentHash,
            hash.finally(Expr::col(model::Column::ConsentHash)).into(),
        )
        .col_expr(model::Column::UpdatedAt, Expr::value(clock::now()))
        .filter(model::Column::Id.is_in(heads.iter().map(|(id, _, _)| id.as_str())))
        .exec(tx)
        .await?;
    Ok(())
}

/// Applies a rectification to what Consentry holds of the person: the contact address and the
/// language. Other fields concern the main app's data only.
pub async fn rectify(
    tx: &mut Tx,
    subject_id: &str,
    changes: &BTreeMap<String, String>,
) -> Result<(), DbErr> {
    update(tx, subject_id, |mut u| {
        for (field, value) in changes {
            u = match field.as_str() {
                "email" => u.col_expr(model::Column::Email, Expr::value(value.clone())),
                "locale" => u.col_expr(model::Column::Locale, Expr::value(value.clone())),
                _ => u,
            };
        }
        u
    })
    .await
}

/// Restricts processing of a person's data (GDPR Art 18, PIPL Art 44): consent checks answer no
/// and the retention purge keeps their items.
pub async fn restrict(tx: &mut Tx, subject_id: &str) -> Result<(), DbErr> {
    update(tx, subject_id, |u| {
        u.col_expr(model::Column::Restricted, Expr::value(true))
    })
    .await
}

/// Schedules the end of a restriction at `at`, once the person has been told (GDPR Art
/// 18(3)); processing stays restricted until then. Returns false when the person is not
/// restricted or a lift is already scheduled, so that two lifts at once tell the person once.
pub async fn schedule_lift(
    tx: &mut Tx,
    subject_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, DbErr> {
    let scheduled = model::Entity::update_many()
        .col_expr(model::Column::RestrictionLiftsAt, Expr::value(at))
        .col_expr(model::Column::UpdatedAt, Expr::value(clock::now()))
        .filter(model::Column::Id.eq(subject_id))
        .filter(model::Column::Restricted.eq(true))
        .filter(model::Column::RestrictionLiftsAt.is_null())
        .exec(&*tx)
        .await?;
    Ok(scheduled.rows_affected > 0)
}

/// People whose restriction is due to end at `now`, with when it was scheduled to.
pub async fn lifts_due(
    conn: &impl ConnectionTrait,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Subject>, DbErr> {
    model::Entity::find()
        .filter(model::Column::Restricted.eq(true))
        .filter(model::Column::RestrictionLiftsAt.lte(now))
        .all(conn)
        .await
}

/// Ends a scheduled restriction; false when it already ended.
pub async fn lift_restriction(tx: &mut Tx, subject_id: &str) -> Result<bool, DbErr> {
    let lifted = model::Entity::update_many()
        .col_expr(model::Column::Restricted, Expr::value(false))
        .col_expr(
            model::Column::RestrictionLiftsAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .col_expr(model::Column::UpdatedAt, Expr::value(clock::now()))
        .filter(model::Column::Id.eq(subject_id))
        .filter(model::Column::Restricted.eq(true))
        .exec(&*tx)
        .await?;
    Ok(lifted.rows_affected > 0)
}

/// Erases Consentry's record of a person: contact and age details are cleared and the main
/// app's id is replaced by `pseudonym`. The row itself stays, keyed by the internal id, so that
/// the minimal proof of consent kept for the legal period still has an owner.
pub async fn erase(tx: &mut Tx, subject_id: &str, pseudonym: &str) -> Result<(), DbErr> {
    let now = clock::now();
    update(tx, subject_id, |u| {
        u.col_expr(model::Column::ExternalId, Expr::value(pseudonym))
            .col_expr(model::Column::Email, Expr::value(Option::<String>::None))
            .col_expr(
                model::Column::DisplayName,
                Expr::value(Option::<String>::None),
            )
            .col_expr(model::Column::Locale, Expr::value(Option::<String>::None))
            .col_expr(
                model::Column::BirthDate,
                Expr::value(Option::<chrono::NaiveDate>::None),
            )
            .col_expr(model::Column::AgeBand, Expr::value(Option::<String>::None))
            .col_expr(
                model::Column::GuardianEmail,
                Expr::value(Option::<String>::None),
            )
            .col_expr(model::Column::ErasedAt, Expr::value(now))
    })
    .await
}

/// The id that replaces an erased person's external id: `erased:` and HMAC-SHA256 of the old id
/// under the pseudonym key (`requests.pseudonym_key`, or `<data_dir>/pseudonym.key`). Nothing
/// kept in the database reverses it; whoever holds the key finds the person's kept proof of
/// consent again from the id a regulator asks about.
pub fn pseudonym(config: &crate::config::Config, external_id: &str) -> Result<String, String> {
    let key = crate::crypto::key(
        config.requests.pseudonym_key.as_ref(),
        &config.data_dir.join("pseudonym.key"),
    )?;
    Ok(format!(
        "erased:{}",
        crate::crypto::hmac_hex(&key, external_id.as_bytes())
    ))
}

/// The ids of people erased at or before `cutoff`, as a subquery.
pub fn erased_before(cutoff: chrono::DateTime<chrono::Utc>) -> SelectStatement {
    model::Entity::find()
        .select_only()
        .column(model::Column::Id)
        .filter(model::Column::ErasedAt.lte(cutoff))
        .into_query()
}

/// Forgets the policy acceptances of people erased at or before `cutoff` and resets their
/// consent chains to the genesis hash, once the ledger has deleted their events: what remains
/// is an erased id with no history. Returns how many acceptances went (or, dry, would go).
pub async fn forget_proofs(
    tx: &mut Tx,
    cutoff: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    let of_erased = acceptances::Column::SubjectId.in_subquery(erased_before(cutoff));
    if dry_run {
        return acceptances::Entity::find()
            .filter(of_erased)
            .count(&*tx)
            .await;
    }
    let forgotten = acceptances::Entity::delete_many()
        .filter(of_erased)
        .exec(&*tx)
        .await?
        .rows_affected;
    model::Entity::update_many()
        .col_expr(model::Column::ConsentSeq, Expr::value(0))
        .col_expr(model::Column::ConsentHash, Expr::value(GENESIS_HASH))
        .filter(model::Column::Id.in_subquery(erased_before(cutoff)))
        .filter(model::Column::ConsentSeq.gt(0))
        .exec(&*tx)
        .await?;
    Ok(forgotten)
}

/// One update of a person's row, stamped with the time of the change.
async fn update(
    tx: &mut Tx,
    subject_id: &str,
    changes: impl FnOnce(sea_orm::UpdateMany<model::Entity>) -> sea_orm::UpdateMany<model::Entity>,
) -> Result<(), DbErr> {
    changes(
        model::Entity::update_many()
            .col_expr(model::Column::UpdatedAt, Expr::value(clock::now()))
            .filter(model::Column::Id.eq(subject_id)),
    )
    .exec(&*tx)
    .await?;
    Ok(())
}

/// Minors who have waited for a guardian's consent since `cutoff` or earlier, up to `limit`.
pub async fn minors_waiting_since(
    conn: &impl ConnectionTrait,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: u64,
) -> Result<Vec<Subject>, DbErr> {
    model::Entity::find()
        .filter(model::Column::AgeStatus.eq(AgeStatus::MinorGuardianPending))
        .filter(model::Column::MinorPendingSince.lte(cutoff))
        .filter(model::Column::ErasedAt.is_null())
        .limit(limit)
        .all(conn)
        .await
}

/// Stops a minor's wait for a guardian from counting: the automatic request is open.
pub async fn stop_minor_clock(tx: &mut Tx, subject_id: &str) -> Result<(), DbErr> {
    model::Entity::update_many()
        .col_expr(
            model::Column::MinorPendingSince,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(model::Column::Id.eq(subject_id))
        .exec(&*tx)
        .await?;
    Ok(())
}

/// Whether a minor has grown past the threshold and may now confirm their own consents.
pub fn may_confirm_own_consent(
    config: &crate::config::Config,
    subject: &Subject,
    today: chrono::NaiveDate,
) -> bool {
    use crate::age::{self, AgeEvidence, Outcome};
    if subject.age_status == AgeStatus::Adult || subject.age_status == AgeStatus::Unknown {
        return false;
    }
    let country = subject.jurisdiction.clone().unwrap_or_default();
    let evidence = subject.birth_date.map(AgeEvidence::BirthDate).or_else(|| {
        subject
            .age_band
            .as_deref()
            .and_then(age::AgeBand::parse)
            .map(AgeEvidence::Band)
    });
    evidence
        .and_then(|e| age::assess(&config.age, &country, e, today))
        .is_some_and(|a| a.outcome == Outcome::Allowed)
}

/// The `policy_acceptances` table: who accepted which policy document, when, through what.
pub mod acceptances {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "policy_acceptances")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub subject_id: String,
        pub policy_id: String,
        pub policy_sha256: String,
        pub source: String,
        pub occurred_at: DateTimeUtc,
        pub recorded_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Records that a subject accepted a policy document; returns the record's id.
pub async fn record_acceptance(
    tx: &mut Tx,
    subject_id: &str,
    policy: &crate::policy::Policy,
    source: &str,
    occurred_at: chrono::DateTime<chrono::Utc>,
) -> Result<String, DbErr> {
    let id = uuid::Uuid::now_v7().to_string();
    acceptances::Entity::insert(acceptances::ActiveModel {
        id: Set(id.clone()),
        subject_id: Set(subject_id.to_string()),
        policy_id: Set(policy.id.clone()),
        policy_sha256: Set(policy.content_sha256.clone()),
        source: Set(source.to_string()),
        occurred_at: Set(occurred_at),
        recorded_at: Set(clock::now()),
    })
    .exec_without_returning(&*tx)
    .await?;
    Ok(id)
}

/// How a guardian is told which child a message is about: the name the main app gave, else the
/// child's address with most of its local part hidden (`k***@example.com`), else nothing.
pub fn named(subject: &Subject) -> Option<String> {
    if let Some(name) = subject
        .display_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
    {
        return Some(name.trim().to_string());
    }
    let (local, domain) = subject.email.as_deref()?.split_once('@')?;
    let first: String = local.chars().take(1).collect();
    Some(format!("{first}***@{domain}"))
}
