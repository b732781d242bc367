//! SQLite reads on the calling thread.
//!
//! sqlx runs every SQLite statement on its connection's own thread and hands each row back
//! through a channel: for a read of one row, waking that thread and being woken by it costs
//! more than the read (a consent check is three index lookups in a mapped file). Reads that
//! hot run here instead, on connections of their own, in the calling task's thread. WAL lets
//! them read while the pool writes; each statement sees what was committed when it began.

use std::{path::PathBuf, str::FromStr, sync::Mutex, time::Duration};

use sea_orm::{DbErr, RuntimeErr, sqlx::sqlite::SqliteConnectOptions};

use super::SQLITE_MMAP_BYTES;

/// Connections kept open between reads at most: one per thread that reads at once.
const IDLE: usize = 8;
/// How long a read waits for a lock. Readers in WAL mode wait only while another process
/// recovers the log after a crash; a worker thread must not wait long.
const BUSY: Duration = Duration::from_millis(500);

/// Read-only connections to the SQLite file the pool writes.
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl Readers {
    /// For the database at `url`; connections are opened when first needed.
    pub fn new(url: &str) -> Result<Self, DbErr> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DbErr::Conn(RuntimeErr::Internal(e.to_string())))?;
        Ok(Self {
            path: options.get_filename().to_path_buf(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `read` on a connection of its own, on this thread. Keep it to a few index
    /// lookups: the thread serves nothing else meanwhile.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DbErr> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().map_err(unavailable)?,
        };
        let result = read(&conn).map_err(unavailable)?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE {
            idle.push(conn);
        }
        Ok(result)
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "mmap_size", SQLITE_MMAP_BYTES)?;
        Ok(conn)
    }
}

fn unavailable(e: rusqlite::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(e.to_string()))
}
