//! Email templates: Handlebars files loaded and compiled at start-up, so that a missing or broken
//! template stops the service before it runs rather than failing a delivery later.
//!
//! Each email has `templates/email/<name>.<lang>.{subject,txt,html}.hbs` for `<lang>` in
//! [`LANGUAGES`]. HTML bodies are escaped by default; subjects and plain-text bodies are not
//! (they are not HTML). The HTML layout lives in `templates/partials/layout.hbs`.

use std::path::Path;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, handlebars_helper,
};
use serde_json::Value;

/// Every template the service needs.
pub const EMAILS: &[&str] = &[
    "verification_code",
    "request_received",
    "request_extended",
    "minor_erasure",
    "request_completed",
    "request_rejected",
    "restriction_lifted",
    "export_ready",
    "policy_changed",
    "guardian_consent",
    "retention_notice",
    "retention_purged",
    "admin_digest",
];

/// Languages every template exists in; the first is the fallback.
pub const LANGUAGES: &[&str] = &["en", "zh-CN"];

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {path} is missing")]
    Missing { path: String },
    #[error("template {path} does not compile: {message}")]
    Broken { path: String, message: String },
    #[error("rendering {name}: {message}")]
    Render { name: String, message: String },
}

/// The compiled templates.
pub struct Templates {
    html: Handlebars<'static>,
    text: Handlebars<'static>,
}

handlebars_helper!(date: |value: str| {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| value.to_string())
});

/// `{{term code}}`: the words for a code in the email's language (see [`super::terms`]).
struct Term;

impl HelperDef for Term {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let code = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .unwrap_or_default();
        let language = ctx.data()[LANGUAGE_KEY].as_str().unwrap_or("en");
        out.write(super::terms::display(code, language))?;
        Ok(())
    }
}

/// Where [`Templates::render`] tells the templates their language.
const LANGUAGE_KEY: &str = "_language";

impl Templates {
    /// Loads and compiles every template under `dir`; fails on the first missing or broken one.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let mut html = Handlebars::new();
        let mut text = Handlebars::new();
        text.register_escape_fn(handlebars::no_escape);
        for registry in [&mut html, &mut text] {
            registry.set_strict_mode(true);
            registry.register_helper("date", Box::new(date));
            registry.register_helper("term", Box::new(Term));
        }
        let layout = dir.join("partials").join("layout.hbs");
        html.register_partial("layout", read(&layout)?)
            .map_err(|e| broken(&layout, e))?;
        for name in EMAILS {
            for lang in LANGUAGES {
                for part in ["subject", "txt", "html"] {
                    let path = dir.join("email").join(format!("{name}.{lang}.{part}.hbs"));
                    let source = read(&path)?;
                    let registry = if part == "html" { &mut html } else { &mut text };
                    registry
                        .register_template_string(&format!("{name}.{lang}.{part}"), source)
                        .map_err(|e| broken(&path, e))?;
                }
            }
        }
        Ok(Self { html, text })
    }

    /// Renders `name` in the language that fits `locale`, with `data`.
    pub fn render(
        &self,
        name: &str,
        locale: &str,
        data: &Value,
    ) -> Result<Rendered, TemplateError> {
        let lang = language_for(locale);
        let mut data = data.clone();
        if let Some(fields) = data.as_object_mut() {
            fields.insert(LANGUAGE_KEY.into(), lang.into());
        }
        let render = |registry: &Handlebars<'static>, part: &str| {
            registry
                .render(&format!("{name}.{lang}.{part}"), &data)
                .map_err(|e| TemplateError::Render {
                    name: format!("{name}.{lang}.{part}"),
                    message: e.to_string(),
                })
        };
        let subject = render(&self.text, "subject")?;
        Ok(Rendered {
            // A header is one line: fold whatever the template produced.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render(&self.text, "txt")?,
            html: render(&self.html, "html")?,
        })
    }
}

