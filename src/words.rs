//! The catalogue of words: `templates/messages.json`, one entry per key with an English and a
//! Simplified Chinese text. Pages and emails both read it, so a status, a request type, a channel
//! or an actor has one name per language wherever a person or an officer meets it. Codes the
//! service stores (`erase`, `granted`, `main_app`) have their words under `term.<code>`.
//!
//! It is loaded and checked at start-up: an entry missing a language stops the service, not a
//! reader.

use std::{collections::BTreeMap, path::Path, sync::Arc};

/// Why a template or the catalogue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {path} is missing")]
    Missing { path: String },
    #[error("template {path} does not compile: {message}")]
    Broken { path: String, message: String },
    #[error("rendering {name}: {message}")]
    Render { name: String, message: String },
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

/// The prefix of a stored code's words.
const TERM: &str = "term.";

/// `key → (English, Simplified Chinese)`.
#[derive(Debug)]
pub struct Catalogue {
    messages: BTreeMap<String, (String, String)>,
}

impl Catalogue {
    /// Reads `messages.json` from the templates folder `dir`.
    pub fn load(dir: &Path) -> Result<Arc<Self>, TemplateError> {
        let path = dir.join("messages.json");
        let raw: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_str(&read(&path)?).map_err(|e| broken(&path, e))?;
        let messages = raw
            .into_iter()
            .map(
                |(key, mut texts)| match (texts.remove("en"), texts.remove("zh-CN")) {
                    (Some(en), Some(zh)) if texts.is_empty() => Ok((key, (en, zh))),
                    _ => Err(broken(
                        &path,
                        format!("`{key}` needs exactly an `en` and a `zh-CN` text"),
                    )),
                },
            )
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(Self { messages }))
    }

    /// The text of `key` in `language` (`en` or `zh-CN`), if the catalogue has it.
    pub fn get(&self, key: &str, language: &str) -> Option<&str> {
        self.messages
            .get(key)
            .map(|(en, zh)| if language == "zh-CN" { zh } else { en }.as_str())
    }

    /// The words for a stored code in `language`; the code itself when it has none (the
    /// Chinese words test fails on any that reaches a page or an email).
    pub fn term<'a>(&'a self, code: &'a str, language: &str) -> &'a str {
        self.get(&format!("{TERM}{code}"), language).unwrap_or(code)
    }

    /// Every code with words of its own.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().filter_map(|k| k.strip_prefix(TERM))
    }
}

/// `text` with each `{name}` replaced by its value.
pub fn fill(text: &str, args: &[(&str, &str)]) -> String {
    args.iter().fold(text.to_string(), |text, (name, value)| {
        text.replace(&format!("{{{name}}}"), value)
    })
}
