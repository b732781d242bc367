//! Columns the legal rules need: which purposes are direct marketing (an objection to them takes
//! effect on receipt), when a lifted restriction ends (after the person was told), and on whose
//! behalf a request is made (next of kin of a deceased person, PIPL Art 49).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Purposes::Table)
                    .add_column(boolean(Purposes::DirectMarketing).default(false))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subjects::Table)
                    .add_column(timestamp_with_time_zone_null(Subjects::RestrictionLiftsAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Requests::Table)
                    .add_column(string_len_null(Requests::OnBehalfOf, 16))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Requests::Table)
                    .drop_column(Requests::OnBehalfOf)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Subjects::Table)
                    .drop_column(Subjects::RestrictionLiftsAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Purposes::Table)
                    .drop_column(Purposes::DirectMarketing)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Purposes {
    Table,
    DirectMarketing,
}

#[derive(DeriveIden)]
enum Subjects {
    Table,
    RestrictionLiftsAt,
}

#[derive(DeriveIden)]
enum Requests {
    Table,
    OnBehalfOf,
}
