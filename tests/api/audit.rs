//! The audit log: written with each change, filtered and paged, and its chains (one per target)
//! verify until a row is edited, reordered or removed behind the service's back.

use consentry::{
    audit::{Actor, Target},
    auth::Role,
};
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::support::{TestApp, json, key_id, spawn_app_with};

async fn verify(app: &TestApp, key: &str) -> Value {
    app.read("/v1/admin/audit/verify", key).await
}

async fn create_key(app: &TestApp, admin: &str, name: &str) -> Value {
    json(
        app.post("/v1/admin/keys")
            .bearer_auth(admin)
            .json(&json!({ "name": name, "role": "viewer" }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await
}

#[tokio::test]
async fn key_creation_and_revocation_are_audited_with_their_actor() {
    let app = spawn_app_without_policies().await;
    let admin = app.key(Role::Admin).await;
    let created = create_key(&app, &admin, "reader").await;
    let id = created["id"].as_str().unwrap();
    app.request(Method::DELETE, &format!("/v1/admin/keys/{id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();

    let page = app
        .read(&format!("/v1/admin/audit?target_id={id}"), &admin)
        .await;
    let items = page["items"].as_array().unwrap();
    let actions: Vec<_> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["api_key.revoked", "api_key.created"],
        "newest first"
    );
    let admin_id = key_id(&admin);
    assert_eq!(items[0]["actor"], format!("api_key:{admin_id}"));
    assert_eq!(items[1]["details"]["role"], "viewer");
    for (item, position) in items.iter().zip([2, 1]) {
        assert_eq!(
            item["chain"],
            format!("api_key:{id}"),
            "one chain per target"
        );
        assert_eq!(item["chain_seq"], position);
    }
    assert_eq!(
        items[0]["prev_hash"], items[1]["hash"],
        "linked in its chain"
    );
    assert!(!page.to_string().contains(created["key"].as_str().unwrap()));
}

#[tokio::test]
async fn the_audit_log_pages_with_a_cursor_and_filters_by_action() {
    let app = spawn_app_without_policies().await;
    let admin = app.key(Role::Admin).await;
    for i in 0..5 {
        create_key(&app, &admin, &format!("k{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            Some(c) => format!("/v1/admin/audit?action=api_key.created&limit=2&cursor={c}"),
            None => "/v1/admin/audit?action=api_key.created&limit=2".to_string(),
        };
        let page = app.read(&path, &admin).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["seq"].as_i64().unwrap());
        }
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [6, 5, 4, 3, 2, 1],
        "every creation once, newest first"
    );

    let bad = app
        .get("/v1/admin/audit?limit=0")
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_chain_verifies_and_an_edited_row_is_reported() {
    let app = spawn_app_without_policies().await;
    let admin = app.key(Role::Admin).await;
    for i in 0..4 {
        create_key(&app, &admin, &format!("k{i}")).await;
    }
    let ok = verify(&app, &admin).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["checked"], 5);

    app.state
        .db
        .conn()
        .execute_unprepared(
            r#"UPDATE audit_log SET details = '{"name":"innocent","role":"viewer"}' WHERE seq = 3"#,
        )
        .await
        .unwrap();
    let broken = verify(&app, &admin).await;
    assert_eq!(broken["ok"], false);
    assert_eq!(broken["first_broken_seq"], 3, "{broken}");
    assert_eq!(broken["checked"], 4, "the other chains still hold");
}

/// Reordering a chain, cutting its newest entry and dropping a head are each reported, at the
/// earliest entry affected.
#[tokio::test]
async fn a_reordered_or_cut_chain_and_an_entry_without_a_head_are_reported() {
    let app = spawn_app_without_policies().await;
    let admin = app.key(Role::Admin).await;
    let kept = create_key(&app, &admin, "kept").await;
    let id = kept["id"].as_str().unwrap();
    app.request(Method::DELETE, &format!("/v1/admin/keys/{id}"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let other = create_key(&app, &admin, "other").await;
    let seq_of = |target: String, action: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let page = app
                .read(
                    &format!("/v1/admin/audit?target_id={target}&action={action}"),
                    admin,
                )
                .await;
            page["items"][0]["seq"].as_i64().unwrap()
        }
    };
    let revoked = seq_of(id.to_string(), "api_key.revoked").await;
    let other_created = seq_of(other["id"].as_str().unwrap().to_string(), "api_key.created").await;
    assert_eq!(verify(&app, &admin).await["ok"], true);

    let db = app.state.db.conn();
    let chain = format!("api_key:{id}");
    let renumber = |from: i64, to: i64| {
        format!(
            "UPDATE audit_log SET chain_seq = {to} WHERE chain = '{chain}' AND chain_seq = {from}"
        )
    };
    for (from, to) in [(1, -1), (2, 1), (-1, 2)] {
        db.execute_unprepared(&renumber(from, to)).await.unwrap();
    }
    let swapped = verify(&app, &admin).await;
    assert_eq!(swapped["first_broken_seq"], revoked, "{swapped}");
    assert_eq!(
        swapped["problem"],
        "prev_hash does not match the previous entry"
    );
    for (from, to) in [(1, -1), (2, 1), (-1, 2)] {
        db.execute_unprepared(&renumber(from, to)).await.unwrap();
    }
    assert_eq!(verify(&app, &admin).await["ok"], true, "swapped back");

    let other_chain = format!("api_key:{}", other["id"].as_str().unwrap());
    db.execute_unprepared(&format!(
        "DELETE FROM chain_heads WHERE chain = '{other_chain}'"
    ))
    .await
    .unwrap();
    let headless = verify(&app, &admin).await;
    assert_eq!(headless["first_broken_seq"], other_created, "{headless}");
    assert_eq!(headless["problem"], "the chain of this entry has no head");

    db.execute_unprepared(&format!("DELETE FROM audit_log WHERE seq = {revoked}"))
        .await
        .unwrap();
    let cut = verify(&app, &admin).await;
    assert_eq!(
        cut["first_broken_seq"], revoked,
        "the earliest of the two: {cut}"
    );
    assert_eq!(cut["problem"], "entries are missing at the end of a chain");
}

/// Transactions about one target at once queue for its head and leave one chain, in commit
/// order, while each also extends a chain of its own.
#[tokio::test]
async fn writers_about_one_target_at_once_never_fork_its_chain() {
    let app = spawn_app_without_policies().await;
    let admin = app.key(Role::Admin).await;
    join_all((0..30).map(|i| {
        let db = app.state.db.clone();
        async move {
            let tx = db.begin().await.unwrap();
            entry(&tx, 5000 + i).await.unwrap();
            consentry::audit::record(
                &tx,
                &Actor::Cli,
                "test.recorded",
                Target::new("test", "shared"),
                json!({"i": i}),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }))
    .await;
    use consentry::audit::model::audit_log;
    use sea_orm::QueryOrder;
    let shared = audit_log::Entity::find()
        .filter(audit_log::Column::Chain.eq("test:shared"))
        .order_by_asc(audit_log::Column::ChainSeq)
        .all(app.state.db.conn())
        .await
        .unwrap();
    let positions: Vec<i64> = shared.iter().map(|e| e.chain_seq).collect();
    assert_eq!(positions, (1..=30).collect::<Vec<_>>());
    for pair in shared.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert!(pair[1].seq > pair[0].seq, "the log's order is the chain's");
    }
    let result = verify(&app, &admin).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["checked"], 1 + 60);
}

#[tokio::test]
async fn a_deleted_row_is_reported() {
    let app = spawn_app_without_policies().await;
    let admin = app.key(Role::Admin).await;
    for i in 0..3 {
        create_key(&app, &admin, &format!("k{i}")).await;
    }
    let db = app.state.db.conn();
    db.execute_unprepared("DELETE FROM audit_log WHERE seq = 2")
        .await
        .unwrap();
    let broken = verify(&app, &admin).await;
    assert_eq!(broken["first_broken_seq"], 2, "{broken}");

    db.execute_unprepared("DELETE FROM audit_log WHERE seq >= 2")
        .await
        .unwrap();
    let truncated = verify(&app, &admin).await;
    assert_eq!(
        truncated["ok"], false,
        "losing the newest entries is detected"
    );
    assert_eq!(truncated["first_broken_seq"], 2, "{truncated}");
}

#[tokio::test]
async fn concurrent_writes_never_fork_the_chain() {
    let app = spawn_app_without_policies().await;
    let admin = app.key(Role::Admin).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let request = app
            .post("/v1/admin/keys")
            .bearer_auth(&admin)
            .json(&json!({ "name": format!("parallel-{i}"), "role": "viewer" }));
        tasks.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::CREATED);
    }
    let result = verify(&app, &admin).await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["checked"], 25);
}

