//! The audit log: append-only and hash-chained, written in the same transaction as the change it
//! records, so that an audited change and its entry commit or roll back together. Entries are
//! linked into the chain as the transaction commits ([`record`]).
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON.
//! Editing, deleting or reordering entries breaks the chain, which [`verify`] reports with the
//! first broken sequence number. Entries carry ids, never personal data. This room owns
//! `audit_log` and `chain_heads`; [`record`] takes the caller's [`Tx`], so it cannot be written
//! outside one.

pub mod api;
pub mod model;

use std::any::Any;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    prelude::*,
};
use serde_json::Value;

use crate::{
    clock, crypto,
    db::{ROWS_PER_STATEMENT, Tx},
};
use model::{audit_log, chain_heads};

/// Name of the audit log's row in `chain_heads`.
const CHAIN: &str = "audit";

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A caller holding the API key with this id.
    ApiKey(String),
    /// An operator at the command line.
    Cli,
    /// The service itself, e.g. importing `policies/` at start-up.
    System,
    /// The main app, through a signed event.
    MainApp,
    /// The person themselves, through the portal.
    Subject,
    /// A minor's parent or guardian, through their emailed link.
    Guardian,
    /// A member of staff signed in to the console, by account id.
    Staff(String),
    /// A registered system reporting on its own job, by its key (see `system`).
    DataSystem(String),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::Cli => f.write_str("cli"),
            Actor::System => f.write_str("system"),
            Actor::MainApp => f.write_str("main_app"),
            Actor::Subject => f.write_str("subject"),
            Actor::Guardian => f.write_str("guardian"),
            Actor::Staff(id) => write!(f, "staff:{id}"),
            Actor::DataSystem(key) => write!(f, "data_system:{key}"),
        }
    }
}

/// What a change was made to.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static str,
    pub id: String,
}

impl Target {
    pub fn new(kind: &'static str, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }
}

/// Appends an entry. Call it with the transaction that makes the change.
///
/// The entry is linked into the chain when the transaction commits ([`append`]), so that the
/// chain's head, which every appender locks, is held for a few statements at the commit and
/// not for the whole transaction: writers about different people do not take turns for it.
pub async fn record(
    tx: &Tx,
    actor: &Actor,
    action: &str,
    target: Target,
    details: Value,
) -> Result<(), DbErr> {
    let entry = audit_log::Model {
        seq: 0,
        occurred_at: clock::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target_type: target.kind.to_string(),
        target_id: target.id,
        details: crypto::canonical_json(&details),
        prev_hash: String::new(),
        hash: String::new(),
    };
    tx.append_at_commit(append, Box::new(entry));
    Ok(())
}

/// Links a transaction's entries into the chain, in the order they were recorded, and writes
/// them with the new head. Locking the head (`FOR UPDATE` on PostgreSQL; SQLite has one writer
/// at a time) makes concurrent commits queue up here, so the chain never forks.
fn append(tx: &Tx, entries: Vec<Box<dyn Any + Send>>) -> BoxFuture<'_, Result<(), DbErr>> {
    Box::pin(async move {
        let head = chain_heads::Entity::find_by_id(CHAIN)
            .lock_exclusive()
            .one(tx)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("the audit chain head is missing".into()))?;
        let (mut seq, mut prev_hash) = (head.seq, head.hash);
        let mut rows = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut entry = *entry
                .downcast::<audit_log::Model>()
                .expect("only audit entries are appended by the audit log");
            seq += 1;
            entry.seq = seq;
            entry.prev_hash = prev_hash;
            entry.hash = entry_hash(&entry);
            prev_hash = entry.hash.clone();
            rows.push(audit_log::ActiveModel::from(entry));
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            audit_log::Entity::insert_many(rows.by_ref().take(ROWS_PER_STATEMENT))
                .exec_without_returning(tx)
                .await?;
        }
        chain_heads::ActiveModel {
            chain: Set(CHAIN.to_string()),
            seq: Set(seq),
            hash: Set(prev_hash),
        }
        .update(tx)
        .await?;
        Ok(())
    })
}

/// The digest that links `entry` to its predecessor.
fn entry_hash(entry: &audit_log::Model) -> String {
    let document = serde_json::json!({
        "seq": entry.seq,
        "occurred_at": clock::canonical(entry.occurred_at),
        "actor": entry.actor,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details": entry.details,
    });
    let input = format!("{}\n{}", entry.prev_hash, crypto::canonical_json(&document));
    crypto::sha256_hex(input.as_bytes())
}

/// Filters for [`list`]; every field is optional.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Return entries older than this sequence number (the previous page's `next_cursor`).
    pub before_seq: Option<i64>,
}

/// One page of entries, newest first, and the cursor of the next page if there is one.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &Filter,
    limit: u64,
) -> Result<(Vec<audit_log::Model>, Option<i64>), DbErr> {
    use audit_log::Column;
    let mut query = audit_log::Entity::find().order_by_desc(Column::Seq);
    if let Some(actor) = &filter.actor {
        query = query.filter(Column::Actor.eq(actor.as_str()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(Column::Action.eq(action.as_str()));
    }
    if let Some(kind) = &filter.target_type {
        query = query.filter(Column::TargetType.eq(kind.as_str()));
    }
    if let Some(id) = &filter.target_id {
        query = query.filter(Column::TargetId.eq(id.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(Column::OccurredAt.gte(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(Column::OccurredAt.lt(until));
    }
    if let Some(before) = filter.before_seq {
        query = query.filter(Column::Seq.lt(before));
    }
    let mut rows = query.limit(limit + 1).all(conn).await?;
    let next = if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok((rows, next))
}

/// The outcome of recomputing the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: u64,
    /// The first entry that does not hold, and why.
    pub broken: Option<(i64, &'static str)>,
}

/// Rows read per query while verifying, so that memory stays flat however long the log is.
const VERIFY_PAGE: u64 = 1000;

/// Recomputes every hash from the first entry on and checks the links, the sequence and the
/// head; stops at the first entry that does not hold.
pub async fn verify(conn: &impl ConnectionTrait) -> Result<Verification, DbErr> {
    use audit_log::Column;
    let mut prev_hash = GENESIS.to_string();
    let mut expected_seq = 1;
    let mut checked = 0;
    loop {
        let page = audit_log::Entity::find()
            .filter(Column::Seq.gte(expected_seq))
            .order_by_asc(Column::Seq)
            .limit(VERIFY_PAGE)
            .all(conn)
            .await?;
        let done = (page.len() as u64) < VERIFY_PAGE;
        for entry in page {
            let problem = if entry.seq != expected_seq {
                Some("an entry is missing before this one")
            } else if entry.prev_hash != prev_hash {
                Some("prev_hash does not match the previous entry")
            } else if entry_hash(&entry) != entry.hash {
                Some("the entry's content does not match its hash")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Ok(Verification {
                    checked,
                    broken: Some((expected_seq, problem)),
                });
            }
            checked += 1;
            expected_seq += 1;
            prev_hash = entry.hash;
        }
        if done {
            break;
        }
    }
    let head = chain_heads::Entity::find_by_id(CHAIN).one(conn).await?;
    let head_holds = head.is_some_and(|h| h.seq == expected_seq - 1 && h.hash == prev_hash);
    Ok(Verification {
        checked,
        broken: (!head_holds)
            .then_some((expected_seq, "entries are missing at the end of the log")),
    })
}

/// The `prev_hash` of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
