//! API keys, the hash-chained audit log and the chain heads that serialise appends to it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The hash that starts every chain: 64 zeros.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string_len(ApiKeys::Id, 32).primary_key())
                    .col(string_len(ApiKeys::Name, 100))
                    .col(string_len(ApiKeys::Role, 16))
                    .col(string_len(ApiKeys::SecretHash, 64))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChainHeads::Table)
                    .col(string_len(ChainHeads::Chain, 64).primary_key())
                    .col(big_integer(ChainHeads::Seq))
                    .col(string_len(ChainHeads::Hash, 64))
                    .to_owned(),
            )
            .await?;
        let genesis = Query::insert()
            .into_table(ChainHeads::Table)
            .columns([ChainHeads::Chain, ChainHeads::Seq, ChainHeads::Hash])
            .values_panic(["audit".into(), 0i64.into(), GENESIS.into()])
            .to_owned();
        manager.exec_stmt(genesis).await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_integer(AuditLog::Seq).primary_key())
                    .col(timestamp_with_time_zone(AuditLog::OccurredAt))
                    .col(string_len(AuditLog::Actor, 200))
                    .col(string_len(AuditLog::Action, 100))
                    .col(string_len(AuditLog::TargetType, 64))
                    .col(string_len(AuditLog::TargetId, 200))
                    .col(text(AuditLog::Details))
                    .col(string_len(AuditLog::PrevHash, 64))
                    .col(string_len(AuditLog::Hash, 64))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_audit_log_action", AuditLog::Action),
            ("ix_audit_log_target", AuditLog::TargetId),
            ("ix_audit_log_occurred_at", AuditLog::OccurredAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(AuditLog::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            ChainHeads::Table.into_iden(),
            ApiKeys::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Role,
    SecretHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ChainHeads {
    Table,
    Chain,
    Seq,
    Hash,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Seq,
    OccurredAt,
    Actor,
    Action,
    TargetType,
    TargetId,
    Details,
    PrevHash,
    Hash,
}
