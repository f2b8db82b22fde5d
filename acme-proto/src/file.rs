//! Writing files that hold keys, credentials or state: atomically, and owner-only where they
//! hold a secret.
//!
//! Every crate of the workspace writes its key files, `ready.json`, account state and client
//! config files through [`write_atomic`], so the rules live in one place: a reader sees the old
//! file or the new one, never a part; a secret file is created with mode 0600 and is never
//! readable by others, not even for a moment; a planted symlink at the temporary name cannot
//! redirect the write.

use std::io::Write as _;
use std::path::Path;

/// Who may read a file [`write_atomic`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Mode 0600: private keys, EAB HMAC keys, config files that hold one.
    OwnerOnly,
    /// Mode 0644: certificates, public state.
    Public,
}

/// Writes `contents` to a fresh temporary file beside `path` and renames it over `path`,
/// creating the parent directory if needed. The temporary file is created exclusively under a
/// random name, with the final mode from the start (on Unix); it is removed if anything fails.
pub fn write_atomic(path: &Path, contents: &[u8], access: Access) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    // tempfile creates 0600 files; a public file is widened before its contents are written.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = match access {
            Access::OwnerOnly => 0o600,
            Access::Public => 0o644,
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = access;
    tmp.write_all(contents)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("state.json");
        write_atomic(&path, b"{\"old\": true}", Access::Public).unwrap();
        write_atomic(&path, b"{\"new\": true}", Access::Public).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"new\": true}");
        assert!(leftovers(&path.with_file_name("")).is_empty());
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o644);
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_is_owner_only_even_when_it_replaces_a_readable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eab.ini");
        std::fs::write(&path, "old").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"eab-hmac-key = x", Access::OwnerOnly).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"eab-hmac-key = x");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let path = dir.path().join("key.pem");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomic(&path, b"secret", Access::OwnerOnly).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: the rename fails, the directory stays.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), "kept").unwrap();
        assert!(write_atomic(&path, b"new", Access::Public).is_err());
        assert_eq!(
            std::fs::read_to_string(path.join("inside")).unwrap(),
            "kept"
        );
        assert!(leftovers(dir.path()).is_empty());
    }
}
