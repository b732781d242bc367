//! Every email template, rendered from one sample of each email in every language: each renders,
//! escapes the data in HTML, and in Chinese reads as Chinese.

use chrono::{NaiveDate, TimeZone, Utc};
use consentry::notify::{
    email::{
        CategoryCount, EmailContent, NoticeLine, PurposeLine, RequestLine, SystemLine,
        SystemOutcome,
    },
    templates::{EMAILS, LANGUAGES, Rendered, Templates},
};
use serde_json::Value;

use crate::{
    support::repo_path,
    words::{foreign_words, readable_text},
};

fn templates() -> Templates {
    Templates::load(&repo_path("templates")).expect("the shipped templates load")
}

/// One sample of every email, each with a value that must appear in the body.
pub(crate) fn samples() -> Vec<(EmailContent, &'static str)> {
    let day = NaiveDate::from_ymd_opt(2026, 12, 24).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 12, 31, 9, 30, 0).unwrap();
    vec![
        (
            EmailContent::VerificationCode {
                code: "482913".into(),
                request_type: "access".into(),
                expires_in_minutes: 15,
            },
            "482913",
        ),
        (
            EmailContent::RequestReceived {
                request_id: "req-7f3a".into(),
                request_type: "export".into(),
                law: "gdpr".into(),
                law_applies: true,
                due_date: day,
            },
            "2026-12-24",
        ),
        (
            EmailContent::RequestExtended {
                request_id: "req-7f3a".into(),
                request_type: "export".into(),
                reason: "many archived images".into(),
                new_due_date: day,
                law_applies: true,
            },
            "many archived images",
        ),
        (
            EmailContent::MinorErasure {
                request_id: "req-kid".into(),
                to_guardian: true,
                due_date: day,
            },
            "REQ-KID",
        ),
        (
            EmailContent::RequestCompleted {
                request_id: "req-7f3a".into(),
                request_type: "erase".into(),
                outcome: "restricted".into(),
                note: Some("tax records are kept until 2030".into()),
                erased: vec![CategoryCount {
                    category: "training_data".into(),
                    count: 2,
                }],
                systems: vec![
                    SystemOutcome {
                        name: "Image storage".into(),
                        status: "job_done".into(),
                        note: None,
                    },
                    SystemOutcome {
                        name: "Billing".into(),
                        status: "job_restricted".into(),
                        note: Some("invoices are kept ten years".into()),
                    },
                ],
            },
            "invoices are kept ten years",
        ),
        (
            EmailContent::RequestRejected {
                request_id: "req-7f3a".into(),
                request_type: "erase".into(),
                reason: "identity could not be confirmed".into(),
                remedies: consentry::law::remedies(consentry::request::Law::Pipl, true, "en")
                    .into(),
            },
            "identity could not be confirmed",
        ),
        (
            EmailContent::ExportReady {
                request_id: "req-7f3a".into(),
                download_url: "https://privacy.example.com/export/abc".into(),
                expires_at: at,
            },
            "https://privacy.example.com/export/abc",
        ),
        (
            EmailContent::PolicyChanged {
                policy_title: "Privacy Policy".into(),
                version: 2,
                effective_at: at,
                change_summary: "Images may now train our models <only with consent>".into(),
                policy_url: "https://privacy.example.com/policy".into(),
                diff_url: "https://privacy.example.com/policy/diff".into(),
                shown_in: Some("en".into()),
            },
            "Images may now train our models",
        ),
        (
            EmailContent::GuardianConsent {
                service: "Lumora".into(),
                child: Some("Mia".into()),
                confirm_url: "https://privacy.example.com/guardian/xyz".into(),
                expires_at: at,
                purposes: vec![PurposeLine {
                    title: "Photo tagging".into(),
                    description: "Suggest tags for uploaded photos".into(),
                }],
            },
            "Photo tagging",
        ),
        (
            EmailContent::GuardianConfirmed {
                service: "Lumora".into(),
                child: None,
                manage_url: "https://privacy.example.com/guardian/choices?token=abc".into(),
                expires_at: at,
                contact: "privacy@lumora.example".into(),
            },
            "https://privacy.example.com/guardian/choices?token=abc",
        ),
        (
            EmailContent::RetentionNotice {
                purge_date: day,
                items: vec![NoticeLine {
                    category: "generated_images".into(),
                    count: 12,
                    on: day,
                }],
            },
            "generated_images",
        ),
        (
            EmailContent::RetentionPurged {
                purged_on: day,
                items: vec![CategoryCount {
                    category: "server_logs".into(),
                    count: 3,
                }],
            },
            "server_logs",
        ),
        (
            EmailContent::AdminDigest {
                generated_at: at,
                overdue: vec![RequestLine {
                    request_id: "req-overdue".into(),
                    request_type: "access".into(),
                    due_date: day,
                    who: "user-42".into(),
                }],
                due_soon: vec![],
                dead_letters: 4,
                purge_summary: Some("1,204 items purged".into()),
                overdue_systems: vec![SystemLine {
                    name: "Training cluster".into(),
                    jobs: 2,
                }],
            },
            "Training cluster",
        ),
        (
            EmailContent::RestrictionLifted {
                request_id: "req-7f3a".into(),
                lift_date: day,
                reason: "the accuracy of the data has been verified".into(),
            },
            "the accuracy of the data has been verified",
        ),
    ]
}

