//! Data-subject requests end to end: the law and deadline of each request, its history of
//! transitions, email verification codes, fulfilment jobs for the main app and export packages.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [
            string_len(Requests::Law, 8).default("gdpr").to_owned(),
            text_null(Requests::Email),
            string_len_null(Requests::Locale, 16),
            string_len_null(Requests::Jurisdiction, 2),
            timestamp_with_time_zone_null(Requests::VerifiedAt),
            date_null(Requests::DueDate),
            text_null(Requests::ExtensionReason),
            timestamp_with_time_zone_null(Requests::ExtendedAt),
            string_len_null(Requests::DuplicateOf, 36),
            string_len_null(Requests::Reviewer, 64),
            text_null(Requests::DecisionReason),
            string_len_null(Requests::Outcome, 16),
            timestamp_with_time_zone_null(Requests::ClosedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Requests::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_requests_status_due")
                    .table(Requests::Table)
                    .col(Requests::Status)
                    .col(Requests::DueDate)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RequestEvents::Table)
                    .col(string_len(RequestEvents::Id, 36).primary_key())
                    .col(string_len(RequestEvents::RequestId, 36))
                    .col(string_len_null(RequestEvents::FromStatus, 16))
                    .col(string_len(RequestEvents::ToStatus, 16))
                    .col(string_len(RequestEvents::Actor, 64))
                    .col(text_null(RequestEvents::Note))
                    .col(timestamp_with_time_zone(RequestEvents::OccurredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RequestEvents::Table, RequestEvents::RequestId)
                            .to(Requests::Table, Requests::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_request_events_request")
                    .table(RequestEvents::Table)
                    .col(RequestEvents::RequestId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(VerificationCodes::Table)
                    .col(string_len(VerificationCodes::RequestId, 36).primary_key())
                    .col(string_len(VerificationCodes::CodeHash, 64))
                    .col(timestamp_with_time_zone(VerificationCodes::ExpiresAt))
                    .col(integer(VerificationCodes::Attempts))
                    .col(integer(VerificationCodes::Sends))
                    .col(timestamp_with_time_zone(VerificationCodes::LastSentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(VerificationCodes::Table, VerificationCodes::RequestId)
                            .to(Requests::Table, Requests::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Fulfilments::Table)
                    .col(string_len(Fulfilments::Id, 36).primary_key())
                    .col(string_len(Fulfilments::RequestId, 36))
                    .col(string_len(Fulfilments::Status, 16))
                    .col(timestamp_with_time_zone(Fulfilments::CreatedAt))
                    .col(timestamp_with_time_zone_null(Fulfilments::CompletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Fulfilments::Table, Fulfilments::RequestId)
                            .to(Requests::Table, Requests::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Exports::Table)
                    .col(string_len(Exports::RequestId, 36).primary_key())
                    .col(string_len_uniq(Exports::TokenHash, 64))
                    .col(text(Exports::FileName))
                    .col(string_len(Exports::MediaType, 64))
                    .col(big_integer(Exports::Size))
                    .col(timestamp_with_time_zone(Exports::CreatedAt))
                    .col(timestamp_with_time_zone(Exports::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Exports::DownloadedAt))
                    .col(timestamp_with_time_zone_null(Exports::PurgedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Exports::Table, Exports::RequestId)
                            .to(Requests::Table, Requests::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Exports::Table.into_iden(),
            Fulfilments::Table.into_iden(),
            VerificationCodes::Table.into_iden(),
            RequestEvents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ix_requests_status_due")
                    .table(Requests::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Requests::Law,
            Requests::Email,
            Requests::Locale,
            Requests::Jurisdiction,
            Requests::VerifiedAt,
            Requests::DueDate,
            Requests::ExtensionReason,
            Requests::ExtendedAt,
            Requests::DuplicateOf,
            Requests::Reviewer,
            Requests::DecisionReason,
            Requests::Outcome,
            Requests::ClosedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Requests::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Requests {
    Table,
    Id,
    Status,
    Law,
    Email,
    Locale,
    Jurisdiction,
    VerifiedAt,
    DueDate,
    ExtensionReason,
    ExtendedAt,
    DuplicateOf,
    Reviewer,
    DecisionReason,
    Outcome,
    ClosedAt,
}

#[derive(DeriveIden)]
enum RequestEvents {
    Table,
    Id,
    RequestId,
    FromStatus,
    ToStatus,
    Actor,
    Note,
    OccurredAt,
}

#[derive(DeriveIden)]
enum VerificationCodes {
    Table,
    RequestId,
    CodeHash,
    ExpiresAt,
    Attempts,
    Sends,
    LastSentAt,
}

#[derive(DeriveIden)]
enum Fulfilments {
    Table,
    Id,
    RequestId,
    Status,
    CreatedAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum Exports {
    Table,
    RequestId,
    TokenHash,
    FileName,
    MediaType,
    Size,
    CreatedAt,
    ExpiresAt,
    DownloadedAt,
    PurgedAt,
}
