//! Importing policy documents from a folder (`policies/` at start-up, or
//! `consentry policies import [dir]`).
//!
//! Import is idempotent by content hash: a document already present with the same digest is
//! left alone, a new one is published, and a changed document under a version that is already
//! published is refused, because published versions are immutable. Every file is read and
//! checked before anything is written, and all documents are written in one transaction, so a
//! folder is imported whole or not at all.

use std::path::Path;

use serde_json::json;

use super::{Document, PolicyError, PolicyStatus, document, ensure_newer, find_document};
use crate::{
    audit::{self, Actor, Target},
    db::Db,
};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Documents published by this import, as `key v<version> <jurisdiction>/<language>`.
    pub published: Vec<String>,
    /// Documents already present with the same content.
    pub unchanged: usize,
}

/// Imports every `*.md` file of `dir` (a missing folder imports nothing).
/// Re-consent for what it published is the caller's next step
/// ([`crate::actions::policies::import`] does both).
pub async fn import_dir(db: &Db, dir: &Path, actor: &Actor) -> Result<ImportReport, PolicyError> {
    let mut docs = read_dir(dir)?;
    docs.sort_by(|a, b| (&a.key, a.version).cmp(&(&b.key, b.version)));
    import_documents(db, docs, actor).await
}

fn read_dir(dir: &Path) -> Result<Vec<Document>, PolicyError> {
    let file_error = |path: &Path, message: String| PolicyError::File {
        file: path.display().to_string(),
        message,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(file_error(dir, e.to_string())),
    };
    let mut paths = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect::<Vec<_>>();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| file_error(path, e.to_string()))?;
            let doc = document::parse(&text).map_err(|m| file_error(path, m))?;
            doc.validate().map_err(|errors| {
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                file_error(path, detail)
            })?;
            Ok(doc)
        })
        .collect()
}

/// Publishes the documents that are new, in order, in one transaction.
pub async fn import_documents(
    db: &Db,
    docs: Vec<Document>,
    actor: &Actor,
) -> Result<ImportReport, PolicyError> {
    let mut report = ImportReport::default();
    let txn = db.begin().await?;
    for doc in docs {
        let digest = doc.content_sha256();
        if let Some(existing) = find_document(&txn, &doc).await? {
            if existing.content_sha256 == digest {
                report.unchanged += 1;
                continue;
            }
            if existing.status != PolicyStatus::Draft {
                return Err(PolicyError::Immutable {
                    key: doc.key,
                    version: doc.version,
                    jurisdiction: doc.jurisdiction,
                    language: doc.language,
                });
            }
            return Err(PolicyError::File {
                file: format!("{} v{}", doc.key, doc.version),
                message: "a draft with this identity exists; publish or edit it instead".into(),
            });
        }
        ensure_newer(&txn, &doc).await?;
        let policy = super::insert(&txn, &doc, PolicyStatus::Published).await?;
        audit::record(
            &txn,
            actor,
            "policy.imported",
            Target::new("policy", &policy.id),
            json!({"key": policy.key, "version": policy.version,
                   "jurisdiction": policy.jurisdiction, "language": policy.language,
                   "material": policy.material, "content_sha256": policy.content_sha256}),
        )
        .await?;
        report.published.push(format!(
            "{} v{} {}/{}",
            policy.key, policy.version, policy.jurisdiction, policy.language
        ));
    }
    txn.commit().await?;
    Ok(report)
}
