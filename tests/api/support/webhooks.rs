//! A webhook receiver for tests: an HTTP endpoint that checks Standard Webhooks signatures.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use poem::{Request, Response, Server, http::StatusCode, listener::TcpAcceptor};
use serde_json::Value;
use tokio::sync::oneshot;

use super::WEBHOOK_SECRET;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct ReceivedHook {
    pub id: String,
    pub body: Value,
    pub signature_valid: bool,
}

/// An HTTP endpoint for outgoing webhooks: answers 500 to the first `failures` requests, then
/// 200, and records every request with whether its signature verified.
pub struct WebhookReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<ReceivedHook>>>,
    failures: Arc<AtomicUsize>,
    _stop: oneshot::Sender<()>,
}

impl WebhookReceiver {
    pub async fn start(failures: usize) -> Self {
        Self::start_signed_by(WEBHOOK_SECRET, failures).await
    }

    /// Like [`Self::start`], for a registered system that signs with its own `secret`.
    pub async fn start_signed_by(secret: &str, failures: usize) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(failures));
        let verifier = Arc::new(standardwebhooks::Webhook::new(secret).unwrap());
        let (log, left) = (received.clone(), failures.clone());
        let endpoint = poem::endpoint::make(move |mut req: Request| {
            let (log, left, verifier) = (log.clone(), left.clone(), verifier.clone());
            async move {
                let body = req.take_body().into_bytes().await.unwrap_or_default();
                let signature_valid = verifier.verify(&body, req.headers()).is_ok();
                log.lock().unwrap().push(ReceivedHook {
                    id: req
                        .headers()
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    signature_valid,
                });
                let failing = left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let status = if failing {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                Response::builder().status(status).finish()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap())
                .run_with_graceful_shutdown(
                    endpoint,
                    async {
                        let _ = stopped.await;
                    },
                    None,
                ),
        );
        Self {
            url,
            received,
            failures,
            _stop: stop,
        }
    }

    pub fn received(&self) -> Vec<ReceivedHook> {
        self.received.lock().unwrap().clone()
    }

    /// From now on, answer 500 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.failures.store(n, Ordering::SeqCst);
    }
}
