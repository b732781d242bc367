//! One audit chain per target (a person, a request, a key) instead of one for the whole log, so
//! that transactions about different targets never wait for the same head row. Entries keep a
//! global `seq` (the log's order, listed and paged by it) and gain the chain they belong to and
//! their position in it. Entries written before this migration stay in the chain `audit`, where
//! their position is their `seq`. A head also records the `seq` of its newest entry, so that a
//! chain missing its newest entries can be reported by where they were.

use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in [
            string_len(AuditLog::Chain, 300).default("audit").to_owned(),
            big_integer(AuditLog::ChainSeq).default(0).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AuditLog::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ChainHeads::Table)
                    .add_column(big_integer(ChainHeads::LastSeq).default(0).to_owned())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE audit_log SET chain_seq = seq")
            .await?;
        db.execute_unprepared("UPDATE chain_heads SET last_seq = seq")
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_audit_log_chain")
                    .table(AuditLog::Table)
                    .col(AuditLog::Chain)
                    .col(AuditLog::ChainSeq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            // A chain is named after its target: the type and an id of up to 200 characters.
            db.execute_unprepared("ALTER TABLE chain_heads ALTER COLUMN chain TYPE varchar(300)")
                .await?;
            // SQLite has one writer at a time, which takes the next `seq` after the largest;
            // PostgreSQL's writers draw them from a sequence so that they do not wait for each other.
            db.execute_unprepared(
                "CREATE SEQUENCE audit_log_seq OWNED BY audit_log.seq; \
                 SELECT setval('audit_log_seq', COALESCE((SELECT MAX(seq) FROM audit_log), 0) + 1, false)",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP SEQUENCE audit_log_seq")
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("ux_audit_log_chain")
                    .table(AuditLog::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChainHeads::Table)
                    .drop_column(ChainHeads::LastSeq)
                    .to_owned(),
            )
            .await?;
        for column in [AuditLog::Chain, AuditLog::ChainSeq] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AuditLog::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Chain,
    ChainSeq,
}

#[derive(DeriveIden)]
enum ChainHeads {
    Table,
    LastSeq,
}
