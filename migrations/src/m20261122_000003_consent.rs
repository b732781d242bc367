//! Subjects, policy versions, purposes and the consent ledger.
//!
//! `consent_events` is append-only and chained per subject; the subject row holds the chain's
//! head (`consent_seq`, `consent_hash`) so that appending locks one row. `consents` is the
//! current state per (subject, purpose), written in the same transaction as each event; it
//! repeats the policy's key, version and jurisdiction so that a material change finds the
//! consents it affects with one indexed query.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Subjects::Table)
                    .col(string_len(Subjects::Id, 36).primary_key())
                    .col(string_len_uniq(Subjects::ExternalId, 255))
                    .col(text_null(Subjects::Email))
                    .col(string_len_null(Subjects::Locale, 16))
                    .col(string_len_null(Subjects::Jurisdiction, 2))
                    .col(date_null(Subjects::BirthDate))
                    .col(string_len(Subjects::AgeStatus, 32))
                    .col(boolean(Subjects::Restricted))
                    .col(big_integer(Subjects::ConsentSeq))
                    .col(string_len(Subjects::ConsentHash, 64))
                    .col(timestamp_with_time_zone(Subjects::CreatedAt))
                    .col(timestamp_with_time_zone(Subjects::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Subjects::ErasedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Policies::Table)
                    .col(string_len(Policies::Id, 36).primary_key())
                    .col(string_len(Policies::Key, 64))
                    .col(integer(Policies::Version))
                    .col(string_len(Policies::Jurisdiction, 2))
                    .col(string_len(Policies::Language, 16))
                    .col(boolean(Policies::Authoritative))
                    .col(text(Policies::Title))
                    .col(text(Policies::Body))
                    .col(string_len(Policies::ContentSha256, 64))
                    .col(string_len(Policies::Status, 16))
                    .col(timestamp_with_time_zone(Policies::EffectiveAt))
                    .col(timestamp_with_time_zone_null(Policies::PublishedAt))
                    .col(timestamp_with_time_zone_null(Policies::RetiredAt))
                    .col(boolean(Policies::Material))
                    .col(text_null(Policies::ChangeSummary))
                    .col(timestamp_with_time_zone_null(Policies::ReconsentDoneAt))
                    .col(timestamp_with_time_zone(Policies::CreatedAt))
                    .col(timestamp_with_time_zone(Policies::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_policies_document")
                    .table(Policies::Table)
                    .col(Policies::Key)
                    .col(Policies::Version)
                    .col(Policies::Jurisdiction)
                    .col(Policies::Language)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Purposes::Table)
                    .col(string_len(Purposes::Key, 64).primary_key())
                    .col(text(Purposes::Texts))
                    .col(string_len(Purposes::LegalBasis, 32))
                    .col(boolean(Purposes::Required))
                    .col(boolean(Purposes::SeparateConsent))
                    .col(string_len_null(Purposes::SeparateConsentReason, 32))
                    .col(text(Purposes::Recipients))
                    .col(text(Purposes::DataCategories))
                    .col(string_len_null(Purposes::RetentionPeriod, 32))
                    .col(timestamp_with_time_zone_null(Purposes::ArchivedAt))
                    .col(timestamp_with_time_zone(Purposes::CreatedAt))
                    .col(timestamp_with_time_zone(Purposes::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ConsentEvents::Table)
                    .col(string_len(ConsentEvents::Id, 36).primary_key())
                    .col(string_len(ConsentEvents::SubjectId, 36))
                    .col(big_integer(ConsentEvents::Seq))
                    .col(string_len(ConsentEvents::PurposeKey, 64))
                    .col(string_len(ConsentEvents::Action, 16))
                    .col(string_len(ConsentEvents::PolicyId, 36))
                    .col(string_len(ConsentEvents::PolicySha256, 64))
                    .col(string_len(ConsentEvents::Actor, 16))
                    .col(string_len(ConsentEvents::Channel, 32))
                    .col(string_len(ConsentEvents::Language, 16))
                    .col(string_len(ConsentEvents::Jurisdiction, 2))
                    .col(text_null(ConsentEvents::UserAgent))
                    .col(string_len_null(ConsentEvents::Ip, 64))
                    .col(text_null(ConsentEvents::Reason))
                    .col(timestamp_with_time_zone(ConsentEvents::OccurredAt))
                    .col(timestamp_with_time_zone(ConsentEvents::RecordedAt))
                    .col(string_len(ConsentEvents::PrevHash, 64))
                    .col(string_len(ConsentEvents::Hash, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConsentEvents::Table, ConsentEvents::SubjectId)
                            .to(Subjects::Table, Subjects::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConsentEvents::Table, ConsentEvents::PurposeKey)
                            .to(Purposes::Table, Purposes::Key),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ConsentEvents::Table, ConsentEvents::PolicyId)
                            .to(Policies::Table, Policies::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_consent_events_chain")
                    .table(ConsentEvents::Table)
                    .col(ConsentEvents::SubjectId)
                    .col(ConsentEvents::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(string_len(Consents::SubjectId, 36))
                    .col(string_len(Consents::PurposeKey, 64))
                    .col(string_len(Consents::Status, 16))
                    .col(string_len(Consents::PolicyId, 36))
                    .col(string_len(Consents::PolicyKey, 64))
                    .col(integer(Consents::PolicyVersion))
                    .col(string_len(Consents::PolicyJurisdiction, 2))
                    .col(string_len(Consents::LastEventId, 36))
                    .col(boolean(Consents::NeedsReconsent))
                    .col(timestamp_with_time_zone_null(Consents::ReconsentDueAt))
                    .col(timestamp_with_time_zone(Consents::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(Consents::SubjectId)
                            .col(Consents::PurposeKey),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::SubjectId)
                            .to(Subjects::Table, Subjects::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::PurposeKey)
                            .to(Purposes::Table, Purposes::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_consents_policy")
                    .table(Consents::Table)
                    .col(Consents::PolicyKey)
                    .col(Consents::PolicyJurisdiction)
                    .col(Consents::NeedsReconsent)
                    .col(Consents::PolicyVersion)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_consents_purpose")
                    .table(Consents::Table)
                    .col(Consents::PurposeKey)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Consents::Table.into_iden(),
            ConsentEvents::Table.into_iden(),
            Purposes::Table.into_iden(),
            Policies::Table.into_iden(),
            Subjects::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Subjects {
    Table,
    Id,
    ExternalId,
    Email,
    Locale,
    Jurisdiction,
    BirthDate,
    AgeStatus,
    Restricted,
    ConsentSeq,
    ConsentHash,
    CreatedAt,
    UpdatedAt,
    ErasedAt,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    Id,
    Key,
    Version,
    Jurisdiction,
    Language,
    Authoritative,
    Title,
    Body,
    ContentSha256,
    Status,
    EffectiveAt,
    PublishedAt,
    RetiredAt,
    Material,
    ChangeSummary,
    ReconsentDoneAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Purposes {
    Table,
    Key,
    Texts,
    LegalBasis,
    Required,
    SeparateConsent,
    SeparateConsentReason,
    Recipients,
    DataCategories,
    RetentionPeriod,
    ArchivedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ConsentEvents {
    Table,
    Id,
    SubjectId,
    Seq,
    PurposeKey,
    Action,
    PolicyId,
    PolicySha256,
    Actor,
    Channel,
    Language,
    Jurisdiction,
    UserAgent,
    Ip,
    Reason,
    OccurredAt,
    RecordedAt,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    SubjectId,
    PurposeKey,
    Status,
    PolicyId,
    PolicyKey,
    PolicyVersion,
    PolicyJurisdiction,
    LastEventId,
    NeedsReconsent,
    ReconsentDueAt,
    UpdatedAt,
}
