//! Retention rules per data category, and an index to find a category's data items.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RetentionRules::Table)
                    .col(string_len(RetentionRules::Category, 64).primary_key())
                    .col(string_len(RetentionRules::Period, 32))
                    .col(string_len(RetentionRules::ClockStart, 64))
                    .col(string_len(RetentionRules::Action, 16))
                    .col(string_len_null(RetentionRules::NoticeBefore, 32))
                    .col(boolean(RetentionRules::NotifyAfter))
                    .col(boolean(RetentionRules::LegalHold))
                    .col(timestamp_with_time_zone(RetentionRules::CreatedAt))
                    .col(timestamp_with_time_zone(RetentionRules::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_data_items_category")
                    .table(DataItems::Table)
                    .col(DataItems::Category)
                    .col(DataItems::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_data_items_category")
                    .table(DataItems::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RetentionRules::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RetentionRules {
    Table,
    Category,
    Period,
    ClockStart,
    Action,
    NoticeBefore,
    NotifyAfter,
    LegalHold,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DataItems {
    Table,
    Id,
    Category,
}
