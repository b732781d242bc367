//! A guardian answers one question at a time: the link keeps the purposes answered so far and
//! stays usable until all are; a second kind of link, sent once every answer is in, lets the
//! guardian see and change the child's choices later. The child may have a name the main app
//! gives, so that the guardian knows which child a message is about. A consent's current state
//! keeps the channel of its last decision, so that a check can say a refusal came from a
//! browser's Global Privacy Control signal.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(GuardianTokens::Table)
                    .add_column(string_len(GuardianTokens::Kind, 16).default("consent"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(GuardianTokens::Table)
                    .add_column(text(GuardianTokens::Answered).default("[]"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subjects::Table)
                    .add_column(string_len_null(Subjects::DisplayName, 100))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Consents::Table)
                    .add_column(string_len(Consents::Channel, 64).default(""))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [GuardianTokens::Kind, GuardianTokens::Answered] {
            manager
                .alter_table(
                    Table::alter()
                        .table(GuardianTokens::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Consents::Table)
                    .drop_column(Consents::Channel)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subjects::Table)
                    .drop_column(Subjects::DisplayName)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum GuardianTokens {
    Table,
    Kind,
    Answered,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Channel,
}

#[derive(DeriveIden)]
enum Subjects {
    Table,
    DisplayName,
}
