//! The policy in force, earlier versions, and what changed between two versions. Public pages:
//! the policy-change email links here.

use poem::{
    Request, Response, handler,
    http::StatusCode,
    web::{Data, Path},
};
use serde_json::{Value, json};

use super::{Visitor, query_param};
use crate::{
    AppState, clock,
    error::ApiError,
    policy::{self, Policy},
    web::markdown,
};

/// The jurisdiction whose documents a visitor reads: the link's, else the signed-in person's.
fn jurisdiction(req: &Request, visitor: &Visitor) -> Option<String> {
    query_param(req, "jurisdiction")
        .filter(|j| j.len() <= 2)
        .or_else(|| {
            visitor
                .subject
                .as_ref()
                .and_then(|s| s.jurisdiction.clone())
        })
}

fn not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("no published policy `{key}`"))
}

/// `GET /portal/policies/{key}`: the document in force.
#[handler]
pub async fn current(
    req: &Request,
    Path(key): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let j = jurisdiction(req, &visitor);
    let doc = policy::current(
        state.db.conn(),
        &key,
        j.as_deref(),
        Some(visitor.lang.tag()),
        clock::now(),
    )
    .await?
    .ok_or_else(|| not_found(&key))?;
    document_page(state, visitor, doc, j).await
}

/// `GET /portal/policies/{key}/versions/{version}`: one version.
#[handler]
pub async fn version(
    req: &Request,
    Path((key, version)): Path<(String, i32)>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let j = jurisdiction(req, &visitor);
    let doc = policy::of_version(
        state.db.conn(),
        &key,
        version,
        j.as_deref(),
        Some(visitor.lang.tag()),
    )
    .await?
    .ok_or_else(|| not_found(&key))?;
    document_page(state, visitor, doc, j).await
}

async fn document_page(
    state: &AppState,
    visitor: Visitor,
    doc: Policy,
    j: Option<String>,
) -> Result<Response, ApiError> {
    let all = policy::list_public(state.db.conn(), &doc.key).await?;
    let same_scope = |d: &&Policy| d.jurisdiction == doc.jurisdiction;
    let mut versions: Vec<&Policy> = all
        .iter()
        .filter(same_scope)
        .filter(|d| d.authoritative)
        .collect();
    versions.dedup_by_key(|d| d.version);
    let authoritative = all
        .iter()
        .filter(same_scope)
        .find(|d| d.version == doc.version && d.authoritative);
    // Links keep the jurisdiction the visitor reads: as the first parameter, or after another.
    let first = j
        .as_ref()
        .map(|j| format!("?jurisdiction={j}"))
        .unwrap_or_default();
    let query = j.map(|j| format!("&jurisdiction={j}")).unwrap_or_default();
    let previous = versions
        .iter()
        .find(|d| d.version < doc.version)
        .map(|d| d.version);
    let data = json!({
        "doc": summary(&doc),
        "body_html": markdown::to_html(&doc.body),
        "authoritative": authoritative.filter(|a| a.id != doc.id).map(|a| json!({
            "language": a.language,
            "url": format!("/portal/policies/{}/versions/{}?lang={}{query}", a.key, a.version, a.language),
        })),
        "is_authoritative": doc.authoritative,
        "versions": versions.iter().map(|d| json!({
            "version": d.version,
            "effective_at": d.effective_at.to_rfc3339(),
            "current": d.version == doc.version,
            "url": format!("/portal/policies/{}/versions/{}{first}", d.key, d.version),
        })).collect::<Vec<_>>(),
        "diff_url": previous.map(|p| format!(
            "/portal/policies/{}/diff?from={p}&to={}{query}", doc.key, doc.version
        )),
    });
    Ok(visitor.page(state, "policy", data, StatusCode::OK))
}

fn summary(doc: &Policy) -> Value {
    json!({
        "key": doc.key,
        "title": doc.title,
        "version": doc.version,
        "language": doc.language,
        "jurisdiction": doc.jurisdiction,
        "effective_at": doc.effective_at.to_rfc3339(),
        "material": doc.material,
        "change_summary": doc.change_summary,
        "retired": doc.retired_at.is_some(),
    })
}

/// `GET /portal/policies/{key}/diff?from=&to=`: the paragraphs, headings, list items and table
/// rows removed and added between two versions, each marked in words as well as by colour.
#[handler]
pub async fn changes(
    req: &Request,
    Path(key): Path<String>,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    state.rate_limiter.check(crate::http::client_ip(req))?;
    let visitor = Visitor::load(state, req).await?;
    let j = jurisdiction(req, &visitor);
    let number = |name: &str| {
        query_param(req, name)
            .and_then(|v| v.parse::<i32>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("`{name}` must be a version number")))
    };
    let (from, to) = (number("from")?, number("to")?);
    let conn = state.db.conn();
    let lang = Some(visitor.lang.tag());
    let a = policy::of_version(conn, &key, from, j.as_deref(), lang)
        .await?
        .ok_or_else(|| not_found(&key))?;
    let b = policy::of_version(conn, &key, to, j.as_deref(), lang)
        .await?
        .ok_or_else(|| not_found(&key))?;
    // Compared as the blocks people read, each already HTML (the documents' raw HTML escaped).
    let blocks = |body: &str| markdown::blocks(body).join("\n");
    let lines = policy::diff::lines(&blocks(&a.body), &blocks(&b.body)).await;
    let changed = lines
        .iter()
        .filter(|l| l.op != policy::diff::LineOp::Equal)
        .count();
    let data = json!({
        "from": summary(&a),
        "to": summary(&b),
        "changed": changed,
        "lines": lines.iter().map(|l| json!({
            "op": match l.op {
                policy::diff::LineOp::Equal => "equal",
                policy::diff::LineOp::Delete => "delete",
                policy::diff::LineOp::Insert => "insert",
            },
            "text": l.text,
        })).collect::<Vec<_>>(),
    });
    Ok(visitor.page(state, "diff", data, StatusCode::OK))
}
