//! Guardian consent for minors: a single-use link emailed to the parent or guardian (the token
//! is stored only as a hash and expires after 7 days), and the guardian's per-purpose decisions,
//! recorded with actor `guardian`, under the ledger's rules on separate consent like anyone's
//! (PIPL Art 29 treats a child's data as sensitive).
//! This room owns the `guardian_tokens` table.

use chrono::TimeDelta;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, prelude::Expr,
};
use validator::ValidateEmail;

use crate::{
    audit, clock,
    config::Config,
    consent::{self, ConsentActor, ConsentError, Decision, PolicyRef, RecordRequest, Recorded},
    crypto,
    db::Tx,
    notify::{
        email::{EmailContent, PurposeLine},
        outbox,
    },
    purpose::{self, LegalBasis},
    subject::{self, AgeEvent, AgeStatus, Subject},
};

/// How long a guardian link stays valid.
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::days(7);

/// The `guardian_tokens` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "guardian_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub subject_id: String,
        /// SHA-256 of the token; the token itself is only in the email.
        pub token_hash: String,
        pub guardian_email: String,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What can go wrong with guardian consent.
#[derive(Debug, thiserror::Error)]
pub enum GuardianError {
    #[error("`guardian_email` is not an email address")]
    InvalidEmail,
    #[error("this person does not need a guardian's consent")]
    NotNeeded,
    #[error("the link is unknown")]
    UnknownToken,
    #[error("the link has expired; ask for a new one")]
    Expired,
    #[error("the link was used already")]
    Used,
    /// A decision was refused; nothing of the submission was recorded.
    #[error("`{purpose}`: {source}")]
    Refused {
        purpose: String,
        source: ConsentError,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Queues an email to a guardian with a link to consent for a minor waiting for one; returns
/// when the link expires. Runs in the caller's transaction, so the email goes out only if the
/// change that asked for it commits.
pub async fn request(
    tx: &mut Tx,
    config: &Config,
    subject: &Subject,
    guardian_email: &str,
    actor: &audit::Actor,
) -> Result<chrono::DateTime<chrono::Utc>, GuardianError> {
    if !guardian_email.validate_email() {
        return Err(GuardianError::InvalidEmail);
    }
    if subject.age_status != AgeStatus::MinorGuardianPending {
        return Err(GuardianError::NotNeeded);
    }
    let token = crypto::random_token();
    let now = clock::now();
    let expires_at = now + TOKEN_LIFETIME;
    let id = uuid::Uuid::now_v7().to_string();
    entity::Entity::insert(entity::ActiveModel {
        id: Set(id.clone()),
        subject_id: Set(subject.id.clone()),
        token_hash: Set(crypto::sha256_hex(token.as_bytes())),
        guardian_email: Set(guardian_email.to_string()),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(&*tx)
    .await?;
    subject::set_guardian_email(tx, &subject.id, guardian_email).await?;
    let language = subject.locale.clone().unwrap_or_else(|| "en".into());
    let purposes = purpose::list(&*tx, false)
        .await?
        .into_iter()
        .filter(|p| p.legal_basis == LegalBasis::Consent)
        .filter_map(|p| {
            p.text(&language).map(|t| PurposeLine {
                title: t.title.clone(),
                description: t.description.clone(),
            })
        })
        .collect();
    outbox::enqueue_email(
        tx,
        &format!("guardian_consent:{id}"),
        guardian_email,
        &language,
        &EmailContent::GuardianConsent {
            confirm_url: format!("{}/guardian/confirm?token={token}", config.portal_url()),
            expires_at,
            purposes,
        },
    )
    .await?;
    audit::record(
        &*tx,
        actor,
        "guardian.requested",
        audit::Target::new("subject", &subject.id),
        serde_json::json!({"expires_at": clock::canonical(expires_at)}),
    )
    .await?;
    Ok(expires_at)
}

/// Deletes (or, dry, counts) the links that expired at or before `as_of`. Part of the purge of
/// Consentry's own data.
pub async fn purge_expired(
    tx: &mut Tx,
    as_of: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> Result<u64, DbErr> {
    let expired = entity::Column::ExpiresAt.lte(as_of);
    if dry_run {
        return entity::Entity::find().filter(expired).count(&*tx).await;
    }
    Ok(entity::Entity::delete_many()
        .filter(expired)
        .exec(&*tx)
        .await?
        .rows_affected)
}

/// Deletes a person's guardian links, which hold the guardian's address, when the person is
/// erased. Returns the guardians' addresses, for the outbox to forget too.
pub async fn forget_subject(tx: &mut Tx, subject_id: &str) -> Result<Vec<String>, DbErr> {
    let mut addresses: Vec<String> = entity::Entity::find()
        .filter(entity::Column::SubjectId.eq(subject_id))
        .all(&*tx)
        .await?
        .into_iter()
        .map(|t| t.guardian_email)
        .collect();
    addresses.sort();
    addresses.dedup();
    entity::Entity::delete_many()
        .filter(entity::Column::SubjectId.eq(subject_id))
        .exec(&*tx)
        .await?;
    Ok(addresses)
}

/// The minor a guardian link is for, without using the link: for the page that shows the
/// decisions to make. Fails as [`confirm`] would for an unknown, used or expired link.
pub async fn peek(
    conn: &impl sea_orm::ConnectionTrait,
    token: &str,
) -> Result<(entity::Model, Subject), GuardianError> {
    let row = entity::Entity::find()
        .filter(entity::Column::TokenHash.eq(crypto::sha256_hex(token.as_bytes())))
        .one(conn)
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    if row.used_at.is_some() {
        return Err(GuardianError::Used);
    }
    if row.expires_at <= clock::now() {
        return Err(GuardianError::Expired);
    }
    let minor = subject::by_id(conn, &row.subject_id)
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    Ok((row, minor))
}

/// The guardian's browser, kept as evidence with each decision.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// Records a guardian's decisions with a link's token, then marks the minor as having a
/// verified guardian, all in the caller's transaction. The token is claimed first, by a
/// conditional update, so that parallel submissions of one link record once: the others wait
/// for the first and find it used. The decisions go to the ledger as one submission, under the
/// same rules as anyone's: a purpose that needs separate consent is granted on its own, and for
/// a child in China every consent-based purpose is (PIPL Arts 28, 29, 31). If any decision is
/// refused, the caller's transaction rolls back, so nothing is recorded, the token stays unused,
/// and the error names the purpose.
///
/// The token is looked up by its SHA-256: it carries 256 random bits, so the lookup's timing
/// reveals nothing useful about other tokens.
pub async fn confirm(
    tx: &mut Tx,
    config: &Config,
    token: &str,
    decisions: Vec<Decision>,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Vec<Recorded>, GuardianError> {
    let hash = crypto::sha256_hex(token.as_bytes());
    let now = clock::now();
    let claimed = entity::Entity::update_many()
        .col_expr(entity::Column::UsedAt, Expr::value(now))
        .filter(entity::Column::TokenHash.eq(&hash))
        .filter(entity::Column::UsedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(now))
        .exec(&*tx)
        .await?;
    let row = entity::Entity::find()
        .filter(entity::Column::TokenHash.eq(hash))
        .one(&*tx)
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    if claimed.rows_affected == 0 {
        return Err(if row.used_at.is_some() {
            GuardianError::Used
        } else {
            GuardianError::Expired
        });
    }
    let minor = subject::lock(tx, &row.subject_id)
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    let purposes: Vec<String> = decisions.iter().map(|d| d.purpose.clone()).collect();
    let recorded = consent::record(
        tx,
        config,
        RecordRequest {
            external_id: minor.external_id.clone(),
            decisions,
            policy,
            actor: ConsentActor::Guardian,
            channel: "guardian_link".into(),
            language: minor.locale.clone(),
            jurisdiction: None,
            user_agent: evidence.user_agent,
            ip: evidence.ip,
            occurred_at: None,
            reason: None,
            audited_by: None,
        },
    )
    .await
    .map_err(|source| GuardianError::Refused {
        purpose: source
            .purpose()
            .map_or_else(|| purposes.join("`, `"), str::to_string),
        source,
    })?;
    subject::age_event(tx, &minor, AgeEvent::GuardianVerified).await?;
    audit::record(
        &*tx,
        &audit::Actor::Guardian,
        "guardian.verified",
        audit::Target::new("subject", &minor.id),
        serde_json::json!({
            "events": recorded.iter().filter_map(|r| r.event_id.clone()).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(recorded)
}