/// The template language for a BCP 47 locale: Simplified Chinese for `zh`, `zh-CN`, `zh-SG` and
/// `zh-Hans*`; English for everything else, including Traditional Chinese, which has no
/// templates of its own yet.
pub fn language_for(locale: &str) -> &'static str {
    let normalised = locale.trim().replace('_', "-").to_ascii_lowercase();
    let simplified = normalised == "zh"
        || normalised.starts_with("zh-cn")
        || normalised.starts_with("zh-sg")
        || normalised.starts_with("zh-hans");
    if simplified { "zh-CN" } else { "en" }
}

pub(crate) fn read(path: &Path) -> Result<String, TemplateError> {
    std::fs::read_to_string(path).map_err(|_| TemplateError::Missing {
        path: path.display().to_string(),
    })
}

pub(crate) fn broken(path: &Path, e: impl std::fmt::Display) -> TemplateError {
    TemplateError::Broken {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};

    use super::*;
    use crate::notify::email::{CategoryCount, EmailContent, NoticeLine, PurposeLine, RequestLine};

    fn templates() -> Templates {
        Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"))
            .expect("the shipped templates load")
    }

    /// One sample of every email, each with a value that must appear in the body.
    fn samples() -> Vec<(EmailContent, &'static str)> {
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
                "req-kid",
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
                },
                "tax records are kept until 2030",
            ),
            (
                EmailContent::RequestRejected {
                    request_id: "req-7f3a".into(),
                    request_type: "erase".into(),
                    reason: "identity could not be confirmed".into(),
                    remedies: crate::law::remedies(crate::request::Law::Pipl, true, "en").into(),
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
                },
                "req-overdue",
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
    fn chinese_emails_show_no_api_word() {
        let templates = templates();
        for (content, _) in samples() {
            let payload = serde_json::to_value(&content).unwrap();
            let zh = templates
                .render(content.template(), "zh-CN", &payload["data"])
                .unwrap();
            let en = templates
                .render(content.template(), "en", &payload["data"])
                .unwrap();
            // What the data says in its own words (a reason, a summary) is not the template's.
            let mut free_text = Vec::new();
            collect_text(&payload["data"], &mut free_text);
            let strip = |text: &str| {
                free_text
                    .iter()
                    .filter(|t| crate::notify::terms::codes().all(|c| c != t.as_str()))
                    .fold(text.replace("&lt;", "<").replace("&gt;", ">"), |acc, t| {
                        acc.replace(t.as_str(), "")
                    })
            };
            let zh = Rendered {
                subject: strip(&zh.subject),
                text: strip(&zh.text),
                html: strip(&zh.html),
            };
            for code in crate::notify::terms::codes() {
                for (lang, r) in [("zh-CN", &zh), ("en", &en)] {
                    // Links are addresses, not words a person reads.
                    let words = |text: &str| {
                        text.split_whitespace()
                            .filter(|t| !t.contains("://"))
                            .flat_map(|t| {
                                t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            })
                            .any(|w| w == code)
                    };
                    if lang == "zh-CN" {
                        assert!(
                            !words(&r.subject) && !words(&r.text) && !words(&r.html),
                            "{} {lang} shows `{code}`:\n{}\n{}",
                            content.template(),
                            r.subject,
                            r.text
                        );
                    }
                }
            }
            assert!(
                !en.text.contains(" erase request") && !en.subject.contains(" erase "),
                "{}",
                en.text
            );
        }
    }

    fn collect_text(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
            Value::Object(fields) => fields.values().for_each(|v| collect_text(v, out)),
            _ => {}
        }
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
    fn locales_pick_a_language_with_english_as_fallback() {
        assert_eq!(language_for("zh-CN"), "zh-CN");
        assert_eq!(language_for("zh_cn"), "zh-CN");
        assert_eq!(language_for("zh-Hans-CN"), "zh-CN");
        assert_eq!(language_for("zh"), "zh-CN");
        assert_eq!(language_for("zh-TW"), "en");
        assert_eq!(language_for("de-DE"), "en");
        assert_eq!(language_for(""), "en");
    }

    #[test]
    fn a_missing_template_is_reported_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let err = Templates::load(dir.path()).err().expect("an error");
        assert!(matches!(err, TemplateError::Missing { .. }));
    }
}
