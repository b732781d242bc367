//! Purge runs, the batches of erasure jobs they send the main app, and the columns that let a
//! run pick up where a killed one stopped: when an item's notice went out, which batch and run
//! are purging it, when that was acknowledged, and whether the item is on legal hold.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PurgeRuns::Table)
                    .col(string_len(PurgeRuns::Id, 36).primary_key())
                    .col(string_len(PurgeRuns::Trigger, 16))
                    .col(boolean(PurgeRuns::DryRun))
                    .col(string_len(PurgeRuns::Status, 16))
                    .col(string_len(PurgeRuns::Actor, 128))
                    .col(timestamp_with_time_zone(PurgeRuns::AsOf))
                    .col(timestamp_with_time_zone(PurgeRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(PurgeRuns::FinishedAt))
                    .col(big_integer(PurgeRuns::ItemsExamined))
                    .col(big_integer(PurgeRuns::ItemsPurged))
                    .col(big_integer(PurgeRuns::NoticesQueued))
                    .col(text(PurgeRuns::Report))
                    .col(text_null(PurgeRuns::Errors))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_purge_runs_started")
                    .table(PurgeRuns::Table)
                    .col(PurgeRuns::StartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PurgeBatches::Table)
                    .col(string_len(PurgeBatches::Id, 36).primary_key())
                    .col(string_len(PurgeBatches::RunId, 36))
                    .col(string_len(PurgeBatches::Status, 16))
                    .col(big_integer(PurgeBatches::Items))
                    .col(timestamp_with_time_zone(PurgeBatches::CreatedAt))
                    .col(timestamp_with_time_zone_null(PurgeBatches::AcknowledgedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PurgeBatches::Table, PurgeBatches::RunId)
                            .to(PurgeRuns::Table, PurgeRuns::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_purge_batches_run")
                    .table(PurgeBatches::Table)
                    .col(PurgeBatches::RunId)
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per statement.
        for column in [
            boolean(DataItems::LegalHold).default(false).to_owned(),
            timestamp_with_time_zone_null(DataItems::NoticedAt),
            string_len_null(DataItems::PurgeRunId, 36),
            string_len_null(DataItems::PurgeBatchId, 36),
            timestamp_with_time_zone_null(DataItems::PurgedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(DataItems::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // A run walks the people with items not yet sent for purging in order, looking at the
        // items' dates without reading the table; acknowledgements find a batch's items.
        manager
            .create_index(
                Index::create()
                    .name("ix_data_items_open")
                    .table(DataItems::Table)
                    .col(DataItems::PurgeBatchId)
                    .col(DataItems::SubjectId)
                    .col(DataItems::PurgeAfter)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_data_items_open")
                    .table(DataItems::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            DataItems::PurgedAt,
            DataItems::PurgeBatchId,
            DataItems::PurgeRunId,
            DataItems::NoticedAt,
            DataItems::LegalHold,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(DataItems::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(PurgeBatches::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PurgeRuns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PurgeRuns {
    Table,
    Id,
    Trigger,
    DryRun,
    Status,
    Actor,
    AsOf,
    StartedAt,
    FinishedAt,
    ItemsExamined,
    ItemsPurged,
    NoticesQueued,
    Report,
    Errors,
}

#[derive(DeriveIden)]
enum PurgeBatches {
    Table,
    Id,
    RunId,
    Status,
    Items,
    CreatedAt,
    AcknowledgedAt,
}

#[derive(DeriveIden)]
enum DataItems {
    Table,
    SubjectId,
    PurgeAfter,
    LegalHold,
    NoticedAt,
    PurgeRunId,
    PurgeBatchId,
    PurgedAt,
}
