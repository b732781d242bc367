//! Subjects: the people the main app knows, by its own user id (`external_id`).
//!
//! A subject row is created the first time anything is recorded about a person (a consent, an
//! event from the main app), so that the main app may send events in any order.

pub mod api;
pub mod items;
pub mod model;

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, prelude::*,
};

use crate::clock;
pub use model::{AgeStatus, Model as Subject};

/// The genesis hash of every subject's consent chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// The subject with this external id, created (age unknown, no contact details) when new.
pub async fn find_or_create(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Subject, DbErr> {
    if let Some(subject) = find(conn, external_id).await? {
        return Ok(subject);
    }
    create(conn, external_id).await?;
    find(conn, external_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("subject vanished after insert".into()))
}

/// Like [`find_or_create`], with the row locked until the transaction ends (PostgreSQL; SQLite
/// has a single writer), so that appends to the subject's consent chain queue up instead of
/// forking it.
pub async fn find_or_create_locked(
    conn: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Subject, DbErr> {
    let locked = || {
        model::Entity::find()
            .filter(model::Column::ExternalId.eq(external_id))
            .lock_exclusive()
            .one(conn)
    };
    if let Some(subject) = locked().await? {
        return Ok(subject);
    }
    create(conn, external_id).await?;
    locked()
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("subject vanished after insert".into()))
}

/// Inserts a subject unless one with this external id exists.
async fn create(conn: &impl ConnectionTrait, external_id: &str) -> Result<(), DbErr> {
    model::Entity::insert(new_row(external_id))
        .on_conflict_do_nothing_on([model::Column::ExternalId])
        .exec_without_returning(conn)
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
    }
}

/// What the main app tells us about a person (`subject.upserted`); absent fields stay as they
/// are.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub locale: Option<String>,
    pub jurisdiction: Option<String>,
    pub birth_date: Option<chrono::NaiveDate>,
    pub age_band: Option<crate::age::AgeBand>,
}

/// Creates or updates a subject and re-assesses their age. A person under the threshold waits
/// for a guardian (`minor_guardian_pending`) unless a guardian already consented; a person who
/// has grown past it keeps their status until they confirm their own consents (the ledger then
/// records them as an adult).
pub async fn upsert(
    conn: &impl ConnectionTrait,
    config: &crate::config::Config,
    external_id: &str,
    profile: Profile,
    today: chrono::NaiveDate,
) -> Result<Subject, DbErr> {
    use crate::age::{self, AgeEvidence, Outcome};

    let subject = find_or_create_locked(conn, external_id).await?;
    let previous = subject.age_status;
    let mut row: model::ActiveModel = subject.clone().into();
    if let Some(v) = profile.email {
        row.email = Set(Some(v));
    }
    if let Some(v) = profile.locale {
        row.locale = Set(Some(v));
    }
    if let Some(v) = &profile.jurisdiction {
        row.jurisdiction = Set(Some(v.to_ascii_uppercase()));
    }
    if let Some(v) = profile.birth_date {
        row.birth_date = Set(Some(v));
    }
    if let Some(v) = profile.age_band {
        row.age_band = Set(Some(v.as_str().to_string()));
    }
    let country = profile
        .jurisdiction
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
    let status = match (assessed.map(|a| a.outcome), previous) {
        (None, current) => current,
        (Some(_), AgeStatus::MinorGuardianVerified) => AgeStatus::MinorGuardianVerified,
        (Some(Outcome::Allowed), AgeStatus::MinorGuardianPending) => {
            AgeStatus::MinorGuardianPending
        }
        (Some(Outcome::Allowed), _) => AgeStatus::Adult,
        (Some(Outcome::GuardianRequired), _) => AgeStatus::MinorGuardianPending,
    };
    let now = clock::now();
    row.age_status = Set(status);
    if status == AgeStatus::MinorGuardianPending && previous != status {
        row.minor_pending_since = Set(Some(now));
    }
    row.updated_at = Set(now);
    sea_orm::ActiveModelTrait::update(row, conn).await
}

/// Opens an erasure request for each minor who has waited longer than `grace` for a
/// guardian's consent, as the policies promise for children's data collected without it.
/// Each minor gets one automatic request: the pending clock is cleared once it is opened, and a
/// request already open for the person is reused rather than duplicated. Returns how many
/// minors were handled.
pub async fn sweep_unverified_minors(
    db: &crate::db::Db,
    config: &crate::config::Config,
    grace: chrono::TimeDelta,
) -> Result<u64, DbErr> {
    use crate::{
        audit,
        request::{self, RequestType},
    };

    const BATCH: u64 = 500;
    let cutoff = clock::now() - grace;
    let mut handled = 0;
    loop {
        let txn = db.begin_write().await?;
        let due = model::Entity::find()
            .filter(model::Column::AgeStatus.eq(AgeStatus::MinorGuardianPending))
            .filter(model::Column::MinorPendingSince.lte(cutoff))
            .filter(model::Column::ErasedAt.is_null())
            .limit(BATCH)
            .all(&*txn)
            .await?;
        let done = (due.len() as u64) < BATCH;
        for subject in due {
            request::intake::open_verified(
                &*txn,
                config,
                &subject,
                request::intake::Intake {
                    kind: RequestType::Erase,
                    details: request::intake::Details {
                        reason: Some("minor_without_guardian_consent".into()),
                        ..Default::default()
                    },
                    locale: None,
                    jurisdiction: None,
                },
                "automatic",
                &audit::Actor::System,
            )
            .await
            .map_err(|e| match e {
                request::RequestError::Db(e) => e,
                other => DbErr::Custom(other.to_string()),
            })?;
            model::Entity::update_many()
                .col_expr(
                    model::Column::MinorPendingSince,
                    Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
                )
                .filter(model::Column::Id.eq(&subject.id))
                .exec(&*txn)
                .await?;
            handled += 1;
        }
        txn.commit().await?;
        if done {
            return Ok(handled);
        }
    }
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
    conn: &impl ConnectionTrait,
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
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}
