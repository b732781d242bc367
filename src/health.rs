//! Liveness and readiness probes for orchestrators and load balancers.

use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use crate::{AppState, api_tags::ApiTags, error::ApiError};

pub struct HealthApi {
    state: AppState,
}

impl HealthApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[derive(Object)]
struct HealthStatus {
    /// `ok` when healthy.
    status: String,
}

#[derive(ApiResponse)]
enum LiveResponse {
    /// The process is up and serving HTTP.
    #[oai(status = 200)]
    Ok(Json<HealthStatus>),
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The database answers; the service can take traffic.
    #[oai(status = 200)]
    Ok(Json<HealthStatus>),
}

#[OpenApi(prefix_path = "/health", tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// Answers as long as the process serves HTTP; it checks nothing else, so that an
    /// orchestrator does not restart the service because the database is down.
    #[oai(path = "/live", method = "get")]
    async fn live(&self) -> LiveResponse {
        LiveResponse::Ok(Json(HealthStatus {
            status: "ok".into(),
        }))
    }

    /// Readiness
    ///
    /// 200 when the database answers, 503 (problem+json) when it does not.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self) -> Result<ReadyResponse, ApiError> {
        self.state
            .db
            .ping()
            .await
            .map_err(|e| ApiError::unavailable(&e))?;
        Ok(ReadyResponse::Ok(Json(HealthStatus {
            status: "ok".into(),
        })))
    }
}
