//! Actions: one function per thing someone does that spans rooms. An action begins and commits
//! its transactions, registers what must follow the commit, and answers with what happened;
//! the front ends (API handlers, pages, CLI commands, jobs, the main app's events) parse,
//! authorise, call one action and present its outcome. Rooms never import this module, so the
//! rooms import each other without a circle (`../shared/tools/rooms.py` checks it).

pub mod accounts;
pub mod banner;
pub mod consents;
pub mod events;
pub mod filings;
pub mod guardians;
pub mod minors;
pub mod operations;
mod own_data;
pub mod policies;
pub mod portal_sessions;
pub mod purges;
pub mod purposes;
pub mod receipts;
pub mod retention_rules;
pub mod reviews;
pub mod systems;
