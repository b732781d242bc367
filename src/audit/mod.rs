//! The audit log: append-only and hash-chained, written in the same transaction as the change it
//! records, so that an audited change and its entry commit or roll back together. Entries are
//! linked into their chain as the transaction commits ([`record`]).
//!
//! There is one chain per target (a person, a request, a key: `<target_type>:<target_id>`), so
//! that writers about different targets never wait for one head row; entries written while the
//! log was a single chain stay in the chain `audit`. Each entry's hash is SHA-256 over the
//! previous entry's hash in its chain and the entry's canonical JSON, which includes its
//! position in the whole log (`seq`). Editing, deleting or reordering entries breaks a chain,
//! and dropping a chain's newest entries leaves it short of its head; [`verify`] walks every
//! chain and reports the earliest entry that does not hold. Deleting a whole chain together
//! with its head row is the one removal the chains cannot show on their own. Entries carry ids, never personal data. This room owns
//! `audit_log` and `chain_heads`; [`record`] takes the caller's [`Tx`], so it cannot be written
//! outside one.

pub mod api;
pub mod model;

use std::{
    any::Any,
    collections::{BTreeMap, BTreeSet, HashMap},
};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sea_orm::{
    AccessMode, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, IsolationLevel,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionOptions, TransactionTrait,
    prelude::*, sea_query::OnConflict,
};
use serde_json::Value;

use crate::{
    clock, crypto,
    db::{ROWS_PER_STATEMENT, Tx},
};
use model::{audit_log, chain_heads};

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
/// The entry is linked into its target's chain when the transaction commits ([`append`]), so
/// that the chain's head is locked for a few statements at the commit and not for the whole
/// transaction.
pub async fn record(
    tx: &Tx,
    actor: &Actor,
    action: &str,
    target: Target,
    details: Value,
) -> Result<(), DbErr> {
    let entry = audit_log::Model {
        seq: 0,
        chain: format!("{}:{}", target.kind, target.id),
        chain_seq: 0,
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

/// Links a transaction's entries into their chains, in the order they were recorded, and
/// writes them with the chains' new heads: five statements on PostgreSQL and four on SQLite,
/// however many entries and chains.
///
/// The heads are created if new and then locked (`FOR UPDATE` on PostgreSQL; SQLite has one
/// writer at a time), both in the order of the chains' names, so that commits about the same
/// target queue up here and never fork its chain, commits about different targets do not wait
/// for each other, and two commits cannot each hold a head the other waits for.
fn append(tx: &Tx, entries: Vec<Box<dyn Any + Send>>) -> BoxFuture<'_, Result<(), DbErr>> {
    use chain_heads::Column;
    Box::pin(async move {
        let entries: Vec<audit_log::Model> = entries
            .into_iter()
            .map(|entry| {
                *entry
                    .downcast::<audit_log::Model>()
                    .expect("only audit entries are appended by the audit log")
            })
            .collect();
        let chains: Vec<String> = entries
            .iter()
            .map(|e| e.chain.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let genesis = |chain: &String| chain_heads::Model {
            chain: chain.clone(),
            seq: 0,
            hash: GENESIS.to_string(),
            last_seq: 0,
        };
        // On PostgreSQL a new chain's head is inserted first, so that a concurrent commit
        // starting the same chain waits for it instead of forking; SQLite's single writer
        // creates it with the other heads at the end.
        if tx.get_database_backend() == DbBackend::Postgres {
            for names in chains.chunks(ROWS_PER_STATEMENT) {
                chain_heads::Entity::insert_many(
                    names
                        .iter()
                        .map(|c| chain_heads::ActiveModel::from(genesis(c))),
                )
                .on_conflict(OnConflict::column(Column::Chain).do_nothing().to_owned())
                .exec_without_returning(tx)
                .await?;
            }
        }
        let mut heads = HashMap::with_capacity(chains.len());
        for names in chains.chunks(ROWS_PER_STATEMENT) {
            let locked = chain_heads::Entity::find()
                .filter(Column::Chain.is_in(names.iter().map(String::as_str)))
                .order_by_asc(Column::Chain)
                .lock_exclusive()
                .all(tx)
                .await?;
            heads.extend(locked.into_iter().map(|head| (head.chain.clone(), head)));
        }
        let mut seqs = next_seqs(tx, entries.len()).await?.into_iter();
        let mut rows = Vec::with_capacity(entries.len());
        for mut entry in entries {
            let head = heads
                .entry(entry.chain.clone())
                .or_insert_with(|| genesis(&entry.chain));
            entry.seq = seqs
                .next()
                .ok_or_else(|| DbErr::Custom("too few audit sequence numbers".into()))?;
            entry.chain_seq = head.seq + 1;
            entry.prev_hash = std::mem::take(&mut head.hash);
            entry.hash = entry_hash(&entry);
            head.seq = entry.chain_seq;
            head.hash = entry.hash.clone();
            head.last_seq = entry.seq;
            rows.push(audit_log::ActiveModel::from(entry));
        }
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            audit_log::Entity::insert_many(rows.by_ref().take(ROWS_PER_STATEMENT))
                .exec_without_returning(tx)
                .await?;
        }
        let mut heads = heads
            .into_values()
            .map(chain_heads::ActiveModel::from)
            .peekable();
        while heads.peek().is_some() {
            chain_heads::Entity::insert_many(heads.by_ref().take(ROWS_PER_STATEMENT))
                .on_conflict(
                    OnConflict::column(Column::Chain)
                        .update_columns([Column::Seq, Column::Hash, Column::LastSeq])
                        .to_owned(),
                )
                .exec_without_returning(tx)
                .await?;
        }
        Ok(())
    })
}

/// `count` new positions in the whole log, in increasing order. SQLite's single writer takes
/// those after the largest; PostgreSQL's writers draw from a sequence and never wait for each
/// other (a transaction that rolls back leaves a gap, which is why [`verify`] checks positions
/// within chains and not in the log).
async fn next_seqs(tx: &Tx, count: usize) -> Result<Vec<i64>, DbErr> {
    let count = i64::try_from(count).map_err(|e| DbErr::Custom(e.to_string()))?;
    let mut seqs: Vec<i64> = match tx.get_database_backend() {
        DbBackend::Postgres => {
            let rows = tx
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT nextval('audit_log_seq') FROM generate_series(1, $1)",
                    [count.into()],
                ))
                .await?;
            rows.iter()
                .map(|row| row.try_get_by_index::<i64>(0))
                .collect::<Result<_, _>>()?
        }
        _ => {
            let largest: Option<i64> = audit_log::Entity::find()
                .select_only()
                .column_as(audit_log::Column::Seq.max(), "seq")
                .into_tuple()
                .one(tx)
                .await?
                .flatten();
            let first = largest.unwrap_or(0) + 1;
            (first..first + count).collect()
        }
    };
    seqs.sort_unstable();
    Ok(seqs)
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

