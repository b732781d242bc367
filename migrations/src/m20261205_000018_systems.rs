//! The systems that hold a person's data (object storage, a training cluster, a mailing tool):
//! a registry of them, and one fulfilment job per system and request, each with its own status,
//! due date and evidence. A job without a system is the single job to the main app, as before
//! any system was registered. An outgoing webhook may name the system it goes to, so that it is
//! posted to that system's endpoint and signed with its secret.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Systems::Table)
                    .col(string_len(Systems::Key, 64).primary_key())
                    .col(string_len(Systems::Name, 200))
                    .col(text(Systems::Description).default(""))
                    .col(text_null(Systems::Endpoint))
                    .col(text_null(Systems::SecretSealed))
                    .col(text(Systems::RequestTypes))
                    .col(text(Systems::Categories))
                    .col(integer(Systems::AllowanceDays))
                    .col(boolean(Systems::Required))
                    .col(timestamp_with_time_zone_null(Systems::RetiredAt))
                    .col(timestamp_with_time_zone(Systems::CreatedAt))
                    .col(timestamp_with_time_zone(Systems::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let columns = [
            string_len_null(Fulfilments::SystemKey, 64),
            integer(Fulfilments::Round).default(1).to_owned(),
            timestamp_with_time_zone_null(Fulfilments::DueAt),
            timestamp_with_time_zone_null(Fulfilments::AcknowledgedAt),
            string_len_null(Fulfilments::Outcome, 16),
            text_null(Fulfilments::Evidence),
            text_null(Fulfilments::Note),
            text_null(Fulfilments::Part),
            string_len_null(Fulfilments::DecidedBy, 200),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Fulfilments::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_fulfilments_request")
                    .table(Fulfilments::Table)
                    .col(Fulfilments::RequestId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_fulfilments_status_due")
                    .table(Fulfilments::Table)
                    .col(Fulfilments::Status)
                    .col(Fulfilments::DueAt)
                    .to_owned(),
            )
            .await?;
        // The job the main app reported before jobs had more states than pending and completed.
        manager
            .exec_stmt(
                Query::update()
                    .table(Fulfilments::Table)
                    .value(Fulfilments::Status, "done")
                    .and_where(Expr::col(Fulfilments::Status).eq("completed"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .add_column(string_len_null(Outbox::SystemKey, 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::SystemKey)
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Fulfilments::Table)
                    .value(Fulfilments::Status, "completed")
                    .and_where(Expr::col(Fulfilments::Status).eq("done"))
                    .to_owned(),
            )
            .await?;
        for name in ["ix_fulfilments_request", "ix_fulfilments_status_due"] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(Fulfilments::Table)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            Fulfilments::SystemKey,
            Fulfilments::Round,
            Fulfilments::DueAt,
            Fulfilments::AcknowledgedAt,
            Fulfilments::Outcome,
            Fulfilments::Evidence,
            Fulfilments::Note,
            Fulfilments::Part,
            Fulfilments::DecidedBy,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Fulfilments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(Systems::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Systems {
    Table,
    Key,
    Name,
    Description,
    Endpoint,
    SecretSealed,
    RequestTypes,
    Categories,
    AllowanceDays,
    Required,
    RetiredAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Fulfilments {
    Table,
    RequestId,
    Status,
    SystemKey,
    Round,
    DueAt,
    AcknowledgedAt,
    Outcome,
    Evidence,
    Note,
    Part,
    DecidedBy,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    SystemKey,
}
