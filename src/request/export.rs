//! Packages for access and export requests: everything Consentry holds about the person plus
//! what the main app or each registered system sent, as one JSON document (access, GDPR Art
//! 15) or a ZIP of that document, CSV tables and a folder per system (export, GDPR Art 20,
//! PIPL Art 45(3)).
//!
//! A package is written page by page from the database straight into an encrypted file under
//! `<data_dir>/exports/`, so memory stays flat however much a person has. Encryption is the
//! STREAM construction of the `chacha20poly1305` crate (ChaCha20-Poly1305 in 64 KiB chunks; a
//! random 7-byte prefix, a chunk counter and a last-chunk flag form each nonce, so chunks cannot
//! be reordered, dropped or truncated unnoticed). The file header names the key by its id and is
//! bound to every chunk as associated data. Packages are sealed with the current key and opened
//! with whichever configured key sealed them, so a key can be rotated while packages made with
//! the old one are still waiting to be downloaded. The download token is random, stored as a
//! digest, and expires with the package.

use std::io::{self, Write};

use chacha20poly1305::{
    ChaCha20Poly1305,
    aead::{
        Payload,
        stream::{DecryptorBE32, EncryptorBE32},
    },
};
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Select,
};
use serde_json::{Value, json};

use super::{Request, RequestError, RequestType, model};
use crate::{
    clock,
    config::Config,
    consent, crypto,
    db::{Db, Tx},
    subject,
};

/// Plaintext bytes per encrypted chunk.
const CHUNK: usize = 64 * 1024;
/// Encryption adds a 16-byte tag to each chunk.
const SEALED_CHUNK: usize = CHUNK + 16;
/// Header of packages sealed before keys had ids: magic, then the nonce prefix. Such a package
/// was sealed with the only key there was, which is taken to be the current one.
const MAGIC_V1: &[u8; 4] = b"CSX1";
/// Header: magic, the key id, the nonce prefix.
const MAGIC: &[u8; 4] = b"CSX2";
const KEY_ID: usize = 8;
const PREFIX: usize = 7;
/// Rows read from the database at a time.
const PAGE: u64 = 1000;

/// The keys of export packages: the current one seals, each one opens what it sealed.
struct Keys {
    current: (KeyId, [u8; 32]),
    previous: Vec<(KeyId, [u8; 32])>,
}

type KeyId = [u8; KEY_ID];

/// A key's id: the start of a digest of the key, so it names the key without revealing it.
fn key_id(key: &[u8; 32]) -> KeyId {
    let digest = crypto::sha256_hex(&[b"consentry export key id:".as_slice(), key].concat());
    let mut id = [0u8; KEY_ID];
    id.copy_from_slice(&digest.as_bytes()[..KEY_ID]);
    id
}

/// The current key from config, or the one generated into `<data_dir>/export.key`, and the
/// previous keys that still open older packages.
fn keys(config: &Config) -> Result<Keys, RequestError> {
    let current = crypto::key(
        config.requests.export_key.as_ref(),
        &config.data_dir.join("export.key"),
    )
    .map_err(RequestError::Export)?;
    let previous = config
        .requests
        .export_previous_keys
        .iter()
        .map(|k| crypto::parse_key(k.expose()).map(|key| (key_id(&key), key)))
        .collect::<Result<_, _>>()
        .map_err(RequestError::Export)?;
    Ok(Keys {
        current: (key_id(&current), current),
        previous,
    })
}

impl Keys {
    fn by_id(&self, id: &KeyId) -> Option<&[u8; 32]> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(known, _)| crypto::constant_time_eq(known, id))
            .map(|(_, key)| key)
    }
}

fn export_err(e: impl std::fmt::Display) -> RequestError {
    RequestError::Export(e.to_string())
}