/// The outcome of recomputing every chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    /// Entries whose hash and link hold.
    pub checked: u64,
    /// The earliest entry (by `seq`) that does not hold, and why.
    pub broken: Option<(i64, &'static str)>,
}

impl Verification {
    fn broken_at(&mut self, seq: i64, problem: &'static str) {
        if self.broken.is_none_or(|(first, _)| seq < first) {
            self.broken = Some((seq, problem));
        }
    }

    /// Checks the next entry of the chain being walked; the rest of a broken chain is skipped.
    fn step(&mut self, walk: &mut Walk, entry: audit_log::Model) {
        if walk.broken {
            return;
        }
        let problem = if entry.chain_seq != walk.length + 1 {
            Some("an entry is missing before this one")
        } else if entry.prev_hash != walk.hash {
            Some("prev_hash does not match the previous entry")
        } else if entry_hash(&entry) != entry.hash {
            Some("the entry's content does not match its hash")
        } else {
            None
        };
        if let Some(problem) = problem {
            walk.broken = true;
            self.broken_at(entry.seq, problem);
            return;
        }
        self.checked += 1;
        walk.length = entry.chain_seq;
        walk.hash = entry.hash;
        walk.last_seq = entry.seq;
    }

    /// Checks that a walked chain ends where its head says.
    fn end(&mut self, walk: Walk, head: Option<chain_heads::Model>) {
        if walk.broken {
            return;
        }
        match head {
            None => self.broken_at(walk.last_seq, "the chain of this entry has no head"),
            Some(head) if head.seq == walk.length && head.hash == walk.hash => {}
            Some(head) if head.seq > walk.length => {
                self.broken_at(head.last_seq, "entries are missing at the end of a chain")
            }
            Some(head) => self.broken_at(
                head.last_seq.max(walk.last_seq),
                "the chain does not end at its recorded head",
            ),
        }
    }
}