#[test]
fn every_template_renders_in_every_language() {
    let templates = templates();
    let samples = samples();
    assert_eq!(samples.len(), EMAILS.len(), "one sample per template");
    for (content, must_contain) in samples {
        let payload = serde_json::to_value(&content).unwrap();
        for lang in LANGUAGES {
            let r = templates
                .render(content.template(), lang, &payload["data"])
                .unwrap_or_else(|e| panic!("{} {lang}: {e}", content.template()));
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'));
            assert!(
                r.text.contains(must_contain),
                "{} {lang} txt",
                content.template()
            );
            assert!(
                r.html.contains("<html"),
                "{} {lang} html",
                content.template()
            );
        }
    }
}

#[test]
fn chinese_templates_are_in_chinese() {
    let templates = templates();
    let (content, _) = samples().remove(0);
    let payload = serde_json::to_value(&content).unwrap();
    let zh = templates
        .render(content.template(), "zh-CN", &payload["data"])
        .unwrap();
    let en = templates
        .render(content.template(), "en", &payload["data"])
        .unwrap();
    assert_ne!(zh.subject, en.subject);
    assert!(
        zh.subject
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    );
}

#[test]
fn html_bodies_escape_data() {
    let templates = templates();
    let (content, _) = samples()
        .into_iter()
        .find(|(c, _)| c.template() == "policy_changed")
        .unwrap();
    let payload = serde_json::to_value(&content).unwrap();
    let r = templates
        .render(content.template(), "en", &payload["data"])
        .unwrap();
    assert!(r.html.contains("&lt;only with consent&gt;"));
    assert!(r.text.contains("<only with consent>"));
}

#[test]
fn every_email_reads_in_chinese_in_chinese() {
    let templates = templates();
    let words = consentry::words::Catalogue::load(&repo_path("templates")).unwrap();
    let mut found = Vec::new();
    for (content, _) in samples() {
        let payload = serde_json::to_value(&content).unwrap();
        let Rendered {
            subject,
            text,
            html,
        } = templates
            .render(content.template(), "zh-CN", &payload["data"])
            .unwrap();
        // What the data says in its own words (a reason, a title, a link, a category's key) is
        // the data's; a code the catalogue has words for must be shown in those words.
        let mut data = Vec::new();
        collect_text(&payload["data"], &mut data);
        data.retain(|t| words.codes().all(|code| code != t));
        data.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for (part, body) in [
            ("subject", subject),
            ("text", text),
            ("html", readable_text(&html)),
        ] {
            let own = data
                .iter()
                .fold(body, |body, t| body.replace(t.as_str(), " "));
            found.extend(
                foreign_words(&own)
                    .into_iter()
                    .map(|f| format!("{} {part}: {f}", content.template())),
            );
        }
    }
    assert!(found.is_empty(), "in Chinese emails:\n{}", found.join("\n"));
}

fn collect_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(fields) => fields.values().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}
