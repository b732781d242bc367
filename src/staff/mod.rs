//! Staff accounts for the console: people, not machines (machines keep API keys).
//!
//! An account is created on the command line with a one-time setup link; its owner chooses a
//! password (argon2id; short, common or guessable ones refused) and enrols a TOTP second factor
//! (RFC 6238), required unless `console.require_totp` is off. Enrolment happens once: an
//! account with a confirmed second factor is only ever asked for a code, and replacing the
//! authenticator takes `consentry users reset`. A code is accepted once (the account remembers
//! the last time step it accepted). Failed passwords and codes are counted per account and
//! client network ([`lockout`]) and only a complete sign-in clears them. Sessions live on the
//! server, so staff can see and end them; disabling an account ends them all.
//!
//! Transactions: this room owns `staff_users`, `staff_sessions` and `sign_in_failures`; writers
//! take the edge's [`crate::db::Tx`], except the password steps, which hash off the executor
//! before their short transaction begins so that no write waits on argon2.

pub mod lockout;
pub mod password;
pub mod sessions;
pub mod signin;
pub mod totp;

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    prelude::Expr, sea_query::ExprTrait,
};

use crate::{
    audit::{self, Actor},
    auth::Role,
    clock,
    config::Config,
    crypto,
    db::{Db, Tx},
};

/// The `staff_users` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    use crate::auth::Role;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "staff_users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub email: String,
        pub role: Role,
        /// argon2id, PHC string.
        pub password_hash: Option<String>,
        /// The TOTP seed, sealed with the console key (see [`crate::crypto::seal`]).
        pub totp_secret: Option<String>,
        pub totp_enabled_at: Option<DateTimeUtc>,
        /// SHA-256 of the one-time setup link's token.
        pub setup_token_hash: Option<String>,
        pub setup_expires_at: Option<DateTimeUtc>,
        /// The last TOTP time step accepted: a code for it or an earlier one is refused.
        pub totp_last_step: Option<i64>,
        pub last_sign_in_at: Option<DateTimeUtc>,
        pub disabled_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use entity::Model as StaffUser;

pub use lockout::{Attempt, FREE_ATTEMPTS};
/// How long a setup link works.
pub const SETUP_LIFETIME: TimeDelta = TimeDelta::hours(72);