/// An app whose audit log starts empty: no policy documents are imported at start-up.
async fn spawn_app_without_policies() -> TestApp {
    spawn_app_with(|c| c.policies_dir = c.data_dir.join("no-policies")).await
}

/// Records a test entry about `i`.
async fn entry(tx: &consentry::db::Tx, i: usize) -> Result<(), DbErr> {
    consentry::audit::record(
        tx,
        &Actor::Cli,
        "test.recorded",
        Target::new("test", i.to_string()),
        json!({"i": i}),
    )
    .await
}

/// Entries are linked into their chains as their transaction commits: transactions recording at
/// once, on their own or sharing a group commit, leave unforked chains; a
/// unit rolled back to its savepoint and a transaction dropped leave no entry.
#[tokio::test]
async fn entries_recorded_at_once_link_into_their_chains_at_their_commits() {
    let app = spawn_app_with(|_| {}).await;
    let admin = app.key(Role::Admin).await;
    let before = verify(&app, &admin).await["checked"].as_u64().unwrap();
    let grouped = app.run_units(40, |i, tx| {
        Box::pin(async move {
            entry(tx, i).await?;
            entry(tx, i + 1000).await?;
            if i % 4 == 0 {
                Err(DbErr::Custom("refused after recording".into()))
            } else {
                Ok(())
            }
        })
    });
    let alone = join_all((100..120).map(|i| {
        let db = app.state.db.clone();
        async move {
            let tx = db.begin().await.unwrap();
            entry(&tx, i).await.unwrap();
            if i % 5 == 0 {
                drop(tx);
            } else {
                tx.commit().await.unwrap();
            }
        }
    }));
    let (grouped, _) = tokio::join!(grouped, alone);
    assert_eq!(grouped.iter().filter(|r| r.is_ok()).count(), 30);
    let kept: Vec<String> = consentry::audit::model::audit_log::Entity::find()
        .filter(consentry::audit::model::audit_log::Column::Action.eq("test.recorded"))
        .all(app.state.db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.target_id)
        .collect();
    let mut expected: Vec<String> = (0..40)
        .filter(|i| i % 4 != 0)
        .flat_map(|i| [i, i + 1000])
        .chain((100..120).filter(|i| i % 5 != 0))
        .map(|i| i.to_string())
        .collect();
    let mut got = kept.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "exactly the committed entries");
    let after = verify(&app, &admin).await;
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(
        after["checked"].as_u64().unwrap(),
        before + expected.len() as u64
    );
}