/// A chain as far as it has been walked.
struct Walk {
    chain: String,
    length: i64,
    hash: String,
    last_seq: i64,
    broken: bool,
}

impl Walk {
    fn new(chain: String) -> Self {
        Self {
            chain,
            length: 0,
            hash: GENESIS.to_string(),
            last_seq: 0,
            broken: false,
        }
    }
}

/// Rows read per query while verifying, so that memory stays flat however long the log is.
const VERIFY_PAGE: u64 = 1000;

/// Recomputes every chain: each entry's hash and link and its position, and that each chain
/// ends at its head; an entry without a head and a head whose entries are gone are reported
/// too. Reads one snapshot (a read-only repeatable-read transaction on PostgreSQL, a read
/// transaction under WAL on SQLite), so that writes committed meanwhile are not half seen.
///
/// Chains are walked in the order of their names, a page of heads at a time with the entries
/// named between the previous page's last head and this page's.
pub async fn verify<C>(db: &C) -> Result<Verification, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let options = match db.get_database_backend() {
        DbBackend::Postgres => TransactionOptions {
            isolation_level: Some(IsolationLevel::RepeatableRead),
            access_mode: Some(AccessMode::ReadOnly),
            ..TransactionOptions::default()
        },
        _ => TransactionOptions::default(),
    };
    let snapshot = db.begin_with_options(options).await?;
    let mut verification = Verification::default();
    let mut after: Option<String> = None;
    loop {
        let mut query = chain_heads::Entity::find()
            .order_by_asc(chain_heads::Column::Chain)
            .limit(VERIFY_PAGE);
        if let Some(after) = &after {
            query = query.filter(chain_heads::Column::Chain.gt(after.as_str()));
        }
        let heads = query.all(&snapshot).await?;
        let upto = match heads.len() as u64 {
            VERIFY_PAGE => heads.last().map(|h| h.chain.clone()),
            _ => None,
        };
        let heads = heads.into_iter().map(|h| (h.chain.clone(), h)).collect();
        walk_chains(
            &snapshot,
            after.as_deref(),
            upto.as_deref(),
            heads,
            &mut verification,
        )
        .await?;
        match upto {
            Some(upto) => after = Some(upto),
            None => break,
        }
    }
    Ok(verification)
}

/// Walks the chains named after `after` and up to `upto` (to the end when `None`), whose heads
/// are `heads`.
async fn walk_chains(
    conn: &impl ConnectionTrait,
    after: Option<&str>,
    upto: Option<&str>,
    mut heads: BTreeMap<String, chain_heads::Model>,
    verification: &mut Verification,
) -> Result<(), DbErr> {
    use audit_log::Column;
    let mut walk: Option<Walk> = None;
    let mut cursor: Option<(String, i64)> = None;
    loop {
        let mut query = audit_log::Entity::find()
            .order_by_asc(Column::Chain)
            .order_by_asc(Column::ChainSeq)
            .limit(VERIFY_PAGE);
        if let Some(after) = after {
            query = query.filter(Column::Chain.gt(after));
        }
        if let Some(upto) = upto {
            query = query.filter(Column::Chain.lte(upto));
        }
        if let Some((chain, seq)) = &cursor {
            query = query.filter(
                Condition::any().add(Column::Chain.gt(chain.as_str())).add(
                    Condition::all()
                        .add(Column::Chain.eq(chain.as_str()))
                        .add(Column::ChainSeq.gt(*seq)),
                ),
            );
        }
        let page = query.all(conn).await?;
        let done = (page.len() as u64) < VERIFY_PAGE;
        cursor = page.last().map(|e| (e.chain.clone(), e.chain_seq));
        for entry in page {
            if walk.as_ref().is_none_or(|w| w.chain != entry.chain) {
                if let Some(done) = walk.take() {
                    let head = heads.remove(&done.chain);
                    verification.end(done, head);
                }
                walk = Some(Walk::new(entry.chain.clone()));
            }
            if let Some(walk) = walk.as_mut() {
                verification.step(walk, entry);
            }
        }
        if done {
            break;
        }
    }
    if let Some(done) = walk {
        let head = heads.remove(&done.chain);
        verification.end(done, head);
    }
    for (chain, head) in heads {
        verification.end(Walk::new(chain), Some(head));
    }
    Ok(())
}

/// The `prev_hash` of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
