//! Sign-in that holds against someone who knows a password: failures counted per account and
//! client network (so a locked-out stranger does not lock the owner out), the last TOTP step an
//! account accepted (a code works once), and the portal handoff tokens already used.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SignInFailures::Table)
                    .col(string_len(SignInFailures::AccountKey, 64))
                    .col(string_len(SignInFailures::Network, 64))
                    .col(integer(SignInFailures::Failures).default(0))
                    .col(timestamp_with_time_zone_null(SignInFailures::LockedUntil))
                    .col(timestamp_with_time_zone(SignInFailures::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(SignInFailures::AccountKey)
                            .col(SignInFailures::Network),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StaffUsers::Table)
                    .add_column(big_integer_null(StaffUsers::TotpLastStep))
                    .to_owned(),
            )
            .await?;
        for column in [StaffUsers::FailedAttempts, StaffUsers::LockedUntil] {
            manager
                .alter_table(
                    Table::alter()
                        .table(StaffUsers::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(UsedHandoffs::Table)
                    .col(string_len(UsedHandoffs::TokenHash, 64).primary_key())
                    .col(timestamp_with_time_zone(UsedHandoffs::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UsedHandoffs::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StaffUsers::Table)
                    .drop_column(StaffUsers::TotpLastStep)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StaffUsers::Table)
                    .add_column(integer(StaffUsers::FailedAttempts).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(StaffUsers::Table)
                    .add_column(timestamp_with_time_zone_null(StaffUsers::LockedUntil))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(SignInFailures::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SignInFailures {
    Table,
    AccountKey,
    Network,
    Failures,
    LockedUntil,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StaffUsers {
    Table,
    TotpLastStep,
    FailedAttempts,
    LockedUntil,
}

#[derive(DeriveIden)]
enum UsedHandoffs {
    Table,
    TokenHash,
    ExpiresAt,
}
