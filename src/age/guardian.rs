//! Guardian consent for minors: a single-use link emailed to the parent or guardian (the token
//! is stored only as a hash and expires after 7 days), and the guardian's per-purpose decisions,
//! recorded with actor `guardian`. Each purpose is recorded on its own, so no consent is
//! bundled with another (PIPL Art 29 treats a child's data as sensitive: separate consent).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::TimeDelta;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, prelude::Expr,
};
use validator::ValidateEmail;

use crate::{
    audit, clock,
    config::Config,
    consent::{self, ConsentActor, ConsentError, Decision, PolicyRef, RecordRequest, Recorded},
    crypto,
    db::Db,
    notify::{
        email::{EmailContent, PurposeLine},
        outbox,
    },
    purpose::{self, LegalBasis},
    subject::{AgeStatus, Subject, model as subjects},
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
    #[error(transparent)]
    Consent(#[from] ConsentError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Queues an email to a guardian with a link to consent for a minor waiting for one; returns
/// when the link expires. Runs in the caller's transaction, so the email goes out only if the
/// change that asked for it commits.
pub async fn request(
    conn: &impl ConnectionTrait,
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
    let token = URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>());
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
    .exec_without_returning(conn)
    .await?;
    subjects::Entity::update_many()
        .col_expr(subjects::Column::GuardianEmail, Expr::value(guardian_email))
        .filter(subjects::Column::Id.eq(&subject.id))
        .exec(conn)
        .await?;
    let language = subject.locale.clone().unwrap_or_else(|| "en".into());
    let purposes = purpose::list(conn, false)
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
        conn,
        &format!("guardian_consent:{id}"),
        guardian_email,
        &language,
        &EmailContent::GuardianConsent {
            confirm_url: format!(
                "{}/guardian/confirm?token={token}",
                config.controller.portal_url.trim_end_matches('/')
            ),
            expires_at,
            purposes,
        },
    )
    .await?;
    audit::record(
        conn,
        actor,
        "guardian.requested",
        audit::Target::new("subject", &subject.id),
        serde_json::json!({"expires_at": clock::canonical(expires_at)}),
    )
    .await?;
    Ok(expires_at)
}

/// The guardian's browser, kept as evidence with each decision.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// Records a guardian's decisions with a link's token, then marks the minor as having a
/// verified guardian. The token works once. Each decision is recorded on its own (separate
/// consent); a repeated submission records nothing twice because the ledger skips decisions
/// that repeat the current state, and the token is claimed only by the first.
///
/// The token is looked up by its SHA-256: it carries 256 random bits, so the lookup's timing
/// reveals nothing useful about other tokens.
pub async fn confirm(
    db: &Db,
    config: &Config,
    token: &str,
    decisions: Vec<Decision>,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Vec<Recorded>, GuardianError> {
    let hash = crypto::sha256_hex(token.as_bytes());
    let row = entity::Entity::find()
        .filter(entity::Column::TokenHash.eq(hash))
        .one(db.conn())
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    if row.used_at.is_some() {
        return Err(GuardianError::Used);
    }
    if row.expires_at <= clock::now() {
        return Err(GuardianError::Expired);
    }
    let subject = subjects::Entity::find_by_id(row.subject_id.clone())
        .one(db.conn())
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    let mut recorded = Vec::with_capacity(decisions.len());
    for decision in decisions {
        let mut result = consent::record(
            db,
            config,
            RecordRequest {
                external_id: subject.external_id.clone(),
                decisions: vec![decision],
                policy: policy.clone(),
                actor: ConsentActor::Guardian,
                channel: "guardian_link".into(),
                language: subject.locale.clone(),
                jurisdiction: None,
                user_agent: evidence.user_agent.clone(),
                ip: evidence.ip,
                occurred_at: None,
                reason: None,
                audited_by: None,
            },
        )
        .await?;
        recorded.append(&mut result);
    }
    let txn = db.begin_write().await?;
    let now = clock::now();
    let claimed = entity::Entity::update_many()
        .col_expr(entity::Column::UsedAt, Expr::value(now))
        .filter(entity::Column::Id.eq(&row.id))
        .filter(entity::Column::UsedAt.is_null())
        .exec(&*txn)
        .await?;
    if claimed.rows_affected == 0 {
        return Err(GuardianError::Used);
    }
    subjects::Entity::update_many()
        .col_expr(
            subjects::Column::AgeStatus,
            Expr::value(AgeStatus::MinorGuardianVerified),
        )
        .col_expr(subjects::Column::GuardianVerifiedAt, Expr::value(now))
        .filter(subjects::Column::Id.eq(&subject.id))
        .exec(&*txn)
        .await?;
    audit::record(
        &*txn,
        &audit::Actor::Guardian,
        "guardian.verified",
        audit::Target::new("subject", &subject.id),
        serde_json::json!({
            "events": recorded.iter().filter_map(|r| r.event_id.clone()).collect::<Vec<_>>(),
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(recorded)
}
