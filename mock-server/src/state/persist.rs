//! The optional persistent store (SQLite, write-through): organisations and credentials,
//! accounts, orders, authorizations, challenges, certificates, revocations and transcripts
//! survive a restart or a crash. Each request's changes are written in one transaction, so a
//! `kill -9` leaves either all of them or none (WAL journal).
//!
//! The in-memory maps stay the server's working state; this only mirrors them.

use std::path::Path;
use std::sync::Mutex;

use acme_proto::transcript::Exchange;
use rusqlite::{Connection, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What kind of record a row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// [`super::Account`].
    Account,
    /// [`super::Order`].
    Order,
    /// [`super::Authz`].
    Authz,
    /// [`super::Challenge`].
    Challenge,
    /// [`super::IssuedCert`].
    Cert,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Order => "order",
            Self::Authz => "authz",
            Self::Challenge => "challenge",
            Self::Cert => "cert",
        }
    }
}

/// One row to write: its JSON, or why the record could not be serialized (then the
/// transaction it is part of is not written at all, rather than with an empty row).
#[derive(Debug)]
pub struct Row {
    kind: Kind,
    id: String,
    json: Result<String, String>,
}

impl Row {
    /// A record of `kind` with `id`.
    pub fn new(kind: Kind, id: &str, value: &impl Serialize) -> Self {
        Self {
            kind,
            id: id.to_owned(),
            json: serde_json::to_string(value).map_err(|e| e.to_string()),
        }
    }
}

/// The SQLite file.
#[derive(Debug)]
pub struct Persist {
    conn: Mutex<Connection>,
}

impl Persist {
    /// Opens (or creates, mode 0600) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        let fail =
            |e: rusqlite::Error| format!("cannot open the state database {}: {e}", path.display());
        let conn = Connection::open(path).map_err(fail)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS records (
                 kind TEXT NOT NULL, id TEXT NOT NULL, json TEXT NOT NULL,
                 PRIMARY KEY (kind, id));
             CREATE TABLE IF NOT EXISTS orgs (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS transcripts (seq INTEGER PRIMARY KEY, json TEXT NOT NULL);",
        )
        .map_err(fail)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Writes rows in one transaction: all or none.
    pub fn write(&self, rows: &[Row]) {
        let result = self
            .conn
            .lock()
            .map_err(|_| "poisoned".to_owned())
            .and_then(|mut conn| {
                let tx = conn.transaction().map_err(|e| e.to_string())?;
                for row in rows {
                    let json = row.json.as_ref().map_err(|e| {
                        format!("cannot serialize {} {}: {e}", row.kind.name(), row.id)
                    })?;
                    tx.execute(
                        "INSERT INTO records (kind, id, json) VALUES (?1, ?2, ?3)
                     ON CONFLICT (kind, id) DO UPDATE SET json = excluded.json",
                        params![row.kind.name(), row.id, json],
                    )
                    .map_err(|e| e.to_string())?;
                }
                tx.commit().map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::error!(error = %e, "state database write failed");
        }
    }

    /// Replaces the organisation snapshot.
    pub fn write_orgs(&self, record: &impl Serialize) {
        let json = match serde_json::to_string(record) {
            Ok(json) => json,
            Err(e) => {
                // The stored snapshot stays as it was rather than become an empty one.
                tracing::error!(error = %e, "cannot serialize the organisations; not saved");
                return;
            }
        };
        let result = self
            .conn
            .lock()
            .map_err(|_| "poisoned".to_owned())
            .and_then(|conn| {
                conn.execute(
                    "INSERT INTO orgs (id, json) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                    params![json],
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::error!(error = %e, "state database write failed");
        }
    }

    /// Appends a transcript record.
    pub fn write_exchange(&self, exchange: &Exchange) {
        let json = match serde_json::to_string(exchange) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, seq = exchange.seq, "cannot serialize an exchange; not saved");
                return;
            }
        };
        if let Ok(conn) = self.conn.lock()
            && let Err(e) = conn.execute(
                "INSERT OR REPLACE INTO transcripts (seq, json) VALUES (?1, ?2)",
                params![exchange.seq as i64, json],
            )
        {
            tracing::error!(error = %e, "state database write failed");
        }
    }

    /// Every record of `kind`.
    pub fn load<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, String> {
        let conn = self.conn.lock().map_err(|_| "poisoned".to_owned())?;
        let mut stmt = conn
            .prepare("SELECT json FROM records WHERE kind = ?1")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![kind.name()], |r| r.get::<_, String>(0))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for row in rows {
            let json = row.map_err(|e| e.to_string())?;
            out.push(
                serde_json::from_str(&json)
                    .map_err(|e| format!("a stored {} is damaged: {e}", kind.name()))?,
            );
        }
        Ok(out)
    }

    /// The stored organisation snapshot, if any.
    pub fn load_orgs<T: DeserializeOwned>(&self) -> Result<Option<T>, String> {
        let conn = self.conn.lock().map_err(|_| "poisoned".to_owned())?;
        let json: Option<String> = conn
            .query_row("SELECT json FROM orgs WHERE id = 1", [], |r| r.get(0))
            .ok();
        json.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| format!("the stored organisations are damaged: {e}"))
        })
        .transpose()
    }

    /// Every stored transcript record, in order.
    pub fn load_exchanges(&self) -> Result<Vec<Exchange>, String> {
        let conn = self.conn.lock().map_err(|_| "poisoned".to_owned())?;
        let mut stmt = conn
            .prepare("SELECT json FROM transcripts ORDER BY seq")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| e.to_string())?;
        rows.map(|r| {
            let json = r.map_err(|e| e.to_string())?;
            serde_json::from_str(&json)
                .map_err(|e| format!("a stored transcript record is damaged: {e}"))
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A record that cannot be serialized (as a map with non-string keys cannot).
    struct Unserializable;

    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("planted failure"))
        }
    }

    #[test]
    fn a_record_that_cannot_be_serialized_writes_nothing_of_its_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = Persist::open(&dir.path().join("state.sqlite")).unwrap();
        let good = serde_json::json!({"id": "a"});
        db.write(&[Row::new(Kind::Account, "a", &good)]);
        // One transaction: the good row and a bad one. Neither is written; no empty row.
        let other = serde_json::json!({"id": "b"});
        db.write(&[
            Row::new(Kind::Account, "b", &other),
            Row::new(Kind::Account, "c", &Unserializable),
        ]);
        let rows: Vec<serde_json::Value> = db.load(Kind::Account).unwrap();
        assert_eq!(rows, [good]);
        // The organisations snapshot keeps its last good state.
        db.write_orgs(&serde_json::json!({"orgs": 1}));
        db.write_orgs(&Unserializable);
        let orgs: Option<serde_json::Value> = db.load_orgs().unwrap();
        assert_eq!(orgs, Some(serde_json::json!({"orgs": 1})));
    }
}
