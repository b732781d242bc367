//! OpenAPI tags: one per audience, so that each client finds its operations together.

use poem_openapi::Tags;

#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and readiness probes.
    Health,
    /// Open to anyone: published policies and purposes.
    Public,
    /// The self-service rights portal, authenticated by a subject token.
    Portal,
    /// The main application, server to server, with a `service` key.
    Service,
    /// The admin review console: `viewer` reads, `reviewer` decides requests, `admin` changes
    /// configuration.
    Admin,
}
