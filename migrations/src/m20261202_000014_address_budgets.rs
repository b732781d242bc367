//! What each email address has spent today of its budget for requests filed without a login and
//! for wrong codes, so that the budget holds across requests and across replicas.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AddressBudgets::Table)
                    .col(string_len(AddressBudgets::AddressHash, 64))
                    .col(date(AddressBudgets::Day))
                    .col(integer(AddressBudgets::Filings).default(0))
                    .col(integer(AddressBudgets::FailedCodes).default(0))
                    .primary_key(
                        Index::create()
                            .col(AddressBudgets::AddressHash)
                            .col(AddressBudgets::Day),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AddressBudgets::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AddressBudgets {
    Table,
    AddressHash,
    Day,
    Filings,
    FailedCodes,
}
