//! The client's account store on disk: one folder per directory URL, holding the account
//! (`account.json`) and its key (`account-key.pem`, mode 0600).
//!
//! Every write goes to a temporary file in the same folder and is renamed over the old one,
//! so a crash, a full disk or a failed serialisation leaves the previous file whole, never an
//! empty or half-written one.

use std::path::{Path, PathBuf};

use acme_proto::AccountKey;
use serde::{Deserialize, Serialize};

use crate::account::{account_key_from_pem, account_key_pem};
use crate::error::{Error, Result};

/// What the store keeps about an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// The directory URL it belongs to.
    pub directory: String,
    /// The account URL.
    pub url: String,
    /// The account key type (`es256`, ...).
    pub key_type: String,
    /// Contact URLs.
    #[serde(default)]
    pub contact: Vec<String>,
    /// The EAB key id it was bound with (never the HMAC key).
    #[serde(default)]
    pub eab_kid: Option<String>,
    /// Orders placed, newest last.
    #[serde(default)]
    pub orders: Vec<OrderRecord>,
}

/// One order the client placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The order URL.
    pub url: String,
    /// Its names.
    pub names: Vec<String>,
    /// The certificate URL, once issued.
    pub certificate: Option<String>,
    /// Where the certificate was written.
    pub out: Option<PathBuf>,
    /// When it was placed.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

/// The folder of one directory URL's account.
#[derive(Clone, Debug)]
pub struct AccountStore {
    dir: PathBuf,
}

impl AccountStore {
    /// The store for `directory_url` under `root`: `root/accounts/HOST_PORT/PATH`, every
    /// character but letters, digits, `.` and `-` replaced by `_`.
    pub fn for_directory(root: &Path, directory_url: &str) -> Self {
        let rest = directory_url
            .split_once("://")
            .map_or(directory_url, |(_, r)| r);
        let safe: String = rest
            .trim_end_matches('/')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            dir: root.join("accounts").join(safe),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.join("account-key.pem")
    }

    /// Whether an account is stored.
    pub fn exists(&self) -> bool {
        self.state_path().exists()
    }

    /// The stored account and its key; `None` when there is none. A damaged file is an error
    /// naming it.
    pub fn load(&self) -> Result<Option<(AccountState, AccountKey)>> {
        let state_path = self.state_path();
        if !state_path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let state: AccountState = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidInput(format!("{} is damaged: {e}", state_path.display()))
        })?;
        let key_path = self.key_path();
        let pem = std::fs::read_to_string(&key_path).map_err(|e| Error::io(&key_path, e))?;
        let key = account_key_from_pem(&pem)?;
        Ok(Some((state, key)))
    }

    /// Writes the account, atomically.
    pub fn save_state(&self, state: &AccountState) -> Result<()> {
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::InvalidInput(format!("cannot serialise the account: {e}")))?;
        write_atomic(&self.state_path(), &text, false)
    }

    /// Writes the account key (0600), atomically.
    pub fn save_key(&self, key: &AccountKey) -> Result<()> {
        let pem = account_key_pem(key)?;
        write_atomic(&self.key_path(), pem.expose().as_bytes(), true)
    }
}

impl AccountStore {
    /// Moves the account aside (`account.json.deactivated`) after a deactivation: the key
    /// stays for the record, the store no longer offers the account.
    pub fn retire(&self) -> Result<()> {
        let from = self.state_path();
        let to = self.dir.join("account.json.deactivated");
        std::fs::rename(&from, &to).map_err(|e| Error::io(&from, e))
    }

    /// Keeps a replaced account key (0600) beside the new one, after a rollover; returns
    /// where.
    pub fn save_old_key(&self, key: &AccountKey) -> Result<PathBuf> {
        let path = self.dir.join("account-key.pem.old");
        let pem = account_key_pem(key)?;
        write_atomic(&path, pem.expose().as_bytes(), true)?;
        Ok(path)
    }
}

/// [`acme_proto::file::write_atomic`] with this crate's error: `private` files are 0600.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    let access = if private {
        acme_proto::file::Access::OwnerOnly
    } else {
        acme_proto::file::Access::Public
    };
    acme_proto::file::write_atomic(path, contents, access).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `.tmp` files an atomic write may have left in `dir`.
    fn temporary_files(dir: &Path) -> Vec<std::fs::DirEntry> {
        std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn folders_per_directory_url() {
        let s = AccountStore::for_directory(
            Path::new("/r"),
            "https://127.0.0.1:14000/v2/InCommonRSAOV/",
        );
        assert_eq!(
            s.dir(),
            Path::new("/r/accounts/127.0.0.1_14000_v2_InCommonRSAOV")
        );
    }

    #[test]
    fn saves_and_loads_atomically_and_keeps_the_key_private() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::for_directory(root.path(), "https://ca.example/dir");
        assert!(store.load().expect("empty").is_none());
        let key =
            crate::generate_account_key(acme_proto::SignatureAlgorithm::Es256, 2048).expect("key");
        let state = AccountState {
            directory: "https://ca.example/dir".into(),
            url: "https://ca.example/acct/1".into(),
            key_type: "es256".into(),
            contact: vec!["mailto:a@example.edu".into()],
            eab_kid: Some("kid".into()),
            orders: Vec::new(),
        };
        store.save_key(&key).expect("key saved");
        store.save_state(&state).expect("state saved");
        let (loaded, loaded_key) = store.load().expect("readable").expect("stored");
        assert_eq!(loaded, state);
        assert_eq!(loaded_key.jwk(), key.jwk());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(store.dir().join("account-key.pem"))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = temporary_files(store.dir());
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_failed_write_leaves_what_was_there_and_no_temporary_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("account.json");
        write_atomic(&path, b"{\"old\": true}", false).expect("first write");
        write_atomic(&path, b"{\"new\": true}", false).expect("second write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("there"),
            "{\"new\": true}"
        );
        // A write that cannot rename over its target (here a non-empty directory) fails,
        // leaves the target as it was and removes its temporary file.
        let other = root.path().join("other.json");
        std::fs::create_dir(&other).expect("a directory");
        std::fs::write(other.join("keep"), "x").expect("non-empty");
        assert!(write_atomic(&other, b"new", false).is_err());
        assert!(other.join("keep").exists(), "the directory is untouched");
        let leftovers = temporary_files(root.path());
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_damaged_account_file_is_named() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = AccountStore::for_directory(root.path(), "https://ca.example/dir");
        std::fs::create_dir_all(store.dir()).expect("dir");
        std::fs::write(store.dir().join("account.json"), "{").expect("write");
        let err = store.load().expect_err("damaged").to_string();
        assert!(err.contains("account.json is damaged"), "{err}");
    }
}
