//! Email templates: Handlebars files loaded and compiled at start-up, so that a missing or broken
//! template stops the service before it runs rather than failing a delivery later.
//!
//! Each email has `templates/email/<name>.<lang>.{subject,txt,html}.hbs` for `<lang>` in
//! [`LANGUAGES`]. HTML bodies are escaped by default; subjects and plain-text bodies are not
//! (they are not HTML). The HTML layout lives in `templates/partials/layout.hbs`.

use std::{path::Path, sync::Arc};

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, handlebars_helper,
};
use serde_json::Value;

pub use crate::words::TemplateError;
use crate::words::{Catalogue, broken, read};

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
    "guardian_confirmed",
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

handlebars_helper!(reference: |id: str| crate::vocab::reference(id));

/// `{{term code}}`: the catalogue's words for a stored code in the email's language.
struct Term(Arc<Catalogue>);

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
        out.write(self.0.term(code, language))?;
        Ok(())
    }
}

/// Where [`Templates::render`] tells the templates their language.
const LANGUAGE_KEY: &str = "_language";

impl Templates {
    /// Loads and compiles every template under `dir`, and the catalogue of words; fails on the
    /// first missing or broken one.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let words = Catalogue::load(dir)?;
        let mut html = Handlebars::new();
        let mut text = Handlebars::new();
        text.register_escape_fn(handlebars::no_escape);
        for registry in [&mut html, &mut text] {
            registry.set_strict_mode(true);
            registry.register_helper("date", Box::new(date));
            registry.register_helper("term", Box::new(Term(words.clone())));
            registry.register_helper("ref", Box::new(reference));
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

#[cfg(test)]
mod tests {
    use super::*;

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
