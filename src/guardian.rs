//! Guardian consent for minors. A link is emailed to the parent or guardian (the token is stored
//! only as a hash and expires after 7 days); the guardian answers one question at a time: the
//! purposes that need no consent of their own together, then each that does on its own (PIPL
//! Art 29 treats a child's data as sensitive, so for a child in China that is every purpose).
//! Only what the guardian answered is recorded, with actor `guardian`, under the ledger's rules
//! like anyone's. The link works until every question is answered; then a second, lasting link
//! is emailed, where the guardian sees the child's choices and changes any of them (GDPR Art
//! 7(3): withdrawing is as easy as giving) until the child comes of age or is erased.
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
    law,
    notify::{
        email::{EmailContent, PurposeLine},
        outbox,
    },
    purpose::{self, LegalBasis, Purpose},
    subject::{self, AgeEvent, AgeStatus, Subject},
};

/// How long a guardian's consent link stays valid.
pub const TOKEN_LIFETIME: TimeDelta = TimeDelta::days(7);

/// A link that asks the guardian's consent, one question at a time.
pub const CONSENT: &str = "consent";
/// A lasting link where the guardian sees and changes the child's choices.
pub const MANAGE: &str = "manage";

/// How long a lasting link works when the child's birth date is unknown.
const MANAGE_WITHOUT_BIRTH_DATE: TimeDelta = TimeDelta::days(365);

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
        /// [`super::CONSENT`] (answer each question once) or [`super::MANAGE`] (lasting).
        pub kind: String,
        /// The purposes answered through a consent link so far, as a JSON list.
        pub answered: String,
        pub expires_at: DateTimeUtc,
        /// When every question of a consent link was answered.
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
    #[error("every question of this link is answered already")]
    Used,
    /// The answers do not match the question asked (these purposes).
    #[error("answer yes or no for each of: {0}")]
    Unanswered(String),
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
    let expires_at = clock::now() + TOKEN_LIFETIME;
    let (id, token) = new_link(tx, subject, guardian_email, CONSENT, expires_at).await?;
    subject::set_guardian_email(tx, &subject.id, guardian_email).await?;
    let language = subject.locale.clone().unwrap_or_else(|| "en".into());
    let purposes = lines(&asked(&*tx).await?, &language);
    outbox::enqueue_email(
        tx,
        &format!("guardian_consent:{id}"),
        guardian_email,
        &language,
        &EmailContent::GuardianConsent {
            service: config.controller.name.clone(),
            child: subject::named(subject),
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

/// Stores a new link of `kind` for `minor`'s guardian, keeping only its token's hash; returns
/// the link's id and the token for the email.
async fn new_link(
    tx: &mut Tx,
    minor: &Subject,
    guardian_email: &str,
    kind: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Result<(String, String), DbErr> {
    let token = crypto::random_token();
    let id = uuid::Uuid::now_v7().to_string();
    entity::Entity::insert(entity::ActiveModel {
        id: Set(id.clone()),
        subject_id: Set(minor.id.clone()),
        token_hash: Set(crypto::sha256_hex(token.as_bytes())),
        guardian_email: Set(guardian_email.to_string()),
        kind: Set(kind.into()),
        answered: Set("[]".into()),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(clock::now()),
    })
    .exec_without_returning(&*tx)
    .await?;
    Ok((id, token))
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

/// The purposes a guardian is asked about: the active ones based on consent.
pub async fn asked(conn: &impl sea_orm::ConnectionTrait) -> Result<Vec<Purpose>, DbErr> {
    Ok(purpose::list(conn, false)
        .await?
        .into_iter()
        .filter(|p| p.legal_basis == LegalBasis::Consent)
        .collect())
}

/// Each purpose as a parent reads it in an email: its title and its words for a parent.
fn lines(purposes: &[Purpose], language: &str) -> Vec<PurposeLine> {
    purposes
        .iter()
        .filter_map(|p| {
            p.text(language).map(|t| PurposeLine {
                title: t.title.clone(),
                description: t.guardian.clone().unwrap_or_else(|| t.description.clone()),
            })
        })
        .collect()
}

/// The questions a guardian answers for `minor`, in order: the purposes that need no consent
/// of their own together, then each that does, alone (for a child in China, every one).
pub fn questions(purposes: &[Purpose], minor: &Subject) -> Vec<Vec<Purpose>> {
    let every_one_alone = law::child_needs_separate_consent(minor.jurisdiction.as_deref());
    let (alone, together): (Vec<Purpose>, Vec<Purpose>) = purposes
        .iter()
        .cloned()
        .partition(|p| every_one_alone || p.separate_consent);
    std::iter::once(together)
        .filter(|t| !t.is_empty())
        .chain(alone.into_iter().map(|p| vec![p]))
        .collect()
}

/// The purposes a consent link has answered so far.
pub fn answered(link: &entity::Model) -> Vec<String> {
    serde_json::from_str(&link.answered).unwrap_or_default()
}

/// The questions with a purpose not in `done`, in order.
fn open_questions(purposes: &[Purpose], minor: &Subject, done: &[String]) -> Vec<Vec<Purpose>> {
    questions(purposes, minor)
        .into_iter()
        .filter(|q| q.iter().any(|p| !done.contains(&p.key)))
        .collect()
}

/// The first question `link` has not answered, if any is left.
pub fn next_question(
    purposes: &[Purpose],
    minor: &Subject,
    link: &entity::Model,
) -> Option<Vec<Purpose>> {
    open_questions(purposes, minor, &answered(link))
        .into_iter()
        .next()
}

/// The link `token` opens, of `kind`, and the minor it is for, without using it. Fails for an
/// unknown link, a consent link whose questions are all answered, or an expired one.
pub async fn peek(
    conn: &impl sea_orm::ConnectionTrait,
    token: &str,
    kind: &str,
) -> Result<(entity::Model, Subject), GuardianError> {
    let row = entity::Entity::find()
        .filter(entity::Column::TokenHash.eq(crypto::sha256_hex(token.as_bytes())))
        .filter(entity::Column::Kind.eq(kind))
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

/// What answering a question did.
#[derive(Debug)]
pub struct Answered {
    pub recorded: Vec<Recorded>,
    /// Questions still to answer with the same link.
    pub left: usize,
}

/// Records a guardian's answers, in the caller's transaction, and marks the minor as having a
/// verified guardian. `decisions` answer purposes not answered yet (the portal sends one
/// question at a time; an API client may send any of them, which the ledger then judges as one
/// submission, so a child in China still gets one grant per submission). The link's answered list is updated only if it is still
/// what was read (a compare-and-swap), so two submissions of one question record once: the
/// other finds the question answered. When this was the last question, the link is used up and
/// a lasting link is emailed to the guardian. If the ledger refuses a decision, the caller's
/// transaction rolls back and nothing is recorded.
///
/// The token is looked up by its SHA-256: it carries 256 random bits, so the lookup's timing
/// reveals nothing useful about other tokens.
pub async fn answer(
    tx: &mut Tx,
    config: &Config,
    token: &str,
    decisions: Vec<Decision>,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Answered, GuardianError> {
    let (link, _) = peek(&*tx, token, CONSENT).await?;
    let minor = subject::lock(tx, &link.subject_id)
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    let purposes = asked(&*tx).await?;
    let mut done = answered(&link);
    // With no purpose to ask about, the guardian only confirms who they are.
    let nothing_asked = purposes.is_empty() && decisions.is_empty();
    let open = open_questions(&purposes, &minor, &done);
    let first: Vec<&str> = match open.first() {
        Some(first) => first.iter().map(|p| p.key.as_str()).collect(),
        None if nothing_asked => Vec::new(),
        None => return Err(GuardianError::Used),
    };
    let keys: std::collections::BTreeSet<&str> =
        decisions.iter().map(|d| d.purpose.as_str()).collect();
    // A purpose answered already is changed through the lasting link; any other goes to the
    // ledger, which judges it (a required purpose cannot be refused, say).
    if (keys.is_empty() && !nothing_asked)
        || keys.len() != decisions.len()
        || keys.iter().any(|k| done.iter().any(|d| d == k))
    {
        return Err(GuardianError::Unanswered(first.join(", ")));
    }
    done.extend(keys.iter().map(|k| k.to_string()));
    let left = open_questions(&purposes, &minor, &done).len();
    let now = clock::now();
    let claimed = entity::Entity::update_many()
        .col_expr(
            entity::Column::Answered,
            Expr::value(serde_json::to_string(&done).unwrap_or_default()),
        )
        .col_expr(
            entity::Column::UsedAt,
            Expr::value((left == 0).then_some(now)),
        )
        .filter(entity::Column::Id.eq(&link.id))
        .filter(entity::Column::Answered.eq(&link.answered))
        .filter(entity::Column::UsedAt.is_null())
        .exec(&*tx)
        .await?;
    if claimed.rows_affected == 0 {
        return Err(GuardianError::Used);
    }
    let recorded = if nothing_asked {
        Vec::new()
    } else {
        record(tx, config, &minor, decisions, policy, evidence).await?
    };
    if minor.age_status == AgeStatus::MinorGuardianPending {
        subject::age_event(tx, &minor, AgeEvent::GuardianVerified).await?;
    }
    audit::record(
        &*tx,
        &audit::Actor::Guardian,
        "guardian.verified",
        audit::Target::new("subject", &minor.id),
        serde_json::json!({
            "events": recorded.iter().filter_map(|r| r.event_id.clone()).collect::<Vec<_>>(),
            "questions_left": left,
        }),
    )
    .await?;
    if left == 0 && !nothing_asked {
        send_manage_link(tx, config, &minor, &link.guardian_email).await?;
    }
    Ok(Answered { recorded, left })
}

/// Records decisions a guardian made for `minor` through the ledger.
async fn record(
    tx: &mut Tx,
    config: &Config,
    minor: &Subject,
    decisions: Vec<Decision>,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Vec<Recorded>, GuardianError> {
    let purposes: Vec<String> = decisions.iter().map(|d| d.purpose.clone()).collect();
    consent::record(
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
            .map_or_else(|| purposes.join(", "), str::to_string),
        source,
    })
}

/// Emails the guardian a lasting link to see and change the child's choices; it works until
/// the child reaches the age of consent of their country (a year, when the birth date is not
/// known), and is deleted with the child's data on erasure.
async fn send_manage_link(
    tx: &mut Tx,
    config: &Config,
    minor: &Subject,
    guardian_email: &str,
) -> Result<(), GuardianError> {
    let now = clock::now();
    let (threshold, _) = crate::age::threshold(
        &config.age,
        minor.jurisdiction.as_deref().unwrap_or_default(),
    );
    let expires_at = minor
        .birth_date
        .and_then(|b| b.checked_add_months(chrono::Months::new(threshold * 12)))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .filter(|d| *d > now)
        .unwrap_or(now + MANAGE_WITHOUT_BIRTH_DATE);
    let (id, token) = new_link(tx, minor, guardian_email, MANAGE, expires_at).await?;
    let language = minor.locale.clone().unwrap_or_else(|| "en".into());
    outbox::enqueue_email(
        tx,
        &format!("guardian_confirmed:{id}"),
        guardian_email,
        &language,
        &EmailContent::GuardianConfirmed {
            service: config.controller.name.clone(),
            child: subject::named(minor),
            manage_url: format!("{}/guardian/choices?token={token}", config.portal_url()),
            expires_at,
            contact: config.controller.contact_email.clone(),
        },
    )
    .await?;
    Ok(())
}

/// A guardian's change through the lasting link: one purpose given or withdrawn.
pub async fn change(
    tx: &mut Tx,
    config: &Config,
    token: &str,
    decision: Decision,
    policy: PolicyRef,
    evidence: Evidence,
) -> Result<Vec<Recorded>, GuardianError> {
    let (link, _) = peek(&*tx, token, MANAGE).await?;
    let minor = subject::lock(tx, &link.subject_id)
        .await?
        .ok_or(GuardianError::UnknownToken)?;
    if !asked(&*tx).await?.iter().any(|p| p.key == decision.purpose) {
        return Err(GuardianError::Unanswered(decision.purpose));
    }
    record(tx, config, &minor, vec![decision], policy, evidence).await
}
