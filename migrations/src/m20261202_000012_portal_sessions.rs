//! Sessions of the rights portal: a cookie names a row here by the SHA-256 of its value, so a
//! copy of the database opens no one's session.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PortalSessions::Table)
                    .col(string_len(PortalSessions::TokenHash, 64).primary_key())
                    .col(string_len(PortalSessions::SubjectId, 36))
                    .col(timestamp_with_time_zone(PortalSessions::CreatedAt))
                    .col(timestamp_with_time_zone(PortalSessions::LastSeenAt))
                    .col(timestamp_with_time_zone(PortalSessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_portal_sessions_subject")
                    .table(PortalSessions::Table)
                    .col(PortalSessions::SubjectId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PortalSessions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PortalSessions {
    Table,
    TokenHash,
    SubjectId,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
}
