//! Database migrations, one per file, named `mYYYYMMDD_HHMMSS_what.rs`.
//!
//! Every migration runs on SQLite and on PostgreSQL, so schemas stick to portable types: text ids,
//! `timestamp with time zone` for instants, text for JSON documents whose exact bytes matter to a
//! hash chain.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_foundation;
mod m20261122_000002_outbox;
mod m20261122_000003_consent;
mod m20261122_000004_subjects;
mod m20261122_000005_requests;
mod m20261122_000006_job_leases;
mod m20261122_000007_retention_rules;
mod m20261122_000008_purge_runs;
mod m20261202_000009_law;
mod m20261202_000010_category_titles;
mod m20261202_000011_retention_choices;
mod m20261202_000012_portal_sessions;
mod m20261202_000013_staff;
mod m20261202_000014_address_budgets;
mod m20261202_000015_outbox_priority;
mod m20261203_000016_sign_in;
mod m20261204_000017_guardian_steps;
mod m20261205_000018_systems;
mod m20261206_000019_audit_chains;

/// Applies every migration in order; the service runs it at start-up and `consentry migrate`
/// runs it on demand.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_foundation::Migration),
            Box::new(m20261122_000002_outbox::Migration),
            Box::new(m20261122_000003_consent::Migration),
            Box::new(m20261122_000004_subjects::Migration),
            Box::new(m20261122_000005_requests::Migration),
            Box::new(m20261122_000006_job_leases::Migration),
            Box::new(m20261122_000007_retention_rules::Migration),
            Box::new(m20261122_000008_purge_runs::Migration),
            Box::new(m20261202_000009_law::Migration),
            Box::new(m20261202_000010_category_titles::Migration),
            Box::new(m20261202_000011_retention_choices::Migration),
            Box::new(m20261202_000012_portal_sessions::Migration),
            Box::new(m20261202_000013_staff::Migration),
            Box::new(m20261202_000014_address_budgets::Migration),
            Box::new(m20261202_000015_outbox_priority::Migration),
            Box::new(m20261203_000016_sign_in::Migration),
            Box::new(m20261204_000017_guardian_steps::Migration),
            Box::new(m20261205_000018_systems::Migration),
            Box::new(m20261206_000019_audit_chains::Migration),
        ]
    }
}
