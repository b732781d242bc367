//! Where a marketing email's unsubscribe link lands. `GET` shows one button; `POST` withdraws
//! the purpose at once with no login: from that button (with the page's CSRF token), or from
//! the mail provider's one-click request (RFC 8058: the body `List-Unsubscribe=One-Click`, no
//! cookies), which the signed link alone authorises.
//!
//! A signed link is rate-limited per link, not per address: a mail provider sends one-click
//! requests for many people from a few addresses, and none of those withdrawals may be
//! refused. Links that do not verify are counted per address, so guessing stays limited.

use poem::{Body, Request, Response, handler, http::StatusCode, web::Data};
use serde_json::json;

use super::{Visitor, query_param};
use crate::{
    AppState, actions,
    consent::{
        ledger::{self, Withdrawal},
        model::ConsentStatus,
        unsubscribe,
    },
    error::ApiError,
    purpose,
    subject::{self, Subject},
    web::FormData,
};

/// The person and purpose of the link, or a 404 page; counts the visit against the link's limit
/// (or the address's, for a link that does not verify).
async fn target(
    state: &AppState,
    req: &Request,
) -> Result<(Subject, purpose::Purpose, String), ApiError> {
    let token = query_param(req, "token").unwrap_or_default();
    let invalid =
        || ApiError::not_found("this unsubscribe link is not valid").with_reason("token_invalid");
    let Some((subject_id, purpose_key)) = unsubscribe::open(&state.config, &token) else {
        state.rate_limiter.check(crate::http::client_ip(req))?;
        return Err(invalid());
    };
    let link = format!(
        "unsubscribe:{}",
        crate::crypto::sha256_hex(token.as_bytes())
    );
    state.key_rate_limiter.check(Some(link))?;
    let person = subject::by_id(state.db.conn(), &subject_id)
        .await?
        .filter(|s| s.erased_at.is_none())
        .ok_or_else(invalid)?;
    let purpose = purpose::get(state.db.conn(), &purpose_key)
        .await
        .map_err(|_| invalid())?;
    Ok((person, purpose, token))
}

/// `GET /portal/unsubscribe?token=`.
#[handler]
pub async fn show(req: &Request, Data(state): Data<&AppState>) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    let (person, purpose, token) = target(state, req).await?;
    let granted = ledger::current(state.db.conn(), &person.id)
        .await?
        .iter()
        .any(|c| c.purpose_key == purpose.key && c.status == ConsentStatus::Granted);
    let data = json!({
        "title": purpose.text(visitor.lang.tag()).map(|t| t.title.clone()).unwrap_or_else(|| purpose.key.clone()),
        "granted": granted,
        "action": format!("/portal/unsubscribe?token={}", crate::web::urlencode(&token)),
    });
    Ok(visitor.page(state, "unsubscribe", data, StatusCode::OK))
}

/// `POST /portal/unsubscribe?token=`.
#[handler]
pub async fn confirm(
    req: &Request,
    body: Body,
    Data(state): Data<&AppState>,
) -> Result<Response, ApiError> {
    let visitor = Visitor::load(state, req).await?;
    // The area's guard let a one-click request through without a token; any other form had one.
    let form = FormData::read(body).await?;
    let one_click = form.get("List-Unsubscribe") == Some("One-Click");
    let (person, purpose, _) = target(state, req).await?;
    let (user_agent, ip) = crate::http::client_evidence(req);
    actions::consents::unsubscribe(
        &state.db,
        &state.config,
        &person,
        &purpose.key,
        Withdrawal {
            channel: if one_click {
                "unsubscribe:one-click"
            } else {
                "unsubscribe:page"
            },
            language: Some(visitor.lang.tag().into()),
            user_agent,
            ip,
        },
    )
    .await?;
    let data = json!({
        "title": purpose.text(visitor.lang.tag()).map(|t| t.title.clone()).unwrap_or_else(|| purpose.key.clone()),
    });
    Ok(visitor.page(state, "unsubscribed", data, StatusCode::OK))
}
