//! Retention a person chooses: the periods a rule offers, and each choice a person makes, kept
//! with its evidence like a consent decision.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RetentionRules::Table)
                    .add_column(text_null(RetentionRules::Options))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RetentionChoices::Table)
                    .col(string_len(RetentionChoices::Id, 36).primary_key())
                    .col(string_len(RetentionChoices::SubjectId, 36))
                    .col(string_len(RetentionChoices::Category, 64))
                    .col(string_len(RetentionChoices::Period, 32))
                    .col(string_len(RetentionChoices::Channel, 32))
                    .col(string_len_null(RetentionChoices::UserAgent, 1024))
                    .col(string_len_null(RetentionChoices::Ip, 64))
                    .col(timestamp_with_time_zone(RetentionChoices::ChosenAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_retention_choices_subject")
                    .table(RetentionChoices::Table)
                    .col(RetentionChoices::SubjectId)
                    .col(RetentionChoices::Category)
                    .col(RetentionChoices::ChosenAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RetentionChoices::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RetentionRules::Table)
                    .drop_column(RetentionRules::Options)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RetentionRules {
    Table,
    Options,
}

#[derive(DeriveIden)]
enum RetentionChoices {
    Table,
    Id,
    SubjectId,
    Category,
    Period,
    Channel,
    UserAgent,
    Ip,
    ChosenAt,
}