/// Encrypts everything written to it, chunk by chunk.
struct SealingWriter<W: Write> {
    inner: W,
    header: Vec<u8>,
    encryptor: EncryptorBE32<ChaCha20Poly1305>,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> SealingWriter<W> {
    fn new(mut inner: W, (id, key): &(KeyId, [u8; 32])) -> io::Result<Self> {
        let prefix = crypto::random_bytes::<PREFIX>();
        let header = [MAGIC.as_slice(), id, &prefix].concat();
        inner.write_all(&header)?;
        Ok(Self {
            inner,
            written: header.len() as u64,
            header,
            encryptor: EncryptorBE32::new(key.into(), (&prefix).into()),
            buf: Vec::with_capacity(CHUNK),
        })
    }

    /// Seals the last chunk (always shorter than a full one, possibly empty) and returns the
    /// file's size.
    fn finish(mut self) -> io::Result<u64> {
        let payload = Payload {
            msg: &self.buf,
            aad: &self.header,
        };
        let sealed = self
            .encryptor
            .encrypt_last(payload)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&sealed)?;
        self.inner.flush()?;
        Ok(self.written + sealed.len() as u64)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == CHUNK {
            let payload = Payload {
                msg: &self.buf,
                aad: &self.header,
            };
            let sealed = self
                .encryptor
                .encrypt_next(payload)
                .map_err(|_| io::Error::other("the package is too large"))?;
            self.inner.write_all(&sealed)?;
            self.written += sealed.len() as u64;
            self.buf.clear();
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decrypts a package file chunk by chunk.
pub struct Opener {
    header: Vec<u8>,
    /// `None` once the last chunk is opened.
    decryptor: Option<DecryptorBE32<ChaCha20Poly1305>>,
}

impl Opener {
    /// Bytes of header before the first chunk.
    pub const HEADER: usize = MAGIC.len() + KEY_ID + PREFIX;
    /// Bytes of the header of a package sealed before keys had ids.
    const HEADER_V1: usize = MAGIC_V1.len() + PREFIX;
    /// Bytes of a full sealed chunk.
    pub const CHUNK: usize = SEALED_CHUNK;

    /// How many bytes of header a file starting with `magic` has.
    pub fn header_len(magic: &[u8]) -> Result<usize, RequestError> {
        match magic {
            m if m == MAGIC => Ok(Self::HEADER),
            m if m == MAGIC_V1 => Ok(Self::HEADER_V1),
            _ => Err(RequestError::Export("not a package file".into())),
        }
    }

    /// Reads the header of a package file and finds the key that sealed it. A package whose
    /// key is no longer configured is gone, as far as anyone can tell.
    pub fn new(config: &Config, header: &[u8]) -> Result<Self, RequestError> {
        let keys = keys(config)?;
        let magic = header.get(..MAGIC.len()).unwrap_or_default();
        if header.len() != Self::header_len(magic)? {
            return Err(RequestError::Export("not a package file".into()));
        }
        let (key, aad, prefix) = if magic == MAGIC_V1 {
            (&keys.current.1, Vec::new(), &header[MAGIC_V1.len()..])
        } else {
            let id: KeyId = header[MAGIC.len()..MAGIC.len() + KEY_ID]
                .try_into()
                .expect("the header has a key id");
            let key = keys.by_id(&id).ok_or_else(|| {
                tracing::warn!(
                    key_id = %String::from_utf8_lossy(&id),
                    "an export package was sealed with a key that is no longer configured"
                );
                RequestError::ExportGone
            })?;
            (key, header.to_vec(), &header[MAGIC.len() + KEY_ID..])
        };
        Ok(Self {
            header: aad,
            decryptor: Some(DecryptorBE32::new(key.into(), prefix.into())),
        })
    }

    /// Decrypts the next chunk; a chunk shorter than a full one is the last. A file cut short
    /// fails here because its last chunk is missing.
    pub fn open(&mut self, sealed: &[u8]) -> io::Result<Vec<u8>> {
        let damaged = || io::Error::other("the package is damaged or was tampered with");
        let payload = Payload {
            msg: sealed,
            aad: &self.header,
        };
        if sealed.len() < SEALED_CHUNK {
            let decryptor = self
                .decryptor
                .take()
                .ok_or_else(|| io::Error::other("data after the last chunk"))?;
            decryptor.decrypt_last(payload).map_err(|_| damaged())
        } else {
            self.decryptor
                .as_mut()
                .ok_or_else(|| io::Error::other("data after the last chunk"))?
                .decrypt_next(payload)
                .map_err(|_| damaged())
        }
    }

    pub fn is_done(&self) -> bool {
        self.decryptor.is_none()
    }
}

/// A package written to disk.
pub struct Package {
    file_name: String,
    media_type: &'static str,
    size: i64,
    token: String,
}

impl Package {
    /// Stores the package's row with a digest of its token; returns when it expires.
    pub async fn record(
        &self,
        tx: &Tx,
        request_id: &str,
        config: &Config,
    ) -> Result<DateTime<Utc>, RequestError> {
        let now = clock::now();
        let expires_at = now + TimeDelta::days(i64::from(config.requests.export_days));
        model::exports::Entity::insert(model::exports::ActiveModel {
            request_id: Set(request_id.to_string()),
            token_hash: Set(crypto::sha256_hex(self.token.as_bytes())),
            file_name: Set(self.file_name.clone()),
            media_type: Set(self.media_type.to_string()),
            size: Set(self.size),
            created_at: Set(now),
            expires_at: Set(expires_at),
            downloaded_at: Set(None),
            purged_at: Set(None),
        })
        .exec_without_returning(tx)
        .await?;
        Ok(expires_at)
    }

    /// The link in the "export ready" email: the portal's page, which downloads with the token.
    pub fn download_url(&self, config: &Config, request: &Request) -> String {
        format!(
            "{}/requests/{}/export?token={}",
            config.portal_url(),
            request.id,
            self.token
        )
    }
}

/// What the systems outside Consentry sent for a package.
#[derive(Debug, Default, Clone)]
pub struct Parts {
    /// The main app's data, from its single job (no system registered).
    pub main_app: Option<Value>,
    /// Each registered system's data: its key, its name and what it sent.
    pub systems: Vec<(String, String, Value)>,
}

/// Seals a system's part of a package for the time it waits in the database for the others,
/// with the current export key.
pub fn seal_part(config: &Config, part: &Value) -> Result<String, RequestError> {
    let keys = keys(config)?;
    Ok(crypto::seal(&keys.current.1, part.to_string().as_bytes()))
}

/// Opens what [`seal_part`] sealed, with whichever configured export key sealed it.
pub fn open_part(config: &Config, sealed: &str) -> Result<Value, RequestError> {
    let keys = keys(config)?;
    std::iter::once(&keys.current)
        .chain(&keys.previous)
        .find_map(|(_, key)| crypto::open(key, sealed))
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            RequestError::Export("a system's part does not open with any export key".into())
        })
}

/// Writes the package for an access or export request.
pub async fn build(
    conn: &impl ConnectionTrait,
    config: &Config,
    request: &Request,
    parts: &Parts,
) -> Result<Package, RequestError> {
    let keys = keys(config)?;
    let dir = config.data_dir.join("exports");
    std::fs::create_dir_all(&dir).map_err(export_err)?;
    let file_name = format!("{}.pkg", request.id);
    let file = std::fs::File::create(dir.join(&file_name)).map_err(export_err)?;
    let mut sealed =
        SealingWriter::new(io::BufWriter::new(file), &keys.current).map_err(export_err)?;
    let media_type = if request.kind == RequestType::Export {
        let mut zip = zip::ZipWriter::new_stream(sealed);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("package.json", options)
            .map_err(export_err)?;
        write_json(conn, &mut zip, request, parts, true).await?;
        for (key, _, data) in &parts.systems {
            zip.start_file(format!("systems/{key}/data.json"), options)
                .map_err(export_err)?;
            serde_json::to_writer_pretty(&mut zip, data).map_err(export_err)?;
        }
        if let Some(subject_id) = &request.subject_id {
            zip.start_file("consents.csv", options)
                .map_err(export_err)?;
            write_csv(conn, &mut zip, consents(subject_id)).await?;
            zip.start_file("consent_events.csv", options)
                .map_err(export_err)?;
            write_csv(conn, &mut zip, consent_events(subject_id)).await?;
            zip.start_file("data_items.csv", options)
                .map_err(export_err)?;
            write_csv(conn, &mut zip, data_items(subject_id)).await?;
        }
        sealed = zip.finish().map_err(export_err)?.into_inner();
        "application/zip"
    } else {
        write_json(conn, &mut sealed, request, parts, false).await?;
        "application/json"
    };
    let size = sealed.finish().map_err(export_err)?;
    Ok(Package {
        file_name,
        media_type,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        token: crypto::random_token(),
    })
}

/// A table of the package: its query and how it is paged.
type Table<E> = (Select<E>, Paging<<E as EntityTrait>::Column>);

fn consents(subject_id: &str) -> Table<consent::model::consents::Entity> {
    use consent::model::consents::{Column, Entity};
    let select = Entity::find()
        .filter(Column::SubjectId.eq(subject_id))
        .order_by_asc(Column::PurposeKey);
    (select, Paging::Offset)
}

/// Events in the order of the subject's chain.
fn consent_events(subject_id: &str) -> Table<consent::model::events::Entity> {
    use consent::model::events::{Column, Entity};
    let select = Entity::find().filter(Column::SubjectId.eq(subject_id));
    (select, Paging::After(Column::Seq))
}

fn data_items(subject_id: &str) -> Table<crate::retention::items::entity::Entity> {
    use crate::retention::items::entity::{Column, Entity};
    let select = Entity::find().filter(Column::SubjectId.eq(subject_id));
    (select, Paging::After(Column::ExternalRef))
}

fn requests(subject_id: &str) -> Table<model::Entity> {
    let select = model::Entity::find()
        .filter(model::Column::SubjectId.eq(subject_id))
        .order_by_asc(model::Column::ReceivedAt);
    (select, Paging::Offset)
}

/// How a query is read page by page.
enum Paging<C> {
    /// By a column that is unique for the subject and indexed with it: each page starts after
    /// the previous one's last value, so reading stays linear however many rows there are.
    After(C),
    /// By offset, for the small tables whose key is composite.
    Offset,
}

/// Feeds a query's rows, as JSON objects, to `each` one page at a time.
async fn each_row<E, F>(
    conn: &impl ConnectionTrait,
    select: Select<E>,
    paging: Paging<E::Column>,
    mut each: F,
) -> Result<(), RequestError>
where
    E: EntityTrait,
    E::Model: Sync,
    F: FnMut(&Value) -> io::Result<()>,
{
    match paging {
        Paging::Offset => {
            let mut pages = select.into_json().paginate(conn, PAGE);
            while let Some(page) = pages.fetch_and_next().await? {
                for row in &page {
                    each(row).map_err(export_err)?;
                }
            }
        }
        Paging::After(column) => {
            let name = sea_orm::IdenStatic::as_str(&column);
            let mut last: Option<sea_orm::Value> = None;
            loop {
                let mut cursor = select.clone().cursor_by(column);
                if let Some(key) = last.take() {
                    cursor.after(key);
                }
                cursor.first(PAGE);
                let page = cursor.into_json().all(conn).await?;
                for row in &page {
                    each(row).map_err(export_err)?;
                }
                last = page.last().and_then(|row| match &row[name] {
                    Value::String(s) => Some(sea_orm::Value::from(s.clone())),
                    Value::Number(n) => n.as_i64().map(sea_orm::Value::from),
                    _ => None,
                });
                if (page.len() as u64) < PAGE || last.is_none() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Writes a JSON array of a query's rows.
async fn write_array<E: EntityTrait<Model: Sync>>(
    conn: &impl ConnectionTrait,
    out: &mut impl Write,
    (select, paging): (Select<E>, Paging<E::Column>),
) -> Result<(), RequestError> {
    out.write_all(b"[").map_err(export_err)?;
    let mut first = true;
    each_row(conn, select, paging, |row| {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        serde_json::to_writer(&mut *out, row).map_err(io::Error::other)
    })
    .await?;
    out.write_all(b"]").map_err(export_err)
}

/// The package document. Internal columns that mean nothing to the person (chain bookkeeping
/// of the subject row) are left out; the consent events keep their hashes, which are the
/// proof of each decision. Each system's data is in the document, or with `in_folders` named
/// here and written to its own folder beside it.
async fn write_json(
    conn: &impl ConnectionTrait,
    out: &mut impl Write,
    request: &Request,
    parts: &Parts,
    in_folders: bool,
) -> Result<(), RequestError> {
    let head = json!({
        "request": {
            "id": request.id,
            "type": request.kind.to_value(),
            "law": request.law.to_value(),
            "received_at": clock::canonical(request.received_at),
        },
        "generated_at": clock::canonical(clock::now()),
    });
    let head = head.to_string();
    // Open the object and keep it open for the sections that follow.
    out.write_all(&head.as_bytes()[..head.len() - 1])
        .map_err(export_err)?;
    let profile = match &request.subject_id {
        Some(id) => subject::model::Entity::find_by_id(id.as_str())
            .into_json()
            .one(conn)
            .await?
            .map(|mut p| {
                if let Some(map) = p.as_object_mut() {
                    map.remove("consent_seq");
                    map.remove("consent_hash");
                }
                p
            }),
        None => None,
    };
    write!(out, ",\"profile\":{}", profile.unwrap_or(Value::Null)).map_err(export_err)?;
    if let Some(subject_id) = &request.subject_id {
        out.write_all(b",\"consents\":").map_err(export_err)?;
        write_array(conn, out, consents(subject_id)).await?;
        out.write_all(b",\"consent_events\":").map_err(export_err)?;
        write_array(conn, out, consent_events(subject_id)).await?;
        out.write_all(b",\"requests\":").map_err(export_err)?;
        write_array(conn, out, requests(subject_id)).await?;
        out.write_all(b",\"data_items\":").map_err(export_err)?;
        write_array(conn, out, data_items(subject_id)).await?;
        // A handful of rows per person: how long they chose to have each category kept.
        let choices = crate::retention::choices::of_subject(conn, subject_id).await?;
        let choices: Vec<Value> = choices
            .into_iter()
            .map(|c| {
                json!({"category": c.category, "period": c.period,
                       "chosen_at": clock::canonical(c.chosen_at), "channel": c.channel})
            })
            .collect();
        write!(out, ",\"retention_choices\":{}", Value::Array(choices)).map_err(export_err)?;
    }
    if !parts.systems.is_empty() {
        let systems: serde_json::Map<String, Value> = parts
            .systems
            .iter()
            .map(|(key, name, data)| {
                let part = if in_folders {
                    json!({"name": name, "folder": format!("systems/{key}/")})
                } else {
                    json!({"name": name, "data": data})
                };
                (key.clone(), part)
            })
            .collect();
        write!(out, ",\"systems\":{}", Value::Object(systems)).map_err(export_err)?;
    }
    write!(
        out,
        ",\"main_app\":{}}}",
        parts.main_app.clone().unwrap_or(Value::Null)
    )
    .map_err(export_err)
}

/// Writes a query's rows as CSV (RFC 4180, the `csv` crate), with the columns of the first row
/// as header, every cell safe to open in a spreadsheet (see [`crate::spreadsheet`]).
async fn write_csv<E: EntityTrait<Model: Sync>>(
    conn: &impl ConnectionTrait,
    out: &mut impl Write,
    (select, paging): (Select<E>, Paging<E::Column>),
) -> Result<(), RequestError> {
    let mut writer = csv::Writer::from_writer(out);
    let mut columns: Option<Vec<String>> = None;
    each_row(conn, select, paging, |row| {
        let Some(map) = row.as_object() else {
            return Ok(());
        };
        let columns = match &columns {
            Some(c) => c,
            None => {
                let names: Vec<String> = map.keys().cloned().collect();
                writer.write_record(&names).map_err(io::Error::other)?;
                columns.insert(names)
            }
        };
        let cells = columns.iter().map(|c| match map.get(c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => crate::spreadsheet::safe(s).into_owned(),
            Some(other) => crate::spreadsheet::safe(&other.to_string()).into_owned(),
        });
        writer.write_record(cells).map_err(io::Error::other)
    })
    .await?;
    writer.flush().map_err(export_err)
}

/// Whether downloading a request's package needs the person signed in as well as the emailed
/// token: a request filed in the portal does (its email says so, and a leaked email alone must
/// not be enough); one filed by email has only the token.
pub fn needs_sign_in(request: &Request) -> bool {
    request.source == "portal"
}

/// The stored package of a request, if `token` opens it and it has not expired. The token is
/// looked up by its SHA-256; it carries 256 random bits, so the lookup's timing reveals nothing
/// about other tokens.
pub async fn peek(
    conn: &impl ConnectionTrait,
    request_id: &str,
    token: &str,
) -> Result<model::exports::Model, RequestError> {
    let row = model::exports::Entity::find()
        .filter(model::exports::Column::TokenHash.eq(crypto::sha256_hex(token.as_bytes())))
        .one(conn)
        .await?
        .filter(|row| row.request_id == request_id)
        .ok_or(RequestError::NotFound)?;
    if row.purged_at.is_some() || row.expires_at <= clock::now() {
        return Err(RequestError::ExportGone);
    }
    Ok(row)
}

/// A request's package while it can be downloaded, without its token: for the request's page,
/// which points to the email that carries the link.
pub async fn ready(
    conn: &impl ConnectionTrait,
    request_id: &str,
) -> Result<Option<model::exports::Model>, sea_orm::DbErr> {
    Ok(model::exports::Entity::find_by_id(request_id)
        .one(conn)
        .await?
        .filter(|row| row.purged_at.is_none() && row.expires_at > clock::now()))
}

/// [`peek`], recording the download.
pub async fn find(
    tx: &mut Tx,
    request_id: &str,
    token: &str,
) -> Result<model::exports::Model, RequestError> {
    let row = peek(&*tx, request_id, token).await?;
    model::exports::Entity::update_many()
        .col_expr(
            model::exports::Column::DownloadedAt,
            sea_orm::prelude::Expr::value(clock::now()),
        )
        .filter(model::exports::Column::RequestId.eq(request_id))
        .exec(&*tx)
        .await?;
    Ok(row)
}

/// Deletes the files of expired packages and marks them purged, a page per transaction: a job
/// of its own (hourly, and in every purge run). Returns how many were purged. A file already
/// gone counts as purged.
pub async fn purge_expired(
    db: &Db,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<u64, RequestError> {
    use sea_orm::QuerySelect;

    let dir = config.data_dir.join("exports");
    let mut purged = 0;
    loop {
        let expired = expired(now).limit(PAGE).all(db.conn()).await?;
        for row in &expired {
            match std::fs::remove_file(dir.join(&row.file_name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(export_err(e)),
            }
        }
        let tx = db.begin().await?;
        model::exports::Entity::update_many()
            .col_expr(
                model::exports::Column::PurgedAt,
                sea_orm::prelude::Expr::value(now),
            )
            .filter(
                model::exports::Column::RequestId
                    .is_in(expired.iter().map(|row| row.request_id.as_str())),
            )
            .exec(&tx)
            .await?;
        tx.commit().await?;
        purged += expired.len() as u64;
        if (expired.len() as u64) < PAGE {
            return Ok(purged);
        }
    }
}

/// Packages past their download period and not yet deleted.
fn expired(now: DateTime<Utc>) -> Select<model::exports::Entity> {
    model::exports::Entity::find()
        .filter(model::exports::Column::ExpiresAt.lte(now))
        .filter(model::exports::Column::PurgedAt.is_null())
}

/// How many packages [`purge_expired`] would delete at `now`.
pub async fn count_expired(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    expired(now).count(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(current: [u8; 32], previous: &[[u8; 32]]) -> Config {
        use base64::Engine as _;
        let encode = |k: &[u8; 32]| {
            crate::config::Secret::new(base64::engine::general_purpose::STANDARD.encode(k))
        };
        let mut config = Config::default();
        config.requests.export_key = Some(encode(&current));
        config.requests.export_previous_keys = previous.iter().map(encode).collect();
        config
    }

    fn seal(config: &Config, data: &[u8]) -> Vec<u8> {
        let mut file = Vec::new();
        let mut w = SealingWriter::new(&mut file, &keys(config).unwrap().current).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap();
        file
    }

    fn open(config: &Config, file: &[u8]) -> Result<Vec<u8>, RequestError> {
        let header = Opener::header_len(&file[..4])?;
        let mut opener = Opener::new(config, &file[..header])?;
        let mut plain = Vec::new();
        for chunk in file[header..].chunks(SEALED_CHUNK) {
            plain.extend(opener.open(chunk).map_err(export_err)?);
        }
        if !opener.is_done() {
            return Err(RequestError::Export("truncated".into()));
        }
        Ok(plain)
    }

    #[test]
    fn sealed_chunks_open_in_order_and_tampering_is_caught() {
        let config = config_with([7; 32], &[]);
        let data: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| (i % 251) as u8).collect();
        let file = seal(&config, &data);
        assert_eq!(open(&config, &file).unwrap(), data);
        let mut flipped = file.clone();
        flipped[100] ^= 1;
        assert!(open(&config, &flipped).is_err());
        // The header is bound to the chunks: a changed key id or prefix does not open.
        let mut relabelled = file.clone();
        relabelled[Opener::HEADER - 1] ^= 1;
        assert!(open(&config, &relabelled).is_err());
        // Dropping the last chunk leaves a file whose end is missing.
        let cut = &file[..Opener::HEADER + 2 * SEALED_CHUNK];
        assert!(open(&config, cut).is_err());
    }

    #[test]
    fn a_rotated_key_still_opens_what_it_sealed_and_a_dropped_one_is_gone() {
        let old = config_with([1; 32], &[]);
        let file = seal(&old, b"made before the rotation");
        let rotated = config_with([2; 32], &[[1; 32]]);
        assert_eq!(open(&rotated, &file).unwrap(), b"made before the rotation");
        let new = seal(&rotated, b"made after");
        assert_eq!(&new[4..4 + KEY_ID], &key_id(&[2; 32]));
        let dropped = config_with([2; 32], &[]);
        assert!(matches!(
            open(&dropped, &file),
            Err(RequestError::ExportGone)
        ));
    }

    /// Packages sealed before keys had ids (the same STREAM nonces, no associated data) still
    /// open with the current key.
    #[test]
    fn packages_sealed_before_key_ids_still_open() {
        let key = [9u8; 32];
        let prefix = [3u8; PREFIX];
        let mut encryptor = EncryptorBE32::<ChaCha20Poly1305>::new((&key).into(), (&prefix).into());
        let full = vec![5u8; CHUNK];
        let mut file = [MAGIC_V1.as_slice(), &prefix].concat();
        file.extend(encryptor.encrypt_next(full.as_slice()).unwrap());
        file.extend(encryptor.encrypt_last(b"tail".as_slice()).unwrap());
        let plain = open(&config_with(key, &[]), &file).unwrap();
        assert_eq!(plain.len(), CHUNK + 4);
        assert!(plain.ends_with(b"tail"));
    }
}
