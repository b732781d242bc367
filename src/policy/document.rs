//! Policy documents as files: Markdown with a front matter block, and the canonical form whose
//! digest identifies a document's content.
//!
//! ```text
//! +++
//! key = "privacy-policy"
//! version = 2
//! jurisdiction = "CN"
//! language = "zh-CN"
//! authoritative = true
//! title = "隐私政策"
//! effective_at = 2026-12-01T00:00:00Z
//! material = true
//! change_summary = "..."
//! +++
//! # Markdown body
//! ```
//!
//! The front matter is TOML between `+++` lines (the convention of Hugo and Zola), read by the
//! `toml` crate into a struct that refuses unknown fields, so that a typo cannot silently drop a
//! field.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{crypto, error::FieldError, vocab::is_key};

/// The largest body a document may have: ten times a long privacy policy, and a bound on what a
/// diff of two versions may cost.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

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
        if !crate::vocab::is_policy_scope(&self.jurisdiction) {
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
        } else if self.body.len() > MAX_BODY_BYTES {
            errors.push(FieldError::new("body", "at most 256 KiB"));
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

/// A plausible BCP 47 tag: letters and digits in hyphen-separated parts, at most 16 characters.
pub fn is_language(s: &str) -> bool {
    (2..=16).contains(&s.len())
        && s.split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()))
        && s.as_bytes()[0].is_ascii_lowercase()
}

/// The front matter as written, before the rules of [`Document::validate`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    key: String,
    version: i32,
    #[serde(default = "everywhere")]
    jurisdiction: String,
    language: String,
    #[serde(default)]
    authoritative: bool,
    title: String,
    effective_at: toml::value::Datetime,
    #[serde(default)]
    material: bool,
    change_summary: Option<String>,
}

fn everywhere() -> String {
    "*".into()
}

const FENCE: &str = "+++";

/// Parses a Markdown file with TOML front matter between `+++` lines.
pub fn parse(text: &str) -> Result<Document, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let opening = lines.next().unwrap_or_default().trim_end();
    if opening != FENCE {
        return Err(if opening == "---" {
            "the front matter is TOML between `+++` lines, not `---`".into()
        } else {
            "the file must start with a `+++` front matter line".into()
        });
    }
    let front_start = text.find('\n').map_or(text.len(), |n| n + 1);
    let mut offset = front_start;
    let (front, body) = loop {
        let line = lines
            .next()
            .ok_or("the front matter has no closing `+++`")?;
        if line.trim_end() == FENCE {
            break (&text[front_start..offset], &text[offset + line.len()..]);
        }
        offset += line.len();
    };
    let front: FrontMatter =
        toml::from_str(front).map_err(|e| format!("front matter: {}", e.message()))?;
    let effective_at = DateTime::parse_from_rfc3339(&front.effective_at.to_string())
        .map_err(|_| {
            "front matter `effective_at` needs a date, a time and an offset, e.g. 2026-10-01T00:00:00Z"
                .to_string()
        })?
        .with_timezone(&Utc);
    Ok(Document {
        key: front.key,
        version: front.version,
        jurisdiction: front.jurisdiction,
        language: front.language,
        authoritative: front.authoritative,
        title: front.title,
        effective_at: crate::clock::truncate(effective_at),
        material: front.material,
        change_summary: front.change_summary.filter(|s| !s.is_empty()),
        body: body.trim_start_matches(['\r', '\n']).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "+++\nkey = \"privacy-policy\"\nversion = 2\njurisdiction = \"CN\" # mainland China\nlanguage = \"zh-CN\"\nauthoritative = true\ntitle = \"隐私政策: 第二版\"\neffective_at = 2026-12-01T00:00:00Z\nmaterial = true\nchange_summary = \"新增云端训练\"\n+++\n\n# 隐私政策\n\n正文。\n";

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
        let err = parse(&SAMPLE.replace("material = true", "materail = true")).unwrap_err();
        assert!(err.contains("materail"), "{err}");
        let err = parse(&SAMPLE.replace("version = 2", "version = \"two\"")).unwrap_err();
        assert!(err.contains("i32") || err.contains("integer"), "{err}");
        let err = parse(&SAMPLE.replace("T00:00:00Z", "")).unwrap_err();
        assert!(err.contains("effective_at"), "{err}");
        let err = parse(&SAMPLE.replace("+++", "---")).unwrap_err();
        assert!(err.contains("`+++`"), "{err}");
        assert!(parse("# no front matter").is_err());
        assert!(parse("+++\nkey = \"a\"\n").unwrap_err().contains("closing"));
        let doc = parse(&SAMPLE.replace("change_summary = \"新增云端训练\"\n", "")).unwrap();
        assert_eq!(doc.validate().unwrap_err()[0].field, "change_summary");
    }

    /// The example a reader copies from the README parses as it stands, comments and all.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```markdown\n+++")
            .expect("the README shows a policy document");
        let block = &readme[start + "```markdown\n".len()..];
        let block = &block[..block.find("```").expect("the example ends")];
        let doc = parse(block).unwrap();
        assert_eq!((doc.key.as_str(), doc.version), ("privacy-policy", 2));
        assert!(doc.material && doc.authoritative);
        assert!(doc.validate().is_ok(), "{:?}", doc.validate());
    }
}
