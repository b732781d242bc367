//! Registering what the main app stores, in bulk: 100,000 data items for 10,000 people sent as
//! signed `data.recorded_many` events of 5,000 items (two in flight) to the running service,
//! against the floor of inserting the same people and item rows straight into the database.
//!
//! `cargo bench --bench items` (SQLite); `CONSENTRY_BENCH_DATABASE_URL=postgres://...` for
//! PostgreSQL.

#[allow(dead_code)]
mod common;

use std::time::Instant;

use chrono::Utc;
use common::{database, engine};
use consentry::{App, config::Secret, retention::items, subject};
use futures_util::{StreamExt, stream};
use sea_orm::EntityTrait;

const ITEMS: usize = 100_000;
const PEOPLE: usize = 10_000;
const PER_EVENT: usize = 5_000;
const SECRET: &str = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OQ==";

fn item(i: usize) -> serde_json::Value {
    serde_json::json!({
        "external_id": format!("person-{}", i % PEOPLE),
        "item_ref": format!("img-{i}"),
        "category": "generated_images",
    })
}

/// The floor: the same rows inserted directly, 1,000 per statement.
async fn direct(db: &consentry::db::Db) -> f64 {
    let started = Instant::now();
    let tx = db.begin().await.unwrap();
    let people: Vec<_> = (0..PEOPLE)
        .map(|p| subject::new_row(&format!("direct-{p}")))
        .collect();
    let ids: Vec<String> = people.iter().map(|p| p.id.clone().unwrap()).collect();
    for chunk in people.chunks(1000) {
        subject::model::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&tx)
            .await
            .unwrap();
    }
    let rows: Vec<_> = (0..ITEMS)
        .map(|i| {
            items::new_row(
                &ids[i % PEOPLE],
                items::Recorded {
                    category: "generated_images".into(),
                    external_ref: format!("direct-{i}"),
                    created_at: Utc::now(),
                    clock_event: None,
                    clock_started_at: None,
                },
            )
        })
        .collect();
    for chunk in rows.chunks(1000) {
        items::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (_, db, mut config) = database(&dir, "items").await;
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.outbox.dispatch = false;
    config.webhook_secret = Some(Secret::new(SECRET));
    let floor = direct(&db).await;

    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let signer = standardwebhooks::Webhook::new(SECRET).unwrap();
    let bodies: Vec<(String, Vec<u8>)> = (0..ITEMS / PER_EVENT)
        .map(|e| {
            let items: Vec<_> = (e * PER_EVENT..(e + 1) * PER_EVENT).map(item).collect();
            let body = serde_json::to_vec(&serde_json::json!({
                "type": "data.recorded_many",
                "occurred_at": Utc::now().to_rfc3339(),
                "data": {"items": items},
            }))
            .unwrap();
            (format!("msg_bench_{e}"), body)
        })
        .collect();
    let started = Instant::now();
    let answers: Vec<u16> = stream::iter(bodies)
        .map(|(id, body)| {
            let (client, base, signer) = (&client, &base, &signer);
            async move {
                let ts = Utc::now().timestamp();
                let signature = signer.sign(&id, ts, &body).unwrap();
                client
                    .post(format!("{base}/v1/hooks/events"))
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", signature)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(2)
        .collect()
        .await;
    let service = started.elapsed().as_secs_f64();
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");

    println!("bulk item registration on {}", engine());
    println!(
        "  direct inserts (floor): {ITEMS} items, {PEOPLE} people in {floor:.2} s ({:.0} items/s)",
        ITEMS as f64 / floor
    );
    println!(
        "  data.recorded_many:     {ITEMS} items in {service:.2} s ({:.0} items/s), {:.1}x the floor",
        ITEMS as f64 / service,
        service / floor
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
