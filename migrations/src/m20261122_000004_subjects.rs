//! What the main app tells us about people: guardians for minors, webhook receipts (replay
//! protection), the data-item registry that retention works from, policy acceptances, and the
//! data-subject requests that events such as `subject.deleted` open.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [
            string_len_null(Subjects::AgeBand, 16),
            text_null(Subjects::GuardianEmail),
            timestamp_with_time_zone_null(Subjects::GuardianVerifiedAt),
            timestamp_with_time_zone_null(Subjects::MinorPendingSince),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Subjects::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(WebhookReceipts::Table)
                    .col(string_len(WebhookReceipts::WebhookId, 255).primary_key())
                    .col(string_len(WebhookReceipts::EventType, 64))
                    .col(integer(WebhookReceipts::Status))
                    .col(text(WebhookReceipts::Response))
                    .col(timestamp_with_time_zone(WebhookReceipts::ReceivedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GuardianTokens::Table)
                    .col(string_len(GuardianTokens::Id, 36).primary_key())
                    .col(string_len(GuardianTokens::SubjectId, 36))
                    .col(string_len_uniq(GuardianTokens::TokenHash, 64))
                    .col(text(GuardianTokens::GuardianEmail))
                    .col(timestamp_with_time_zone(GuardianTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(GuardianTokens::UsedAt))
                    .col(timestamp_with_time_zone(GuardianTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(GuardianTokens::Table, GuardianTokens::SubjectId)
                            .to(Subjects::Table, Subjects::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DataItems::Table)
                    .col(string_len(DataItems::Id, 36).primary_key())
                    .col(string_len(DataItems::SubjectId, 36))
                    .col(string_len(DataItems::Category, 64))
                    .col(string_len(DataItems::ExternalRef, 255))
                    .col(timestamp_with_time_zone(DataItems::CreatedAt))
                    .col(string_len_null(DataItems::ClockEvent, 64))
                    .col(timestamp_with_time_zone_null(DataItems::ClockStartedAt))
                    .col(timestamp_with_time_zone_null(DataItems::PurgeAfter))
                    .col(timestamp_with_time_zone_null(DataItems::ErasedAt))
                    .col(timestamp_with_time_zone(DataItems::RecordedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DataItems::Table, DataItems::SubjectId)
                            .to(Subjects::Table, Subjects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_data_items_ref")
                    .table(DataItems::Table)
                    .col(DataItems::SubjectId)
                    .col(DataItems::ExternalRef)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PolicyAcceptances::Table)
                    .col(string_len(PolicyAcceptances::Id, 36).primary_key())
                    .col(string_len(PolicyAcceptances::SubjectId, 36))
                    .col(string_len(PolicyAcceptances::PolicyId, 36))
                    .col(string_len(PolicyAcceptances::PolicySha256, 64))
                    .col(string_len(PolicyAcceptances::Source, 16))
                    .col(timestamp_with_time_zone(PolicyAcceptances::OccurredAt))
                    .col(timestamp_with_time_zone(PolicyAcceptances::RecordedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PolicyAcceptances::Table, PolicyAcceptances::SubjectId)
                            .to(Subjects::Table, Subjects::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Requests::Table)
                    .col(string_len(Requests::Id, 36).primary_key())
                    .col(string_len_null(Requests::SubjectId, 36))
                    .col(string_len(Requests::Kind, 16))
                    .col(string_len(Requests::Status, 16))
                    .col(string_len(Requests::Source, 16))
                    .col(text(Requests::Details))
                    .col(timestamp_with_time_zone(Requests::ReceivedAt))
                    .col(timestamp_with_time_zone(Requests::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Requests::Table, Requests::SubjectId)
                            .to(Subjects::Table, Subjects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_requests_subject")
                    .table(Requests::Table)
                    .col(Requests::SubjectId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Requests::Table.into_iden(),
            PolicyAcceptances::Table.into_iden(),
            DataItems::Table.into_iden(),
            GuardianTokens::Table.into_iden(),
            WebhookReceipts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            Subjects::AgeBand,
            Subjects::GuardianEmail,
            Subjects::GuardianVerifiedAt,
            Subjects::MinorPendingSince,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Subjects::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Subjects {
    Table,
    Id,
    AgeBand,
    GuardianEmail,
    GuardianVerifiedAt,
    /// When the person was found to be under the threshold without a guardian's consent; the
    /// grace period before an automatic erasure request counts from here.
    MinorPendingSince,
}

#[derive(DeriveIden)]
enum WebhookReceipts {
    Table,
    WebhookId,
    EventType,
    Status,
    Response,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum GuardianTokens {
    Table,
    Id,
    SubjectId,
    TokenHash,
    GuardianEmail,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DataItems {
    Table,
    Id,
    SubjectId,
    Category,
    ExternalRef,
    CreatedAt,
    ClockEvent,
    ClockStartedAt,
    PurgeAfter,
    ErasedAt,
    RecordedAt,
}

#[derive(DeriveIden)]
enum PolicyAcceptances {
    Table,
    Id,
    SubjectId,
    PolicyId,
    PolicySha256,
    Source,
    OccurredAt,
    RecordedAt,
}

#[derive(DeriveIden)]
enum Requests {
    Table,
    Id,
    SubjectId,
    #[sea_orm(iden = "type")]
    Kind,
    Status,
    Source,
    Details,
    ReceivedAt,
    UpdatedAt,
}
