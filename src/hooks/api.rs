//! `POST /v1/hooks/events`: events from the main app, authenticated by their Standard Webhooks
//! signature rather than an API key (the signature also proves the body is unchanged).

use poem::Request;
use poem_openapi::{ApiResponse, OpenApi, payload::Json};
use serde_json::Value;

use super::events::{self, Envelope, EnvelopeSchema};
use crate::{
    AppState, actions,
    api_tags::ApiTags,
    error::{ApiError, FieldError},
    http::Signed,
};

pub struct HooksApi {
    state: AppState,
    verifier: super::Verifier,
}

impl HooksApi {
    pub fn new(state: AppState) -> Self {
        let verifier = super::Verifier::from_config(&state.config);
        Self { state, verifier }
    }
}

/// The exact bytes of a signed event, documented as the event envelope.
type SignedBody = Signed<EnvelopeSchema>;

#[derive(ApiResponse)]
enum EventResponse {
    /// The event was applied, or was applied before under the same `webhook-id` (then the
    /// first answer is repeated and nothing is applied again). The body is `{id, type,
    /// result}`: the `webhook-id`, the event type, and what the event did (see the event types
    /// in the README).
    #[oai(status = 200)]
    Applied(Json<Value>),
}

#[OpenApi]
impl HooksApi {
    /// Receive an event from the main app
    ///
    /// Signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`,
    /// 5-minute tolerance; any configured secret is accepted, so secrets can be rotated). A
    /// missing, wrong or stale signature is 401 and nothing is written; an unknown `type`,
    /// invalid `data` or a `webhook-id` longer than 255 characters is 422 and nothing is
    /// written. The `webhook-id` is claimed in the transaction that applies the event, so
    /// copies delivered in parallel apply it once and all get the first answer; an event that
    /// was refused is not remembered and may be sent again.
    #[oai(path = "/v1/hooks/events", method = "post", tag = "ApiTags::Service")]
    async fn receive(&self, req: &Request, body: SignedBody) -> Result<EventResponse, ApiError> {
        if !self.verifier.verify(body.bytes(), req.headers()) {
            return Err(ApiError::unauthorized(
                "missing, invalid or stale webhook signature",
            ));
        }
        let webhook_id = req
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if webhook_id.is_empty() || webhook_id.len() > super::MAX_ID_LEN {
            return Err(ApiError::validation(vec![FieldError::new(
                "webhook-id",
                format!("1 to {} characters", super::MAX_ID_LEN),
            )]));
        }
        let value: Value = serde_json::from_slice(body.bytes())
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        let envelope =
            <Envelope as poem_openapi::types::ParseFromJSON>::parse_from_json(Some(value))
                .map_err(|e| crate::error::payload_error(e.message()))?;
        let event = events::parse_event(envelope)?;
        let answer =
            actions::events::apply(&self.state.db, &self.state.config, &webhook_id, event).await?;
        Ok(EventResponse::Applied(Json(answer)))
    }
}
