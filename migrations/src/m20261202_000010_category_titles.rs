//! What each data category is called in words, per language, so that emails and pages show
//! "photos you uploaded" rather than `uploads`.

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
                    .add_column(text_null(RetentionRules::Titles))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RetentionRules::Table)
                    .drop_column(RetentionRules::Titles)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RetentionRules {
    Table,
    Titles,
}
