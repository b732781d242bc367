//! The fixture most tests start from: the service with a real SMTP server and a main app that
//! receives webhooks, and the calls they make again and again.

use chrono::{NaiveDate, Utc};
use consentry::{auth::Role, config::Config};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{
    ReceivedMail, SmtpSink, TestApp, WebhookReceiver, json, spawn_app_with, subject_token,
};

/// An app with a real SMTP server and a main app that receives webhooks.
pub(crate) struct Fixture {
    pub(crate) app: TestApp,
    pub(crate) sink: SmtpSink,
    pub(crate) main_app: WebhookReceiver,
    pub(crate) reviewer: String,
    pub(crate) service: String,
}

pub(crate) async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

/// Like [`fixture`], with a chance to change the configuration first.
pub(crate) async fn fixture_with(customize: impl FnOnce(&mut Config)) -> Fixture {
    let sink = SmtpSink::start().await;
    let main_app = WebhookReceiver::start(0).await;
    let (smtp, hooks) = (sink.url(), main_app.url.clone());
    let app = spawn_app_with(move |c| {
        c.smtp_url = Some(consentry::config::Secret::new(smtp));
        c.mail.tls = Some(consentry::config::SmtpTls::None);
        c.webhooks.url = Some(hooks);
        customize(c);
    })
    .await;
    let reviewer = app.key(Role::Reviewer).await;
    let service = app.key(Role::Service).await;
    Fixture {
        app,
        sink,
        main_app,
        reviewer,
        service,
    }
}

impl Fixture {
    pub(crate) async fn drain(&self) {
        self.app
            .state
            .dispatcher
            .drain_once(Utc::now())
            .await
            .unwrap();
    }

    pub(crate) async fn file(&self, who: &str, body: Value) -> reqwest::Response {
        self.app
            .post("/v1/me/requests")
            .bearer_auth(subject_token(who))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn decide(
        &self,
        key: &str,
        id: &str,
        action: &str,
        body: Value,
    ) -> reqwest::Response {
        self.app
            .post(&format!("/v1/admin/requests/{id}/{action}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Files a request without a login (`POST /v1/requests`).
    pub(crate) async fn file_by_email(&self, body: Value) -> reqwest::Response {
        self.app
            .post("/v1/requests")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A request as reviewers see it, with its history.
    pub(crate) async fn admin_request(&self, id: &str) -> Value {
        self.app
            .read(&format!("/v1/admin/requests/{id}"), &self.reviewer)
            .await
    }

    /// The person grants a purpose in the portal.
    pub(crate) async fn grant(&self, who: &str, purpose: &str) {
        json(
            self.app
                .request(reqwest::Method::PUT, &format!("/v1/me/consents/{purpose}"))
                .bearer_auth(subject_token(who))
                .json(&json!({"granted": true, "policy_version": 2}))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
    }

    /// The main app's consent check.
    pub(crate) async fn check(&self, who: &str, purpose: &str) -> Value {
        self.app
            .read(
                &format!("/v1/subjects/{who}/consents/{purpose}"),
                &self.service,
            )
            .await
    }

    pub(crate) async fn complete_job(&self, job: &str, body: Value) -> reqwest::Response {
        self.app
            .post(&format!("/v1/fulfilments/{job}/complete"))
            .bearer_auth(&self.service)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A reviewer approves the request and the main app reports its job done with `report`.
    pub(crate) async fn approve_and_fulfil(&self, id: &str, report: Value) {
        json(
            self.decide(&self.reviewer, id, "approve", json!({})).await,
            StatusCode::OK,
        )
        .await;
        self.drain().await;
        let job = self.job_for(id);
        json(
            self.complete_job(job["fulfilment_id"].as_str().unwrap(), report)
                .await,
            StatusCode::OK,
        )
        .await;
    }

    /// The `fulfilment.requested` job the main app received for a request.
    pub(crate) fn job_for(&self, request_id: &str) -> Value {
        self.main_app
            .received()
            .into_iter()
            .find(|h| h.body["data"]["request_id"] == request_id)
            .map(|h| {
                assert!(h.signature_valid, "jobs are signed");
                assert_eq!(h.body["type"], "fulfilment.requested");
                h.body["data"].clone()
            })
            .expect("a job was sent")
    }

    /// The signed-in person `who` downloads the package of request `id` with the token of
    /// the "export ready" email `ready`.
    pub(crate) async fn download(&self, who: &str, id: &str, ready: &ReceivedMail) -> Vec<u8> {
        self.app
            .get(&format!(
                "/v1/me/requests/{id}/export?token={}",
                token_in(ready)
            ))
            .bearer_auth(subject_token(who))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    pub(crate) async fn mail_to(&self, to: &str, n: usize) -> Vec<ReceivedMail> {
        self.sink
            .wait_for(n)
            .await
            .into_iter()
            .filter(|m| m.to.contains(to))
            .collect()
    }
}

pub(crate) fn date(value: &Value) -> NaiveDate {
    value.as_str().unwrap().parse().unwrap()
}

/// The value of `token=` in a mail's text.
pub(crate) fn token_in(mail: &ReceivedMail) -> String {
    let start = mail.text.find("token=").expect("a link with a token") + "token=".len();
    mail.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The 6-digit code in a verification mail.
pub(crate) fn code_in(mail: &ReceivedMail) -> String {
    let digits: Vec<&str> = mail
        .text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 6)
        .collect();
    digits.first().expect("a 6-digit code").to_string()
}
