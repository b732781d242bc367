//! Staff accounts for the console: a password (argon2id) and a TOTP second factor each, and
//! server-side sessions that staff can see and end.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StaffUsers::Table)
                    .col(string_len(StaffUsers::Id, 36).primary_key())
                    .col(string_len_uniq(StaffUsers::Email, 255))
                    .col(string_len(StaffUsers::Role, 16))
                    .col(string_len_null(StaffUsers::PasswordHash, 255))
                    .col(string_len_null(StaffUsers::TotpSecret, 255))
                    .col(timestamp_with_time_zone_null(StaffUsers::TotpEnabledAt))
                    .col(string_len_null(StaffUsers::SetupTokenHash, 64))
                    .col(timestamp_with_time_zone_null(StaffUsers::SetupExpiresAt))
                    .col(integer(StaffUsers::FailedAttempts).default(0))
                    .col(timestamp_with_time_zone_null(StaffUsers::LockedUntil))
                    .col(timestamp_with_time_zone_null(StaffUsers::LastSignInAt))
                    .col(timestamp_with_time_zone_null(StaffUsers::DisabledAt))
                    .col(timestamp_with_time_zone(StaffUsers::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffSessions::Table)
                    .col(string_len(StaffSessions::TokenHash, 64).primary_key())
                    .col(string_len(StaffSessions::Id, 36))
                    .col(string_len(StaffSessions::UserId, 36))
                    .col(boolean(StaffSessions::SecondFactor))
                    .col(string_len_null(StaffSessions::UserAgent, 255))
                    .col(timestamp_with_time_zone(StaffSessions::CreatedAt))
                    .col(timestamp_with_time_zone(StaffSessions::LastSeenAt))
                    .col(timestamp_with_time_zone(StaffSessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_staff_sessions_user")
                    .table(StaffSessions::Table)
                    .col(StaffSessions::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StaffSessions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StaffUsers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum StaffUsers {
    Table,
    Id,
    Email,
    Role,
    PasswordHash,
    TotpSecret,
    TotpEnabledAt,
    SetupTokenHash,
    SetupExpiresAt,
    FailedAttempts,
    LockedUntil,
    LastSignInAt,
    DisabledAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StaffSessions {
    Table,
    TokenHash,
    Id,
    UserId,
    SecondFactor,
    UserAgent,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
}
