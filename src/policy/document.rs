//! Policy documents as files: Markdown with a front matter block, and the canonical form whose
//! digest identifies a document's content.
//!
//! ```text
//! ---
//! key: privacy-policy
//! version: 2
//! jurisdiction: CN
//! language: zh-CN
//! authoritative: true
//! title: 隐私政策
//! effective_at: 2026-12-01T00:00:00Z
//! material: true
//! change_summary: "..."
//! ---
//! # Markdown body
//! ```
//!
//! The front matter is flat `name: value` lines; a value may be wrapped in double quotes (with
//! `\"` and `\\` escapes) to keep leading or trailing spaces or a `#`. Unknown names are errors,
//! so that a typo cannot silently drop a field.

use chrono::{DateTime, Utc};

use crate::{crypto, error::FieldError};

/// The fields of a document, however it arrived (file, admin API).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub key: String,
    pub version: i32,
    pub jurisdiction: String,
    pub language: String,
    pub authoritative: bool,
    pub title: String,
    pub effective_at: DateTime<Utc>,
    pub material: bool,
    pub change_summary: Option<String>,
    pub body: String,
}

impl Document {
    /// SHA-256 over the canonical JSON of every field, so that any change to what a person is
    /// shown, or to when and where it applies, changes the digest.
    pub fn content_sha256(&self) -> String {
        let canonical = serde_json::json!({
            "key": self.key,
            "version": self.version,
            "jurisdiction": self.jurisdiction,
            "language": self.language,
            "authoritative": self.authoritative,
            "title": self.title,
            "effective_at": crate::clock::canonical(self.effective_at),
            "material": self.material,
            "change_summary": self.change_summary,
            "body": self.body,
        });
        crypto::sha256_hex(crypto::canonical_json(&canonical).as_bytes())
    }

    /// Checks the rules a document must meet wherever it comes from.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if !is_key(&self.key) {
            errors.push(FieldError::new(
                "key",
                "1-64 characters from a-z, 0-9, `-` and `_`",
            ));
        }
        if self.version < 1 {
            errors.push(FieldError::new("version", "must be 1 or more"));
        }
        if !is_jurisdiction(&self.jurisdiction) {
            errors.push(FieldError::new(
                "jurisdiction",
                "an upper-case ISO 3166-1 alpha-2 code, or `*`",
            ));
        }
        if !is_language(&self.language) {
            errors.push(FieldError::new(
                "language",
                "a language tag such as `en` or `zh-CN`",
            ));
        }
        if self.title.trim().is_empty() || self.title.len() > 300 {
            errors.push(FieldError::new("title", "1-300 characters"));
        }
        if self.body.trim().is_empty() {
            errors.push(FieldError::new("body", "must not be empty"));
        }
        if self.material
            && self
                .change_summary
                .as_deref()
                .is_none_or(|s| s.trim().is_empty())
        {
            errors.push(FieldError::new(
                "change_summary",
                "a material change must say what changed (PIPL Art 17)",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// `a-z0-9-_`, 1 to 64 characters: policy and purpose keys.
pub fn is_key(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `*` or two upper-case ASCII letters.
pub fn is_jurisdiction(s: &str) -> bool {
    s == "*" || (s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()))
}

/// A plausible BCP 47 tag: letters and digits in hyphen-separated parts, at most 16 characters.
pub fn is_language(s: &str) -> bool {
    (2..=16).contains(&s.len())
        && s.split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
        && s.as_bytes()[0].is_ascii_lowercase()
}

/// Parses a Markdown file with front matter.
pub fn parse(text: &str) -> Result<Document, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or("the file must start with a `---` front matter line")?;
    let (front, body) = split_front_matter(rest).ok_or("the front matter has no closing `---`")?;

    let mut fields = std::collections::BTreeMap::new();
    for (n, line) in front.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("front matter line {}: expected `name: value`", n + 2))?;
        let value = unquote(value.trim()).map_err(|e| format!("front matter `{name}`: {e}"))?;
        if fields.insert(name.trim().to_string(), value).is_some() {
            return Err(format!("front matter `{}` is given twice", name.trim()));
        }
    }
    let mut take = |name: &str| fields.remove(name);
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| format!("front matter `{name}` is missing"))
    };
    let flag = |value: Option<String>, name: &str| match value.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!(
            "front matter `{name}`: `{other}` is not true or false"
        )),
    };
    let key = required(take("key"), "key")?;
    let version = required(take("version"), "version")?
        .parse::<i32>()
        .map_err(|_| "front matter `version` must be a whole number".to_string())?;
    let jurisdiction = take("jurisdiction").unwrap_or_else(|| "*".into());
    let language = required(take("language"), "language")?;
    let authoritative = flag(take("authoritative"), "authoritative")?;
    let title = required(take("title"), "title")?;
    let effective_at = required(take("effective_at"), "effective_at")?;
    let effective_at = DateTime::parse_from_rfc3339(&effective_at)
        .map_err(|e| format!("front matter `effective_at` is not an RFC 3339 time: {e}"))?
        .with_timezone(&Utc);
    let material = flag(take("material"), "material")?;
    let change_summary = take("change_summary").filter(|s| !s.is_empty());
    if let Some(unknown) = fields.keys().next() {
        return Err(format!("front matter `{unknown}` is not a known field"));
    }
    Ok(Document {
        key,
        version,
        jurisdiction,
        language,
        authoritative,
        title,
        effective_at: crate::clock::truncate(effective_at),
        material,
        change_summary,
        body: body.trim_start_matches(['\r', '\n']).to_string(),
    })
}