/// What can go wrong with staff accounts.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error("`{0}` is not an email address")]
    InvalidEmail(String),
    #[error("an account with this email exists")]
    Exists,
    #[error("staff accounts are viewer, reviewer or admin; machines use API keys")]
    ServiceRole,
    #[error("no such account")]
    NotFound,
    #[error("the email or password is not right")]
    BadCredentials,
    #[error("too many failed sign-ins; try again after {0}")]
    Locked(DateTime<Utc>),
    #[error("the code is not right")]
    BadCode,
    #[error("the account's second factor is enrolled; a reset replaces it")]
    Enrolled,
    #[error("the setup link is not valid or has expired; ask an admin for a new one")]
    BadSetupLink,
    #[error("{0}")]
    WeakPassword(password::Weakness),
    #[error("console key: {0}")]
    Key(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A setup link's token and when it stops working.
pub struct SetupLink {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The key that seals TOTP seeds.
pub(crate) fn console_key(config: &Config) -> Result<[u8; 32], StaffError> {
    crypto::key(
        config.console.totp_key.as_ref(),
        &config.data_dir.join("console.key"),
    )
    .map_err(StaffError::Key)
}

/// Creates an account and its one-time setup link.
pub async fn create(
    tx: &Tx,
    email: &str,
    role: Role,
    actor: &Actor,
) -> Result<(StaffUser, SetupLink), StaffError> {
    use validator::ValidateEmail;
    let email = email.trim().to_lowercase();
    if !email.validate_email() {
        return Err(StaffError::InvalidEmail(email));
    }
    if role == Role::Service {
        return Err(StaffError::ServiceRole);
    }
    if by_email(tx, &email).await?.is_some() {
        return Err(StaffError::Exists);
    }
    let now = clock::now();
    let link = SetupLink {
        token: crypto::random_token(),
        expires_at: now + SETUP_LIFETIME,
    };
    let user = entity::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        email: Set(email),
        role: Set(role),
        password_hash: Set(None),
        totp_secret: Set(None),
        totp_enabled_at: Set(None),
        setup_token_hash: Set(Some(crypto::sha256_hex(link.token.as_bytes()))),
        setup_expires_at: Set(Some(link.expires_at)),
        totp_last_step: Set(None),
        last_sign_in_at: Set(None),
        disabled_at: Set(None),
        created_at: Set(now),
    };
    let user = entity::Entity::insert(user).exec_with_returning(tx).await?;
    audit::record(
        tx,
        actor,
        "staff.created",
        audit::Target::new("staff", &user.id),
        serde_json::json!({"role": role.as_str()}),
    )
    .await?;
    Ok((user, link))
}

/// A new setup link for an existing account (a forgotten password, a lost phone): the password
/// and second factor are cleared, failed sign-ins forgotten and every session ends.
pub async fn reset(
    tx: &Tx,
    config: &Config,
    email: &str,
    actor: &Actor,
) -> Result<SetupLink, StaffError> {
    let user = by_email(tx, email).await?.ok_or(StaffError::NotFound)?;
    let now = clock::now();
    let link = SetupLink {
        token: crypto::random_token(),
        expires_at: now + SETUP_LIFETIME,
    };
    entity::Entity::update_many()
        .col_expr(
            entity::Column::PasswordHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            entity::Column::TotpSecret,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            entity::Column::TotpEnabledAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            entity::Column::SetupTokenHash,
            Expr::value(crypto::sha256_hex(link.token.as_bytes())),
        )
        .col_expr(entity::Column::SetupExpiresAt, Expr::value(link.expires_at))
        .filter(entity::Column::Id.eq(&user.id))
        .exec(tx)
        .await?;
    lockout::clear_account(tx, &console_key(config)?, &user.email).await?;
    end_sessions(tx, &user, actor, "staff.reset").await?;
    Ok(link)
}

/// Ends every session of an account whose credentials changed, and audits why.
async fn end_sessions(tx: &Tx, user: &StaffUser, actor: &Actor, action: &str) -> Result<(), DbErr> {
    sessions::end_all(tx, &user.id).await?;
    audit::record(
        tx,
        actor,
        action,
        audit::Target::new("staff", &user.id),
        serde_json::json!({}),
    )
    .await
}

/// Every account, by email.
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<StaffUser>, DbErr> {
    entity::Entity::find()
        .order_by_asc(entity::Column::Email)
        .all(conn)
        .await
}

/// Staff emails by the actor name the audit log and requests record (`staff:<id>`), so that
/// pages can say who did something.
pub async fn names(
    conn: &impl ConnectionTrait,
) -> Result<std::collections::HashMap<String, String>, DbErr> {
    Ok(list(conn)
        .await?
        .into_iter()
        .map(|u| (Actor::Staff(u.id).to_string(), u.email))
        .collect())
}

pub async fn by_email(
    conn: &impl ConnectionTrait,
    email: &str,
) -> Result<Option<StaffUser>, DbErr> {
    entity::Entity::find()
        .filter(entity::Column::Email.eq(email.trim().to_lowercase()))
        .one(conn)
        .await
}

pub async fn by_id(conn: &impl ConnectionTrait, id: &str) -> Result<Option<StaffUser>, DbErr> {
    entity::Entity::find_by_id(id.to_string()).one(conn).await
}

/// The account a live setup link belongs to.
pub async fn by_setup_token(
    conn: &impl ConnectionTrait,
    token: &str,
) -> Result<StaffUser, StaffError> {
    entity::Entity::find()
        .filter(entity::Column::SetupTokenHash.eq(crypto::sha256_hex(token.as_bytes())))
        .one(conn)
        .await?
        .filter(|u| u.disabled_at.is_none() && u.setup_expires_at.is_some_and(|t| t > clock::now()))
        .ok_or(StaffError::BadSetupLink)
}

/// Sets the password from a setup link; the link is used up. Hashes before its transaction.
pub async fn set_password(db: &Db, token: &str, password: &str) -> Result<StaffUser, StaffError> {
    let user = by_setup_token(db.conn(), token).await?;
    password::check_strength(password, &user.email)?;
    let hash = password::hash(password).await;
    let tx = db.begin().await?;
    let claimed = entity::Entity::update_many()
        .col_expr(entity::Column::PasswordHash, Expr::value(hash))
        .col_expr(
            entity::Column::SetupTokenHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            entity::Column::SetupExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(entity::Column::Id.eq(&user.id))
        .filter(entity::Column::SetupTokenHash.eq(crypto::sha256_hex(token.as_bytes())))
        .filter(entity::Column::SetupExpiresAt.gt(clock::now()))
        .exec(&tx)
        .await?;
    if claimed.rows_affected == 0 {
        return Err(StaffError::BadSetupLink);
    }
    audit_own(&tx, &user, "staff.password_set").await?;
    tx.commit().await?;
    Ok(user)
}

/// Whom a sign-in from `client` with `email` is counted against.
pub fn attempt(
    config: &Config,
    email: &str,
    client: Option<IpAddr>,
) -> Result<Attempt, StaffError> {
    Ok(Attempt::new(&console_key(config)?, email, client))
}

/// The password step. A locked-out network is refused before any hashing; otherwise the
/// password is checked off the executor against the account's hash, or against a decoy when the
/// email is unknown or disabled, so that every answer costs the same and reads the same. A
/// failure is counted and committed before the answer.
pub async fn check_password(
    db: &Db,
    attempt: &Attempt,
    email: &str,
    password: &str,
) -> Result<StaffUser, StaffError> {
    let now = clock::now();
    if let Some(until) = lockout::locked_until(db.conn(), attempt, false, now).await? {
        return Err(StaffError::Locked(until));
    }
    let user = by_email(db.conn(), email)
        .await?
        .filter(|u| u.disabled_at.is_none() && u.password_hash.is_some());
    let phc = user
        .as_ref()
        .and_then(|u| u.password_hash.as_deref())
        .unwrap_or(password::DECOY);
    if password::verify(password, phc).await
        && let Some(user) = user
    {
        return Ok(user);
    }
    let tx = db.begin().await?;
    let locked = lockout::fail(&tx, attempt, false, now).await?;
    audit_lock(&tx, user.as_ref(), locked).await?;
    tx.commit().await?;
    Err(locked.map_or(StaffError::BadCredentials, StaffError::Locked))
}

/// Audits a lock on a real account (a lock on an unknown email has no one to tell).
async fn audit_lock(
    tx: &Tx,
    user: Option<&StaffUser>,
    locked: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let (Some(user), Some(until)) = (user, locked) else {
        return Ok(());
    };
    audit::record(
        tx,
        &Actor::System,
        "staff.locked",
        audit::Target::new("staff", &user.id),
        serde_json::json!({"until": until}),
    )
    .await
}

/// Audits something the account's owner did to their own account.
async fn audit_own(tx: &Tx, user: &StaffUser, action: &str) -> Result<(), DbErr> {
    audit::record(
        tx,
        &Actor::Staff(user.id.clone()),
        action,
        audit::Target::new("staff", &user.id),
        serde_json::json!({}),
    )
    .await
}

/// Records a complete sign-in, which alone clears the attempt's failures.
pub async fn signed_in(tx: &Tx, user: &StaffUser, attempt: &Attempt) -> Result<(), DbErr> {
    entity::Entity::update_many()
        .col_expr(entity::Column::LastSignInAt, Expr::value(clock::now()))
        .filter(entity::Column::Id.eq(&user.id))
        .exec(tx)
        .await?;
    lockout::clear(tx, attempt).await?;
    audit_own(tx, user, "staff.signed_in").await
}

/// Stores a new TOTP seed, not yet enabled (the person must show a code from it first). Refused
/// for an account whose second factor is confirmed: that one is replaced only by a reset.
pub async fn start_totp(tx: &Tx, config: &Config, user: &StaffUser) -> Result<Vec<u8>, StaffError> {
    let seed = crypto::random_bytes::<20>().to_vec();
    let sealed = crypto::seal(&console_key(config)?, &seed);
    let stored = entity::Entity::update_many()
        .col_expr(entity::Column::TotpSecret, Expr::value(sealed))
        .filter(entity::Column::Id.eq(&user.id))
        .filter(entity::Column::TotpEnabledAt.is_null())
        .exec(tx)
        .await?;
    if stored.rows_affected == 0 {
        return Err(StaffError::Enrolled);
    }
    Ok(seed)
}

/// The account's TOTP seed, if it has one.
pub fn totp_seed(config: &Config, user: &StaffUser) -> Result<Option<Vec<u8>>, StaffError> {
    let Some(sealed) = &user.totp_secret else {
        return Ok(None);
    };
    crypto::open(&console_key(config)?, sealed)
        .map(Some)
        .ok_or_else(|| StaffError::Key("the TOTP seed does not open with the console key".into()))
}

/// Checks a TOTP code against the account's seed. A right code is claimed in one statement
/// that moves the account's last accepted step forward, so it works once even when sent twice
/// at the same moment; a right code for a seed not yet enabled enables it. Wrong or replayed
/// codes count towards the lock like wrong passwords (and on the account-wide row).
pub async fn check_code(
    tx: &Tx,
    config: &Config,
    user: &StaffUser,
    attempt: &Attempt,
    code: &str,
) -> Result<(), StaffError> {
    let now = clock::now();
    if let Some(until) = lockout::locked_until(tx, attempt, true, now).await? {
        return Err(StaffError::Locked(until));
    }
    let seed = totp_seed(config, user)?.ok_or(StaffError::BadCode)?;
    if let Some(step) = totp::matching_step(&seed, code, now.timestamp() as u64) {
        let step = step as i64;
        let mut claim = entity::Entity::update_many()
            .col_expr(entity::Column::TotpLastStep, Expr::value(step))
            .filter(entity::Column::Id.eq(&user.id))
            .filter(entity::Column::TotpSecret.eq(user.totp_secret.clone()))
            .filter(
                entity::Column::TotpLastStep
                    .is_null()
                    .or(entity::Column::TotpLastStep.lt(step)),
            );
        if user.totp_enabled_at.is_none() {
            claim = claim.col_expr(entity::Column::TotpEnabledAt, Expr::value(now));
        }
        if claim.exec(tx).await?.rows_affected == 1 {
            if user.totp_enabled_at.is_none() {
                audit_own(tx, user, "staff.totp_enabled").await?;
            }
            return Ok(());
        }
    }
    let locked = lockout::fail(tx, attempt, true, now).await?;
    audit_lock(tx, Some(user), locked).await?;
    Err(locked.map_or(StaffError::BadCode, StaffError::Locked))
}

/// Disables an account and ends its sessions.
pub async fn disable(tx: &Tx, email: &str, actor: &Actor) -> Result<StaffUser, StaffError> {
    let user = by_email(tx, email).await?.ok_or(StaffError::NotFound)?;
    entity::Entity::update_many()
        .col_expr(entity::Column::DisabledAt, Expr::value(clock::now()))
        .filter(entity::Column::Id.eq(&user.id))
        .exec(tx)
        .await?;
    end_sessions(tx, &user, actor, "staff.disabled").await?;
    Ok(user)
}
