//! Retention purge benchmark: 1,000,000 data items across 100,000 people, with 100,000,
//! 300,000 and then all 1,000,000 of them expired (each size on a fresh database). While not
//! all are expired, 100,000 others enter their notice window. One full run marks every expired item
//! and queues its erasure jobs and every notice email; delivery is measured by the outbox
//! bench. The baseline, measured in the same process, is reading the expired items once in
//! id-keyed pages of 1,000, the least any purge has to do.
//!
//! `cargo bench --bench purge` (SQLite); `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL.

#[allow(dead_code)]
mod common;

use std::time::Instant;

use chrono::TimeDelta;
use common::{database, engine, memory_mib};
use consentry::{
    audit::Actor,
    clock,
    db::Db,
    notify::outbox,
    retention::items,
    retention::{self, purge},
    subject,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

const PEOPLE: usize = 100_000;
const ITEMS: usize = 1_000_000;
const ROWS_PER_INSERT: usize = 1000;

/// Loads the people and their items; item `i` is expired when `i % 10` is under
/// `expired_tenths`, so expired items are spread over everyone, and otherwise in the notice
/// window when `i % 10` is 9.
async fn load(db: &Db, expired: usize) {
    let now = clock::now();
    let conn = db.conn();
    let per_person = ITEMS / PEOPLE;
    for start in (0..PEOPLE).step_by(ROWS_PER_INSERT) {
        let people = (start..start + ROWS_PER_INSERT).map(|p| {
            let mut row = subject::new_row(&format!("user-{p}"));
            row.id = Set(format!("s{p:07}"));
            row.email = Set(Some(format!("user-{p}@example.com")));
            row.locale = Set(Some("en".into()));
            row
        });
        subject::model::Entity::insert_many(people)
            .exec_without_returning(conn)
            .await
            .unwrap();
    }
    let expired_tenths = expired * 10 / ITEMS;
    for start in (0..ITEMS).step_by(ROWS_PER_INSERT) {
        let rows = (start..start + ROWS_PER_INSERT).map(|i| {
            let due = if i % 10 < expired_tenths {
                now - TimeDelta::days(1)
            } else if i % 10 == 9 {
                // In the seven-day notice window.
                now + TimeDelta::days(3)
            } else {
                now + TimeDelta::days(60)
            };
            let mut row = items::new_row(
                &format!("s{:07}", i / per_person),
                items::Recorded {
                    category: "generated_images".into(),
                    external_ref: format!("img-{i}"),
                    created_at: due - TimeDelta::days(30),
                    clock_event: None,
                    clock_started_at: None,
                },
            );
            row.id = Set(format!("i{i:08}"));
            row.purge_after = Set(Some(due));
            row
        });
        items::entity::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await
            .unwrap();
    }
    // The rule is written as it stands, without dating the items again.
    retention::entity::Entity::insert(retention::entity::ActiveModel {
        category: Set("generated_images".into()),
        period: Set("P30D".into()),
        clock_start: Set("created".into()),
        action: Set(consentry::retention::RetentionAction::Delete),
        titles: Set(None),
        options: Set(None),
        notice_before: Set(Some("P7D".into())),
        notify_after: Set(true),
        legal_hold: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(conn)
    .await
    .unwrap();
    // Fresh statistics, as after any bulk load (PostgreSQL's autovacuum would gather them a
    // little later): without them the planner guesses.
    conn.execute_unprepared("ANALYZE").await.unwrap();
}

/// Reads every expired item once, in id-keyed pages.
async fn read_expired(db: &Db) -> (usize, f64) {
    let now = clock::now();
    let started = Instant::now();
    let mut after = String::new();
    let mut seen = 0;
    loop {
        let page: Vec<(String, String)> = items::entity::Entity::find()
            .select_only()
            .column(items::entity::Column::Id)
            .column(items::entity::Column::SubjectId)
            .filter(items::entity::Column::PurgeAfter.lte(now))
            .filter(items::entity::Column::Id.gt(after.as_str()))
            .order_by_asc(items::entity::Column::Id)
            .limit(1000)
            .into_tuple()
            .all(db.conn())
            .await
            .unwrap();
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        seen += page.len();
    }
    (seen, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    println!(
        "purge run, {} ({} items, {} people; notice window P7D)",
        engine(),
        ITEMS,
        PEOPLE
    );
    for expired in [100_000, 300_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let (_, db, config) = database(&dir, &format!("purge{expired}")).await;
        let loading = Instant::now();
        load(&db, expired).await;
        let loaded = loading.elapsed().as_secs_f64();
        let (seen, baseline) = read_expired(&db).await;
        assert_eq!(seen, expired);

        // Peak RSS from here on: the loading above is not the purge's.
        std::fs::write("/proc/self/clear_refs", "5").ok();
        let started = Instant::now();
        let run = purge::start(&db, &config, false, clock::now(), &Actor::Cli)
            .await
            .unwrap();
        let run = consentry::actions::purges::execute(&db, &config, run)
            .await
            .unwrap();
        let took = started.elapsed().as_secs_f64();
        let peak = memory_mib("self", "VmHWM:");
        let report: purge::Report = serde_json::from_str(&run.report).unwrap();
        assert_eq!(report.items_purging as usize, expired);
        let queued = outbox::entity::Entity::find()
            .filter(outbox::entity::Column::Kind.eq(outbox::Kind::Email))
            .count(db.conn())
            .await
            .unwrap();
        println!(
            "  {:>9} expired  run {:>7.2} s  ({:>8.0} items/s)  baseline read {:>6.2} s  ratio {:>5.1}  \
             {:>5} jobs  {:>6} notices ({:>6} items)  {:>6} emails queued  peak RSS {:>6.1} MiB  (load {:.0} s)",
            expired,
            took,
            expired as f64 / took,
            baseline,
            took / baseline,
            report.batches,
            report.notices_queued,
            report.items_noticed,
            queued,
            peak,
            loaded,
        );
        db.close().await.ok();
    }
}