/// Splits at the first line that is exactly `---`.
fn split_front_matter(rest: &str) -> Option<(&str, &str)> {
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or("an opening quote is never closed")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("unknown escape `\\{}`", other.unwrap_or(' '))),
            },
            '"' => return Err("a quote inside a quoted value must be escaped".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "---\nkey: privacy-policy\nversion: 2\njurisdiction: CN\nlanguage: zh-CN\nauthoritative: true\ntitle: \"隐私政策: 第二版\"\neffective_at: 2026-12-01T00:00:00Z\nmaterial: true\nchange_summary: 新增云端训练\n---\n\n# 隐私政策\n\n正文。\n";

    #[test]
    fn front_matter_and_body_are_read() {
        let doc = parse(SAMPLE).unwrap();
        assert_eq!(doc.key, "privacy-policy");
        assert_eq!(doc.version, 2);
        assert_eq!(doc.jurisdiction, "CN");
        assert!(doc.authoritative && doc.material);
        assert_eq!(doc.title, "隐私政策: 第二版");
        assert_eq!(doc.body, "# 隐私政策\n\n正文。\n");
        assert!(doc.validate().is_ok());
    }

    #[test]
    fn any_change_changes_the_digest() {
        let doc = parse(SAMPLE).unwrap();
        let mut other = doc.clone();
        other.body.push('.');
        assert_ne!(doc.content_sha256(), other.content_sha256());
        let mut other = doc.clone();
        other.effective_at += chrono::TimeDelta::seconds(1);
        assert_ne!(doc.content_sha256(), other.content_sha256());
        assert_eq!(
            doc.content_sha256(),
            parse(SAMPLE).unwrap().content_sha256()
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = parse(&SAMPLE.replace("material: true", "materail: true")).unwrap_err();
        assert!(err.contains("materail"), "{err}");
        let err = parse(&SAMPLE.replace("version: 2", "version: two")).unwrap_err();
        assert!(err.contains("version"), "{err}");
        assert!(parse("# no front matter").is_err());
        let doc = parse(&SAMPLE.replace("change_summary: 新增云端训练\n", "")).unwrap();
        assert_eq!(doc.validate().unwrap_err()[0].field, "change_summary");
    }
}
