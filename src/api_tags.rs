//! OpenAPI tags: one per audience, so that each client finds its operations together.

use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and readiness probes.
    Health,
    /// The admin review console: keys, audit log and, later, policies, requests and purges.
    Admin,
}
