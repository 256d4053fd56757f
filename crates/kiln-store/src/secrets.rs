//! Secrets sealed at rest: the one place Kiln encrypts what it stores.
//!
//! A [`SecretBox`] holds a 256-bit key read from (or created in) a key file of the data
//! directory, `DATA_DIR/secrets.key`, owner-only (mode 0600). Every secret field (storage keys,
//! registry passwords, …) is sealed with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`)
//! under a fresh random 192-bit nonce before it reaches the store, so a copy of the database
//! alone reveals nothing. Each sealed value is bound to where it belongs (`aad`, e.g.
//! `storage-profile/NAME/secret_access_key`): a value copied onto another record does not open.
//!
//! The key file always lives in the server's data directory, also when the store is PostgreSQL:
//! servers sharing one database must be given the same key file (as they are the same tokens).
//! [`SecretBox::check_store`] refuses a key that does not match the one the database was
//! written with.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::Store;

/// File name of the key, inside the data directory.
pub const KEY_FILE: &str = "secrets.key";

/// Prefix of a sealed value: the format's version.
const SEALED_PREFIX: &str = "xc1:";

/// Name of the store's secret that proves which key sealed the database's values.
const CHECK_NAME: &str = "secrets-key-check";
const CHECK_AAD: &str = "kiln/secrets-key-check";
const CHECK_TEXT: &str = "kiln secrets key";

/// Why a key could not be loaded or a value could not be opened. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot {what} the secrets key file {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the secrets key file {path} is readable by other users (mode {mode:o}); \
         restrict it with `chmod 600 {path}`"
    )]
    Permissions { path: String, mode: u32 },
    #[error(
        "the secrets key file {path} is not a 64-digit hex key; restore it from a backup \
         (values sealed with another key cannot be opened)"
    )]
    BadKey { path: String },
    #[error(
        "the database holds secrets sealed with another key than {path}; give this server \
         the `{KEY_FILE}` of the server that wrote them"
    )]
    WrongKey { path: String },
    #[error(
        "the database holds sealed secrets but this server has no key file {path}; give it \
         the `{KEY_FILE}` of the server that wrote them (copy it with the tokens)"
    )]
    MissingKey { path: String },
    #[error("sealed value for {aad} cannot be opened (wrong key, or the value was altered)")]
    Open { aad: String },
    #[error("the store failed while checking the secrets key: {0}")]
    Store(#[from] crate::StoreError),
}

/// Seals and opens secret values with the data directory's key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// The server's box: reads `DATA_DIR/secrets.key` and checks it against `store`; creates
    /// the key only for a store that holds no sealed values yet, so a second server of one
    /// database started without the key is refused instead of being given a new one.
    pub fn for_store(data_dir: &Path, store: &dyn Store) -> Result<Self, SecretError> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() && store.get_secret(CHECK_NAME)?.is_some() {
            return Err(SecretError::MissingKey {
                path: path.display().to_string(),
            });
        }
        let secrets = Self::open_or_create(data_dir)?;
        secrets.check_store(store)?;
        Ok(secrets)
    }

    /// Reads `DATA_DIR/secrets.key`, creating it (0600, 32 random bytes as hex) if absent.
    pub fn open_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let path = data_dir.join(KEY_FILE);
        let shown = path.display().to_string();
        let io = |what: &'static str| {
            let shown = shown.clone();
            move |source| SecretError::Io {
                what,
                path: shown,
                source,
            }
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mode = std::fs::metadata(&path)
                    .map_err(io("inspect"))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(SecretError::Permissions {
                        path: shown,
                        mode: mode & 0o777,
                    });
                }
                text
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let text = to_hex(&key);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io("create"))?;
                writeln!(f, "{text}").map_err(io("write"))?;
                f.sync_all().map_err(io("write"))?;
                text
            }
            Err(e) => return Err(io("read")(e)),
        };
        let key = from_hex(text.trim())
            .filter(|k| k.len() == 32)
            .ok_or(SecretError::BadKey {
                path: shown.clone(),
            })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| SecretError::BadKey { path: shown })?;
        Ok(SecretBox { cipher, path })
    }

    /// A box with a given key (tests, tools).
    pub fn from_key(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: XChaCha20Poly1305::new(key.into()),
            path: PathBuf::from(KEY_FILE),
        }
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes sure the store's sealed values were sealed with this key: records a check value
    /// in a store that has none, and refuses a key that does not open the recorded one.
    pub fn check_store(&self, store: &dyn Store) -> Result<(), SecretError> {
        match store.get_secret(CHECK_NAME)? {
            None => {
                store.put_secret(CHECK_NAME, &self.seal(CHECK_TEXT, CHECK_AAD))?;
                Ok(())
            }
            Some(sealed) => match self.open(&sealed, CHECK_AAD) {
                Ok(text) if text == CHECK_TEXT => Ok(()),
                _ => Err(SecretError::WrongKey {
                    path: self.path.display().to_string(),
                }),
            },
        }
    }

    /// Seals `plain`, bound to `aad` (where the value belongs). The result is printable text.
    pub fn seal(&self, plain: &str, aad: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: aad.as_bytes(),
        };
        // Encryption of an in-memory buffer only fails past the cipher's length limit (256 GiB).
        let sealed = self.cipher.encrypt(&nonce, payload).unwrap_or_default();
        let mut out = String::with_capacity(SEALED_PREFIX.len() + 2 * (24 + sealed.len()));
        out.push_str(SEALED_PREFIX);
        out.push_str(&to_hex(&nonce));
        out.push_str(&to_hex(&sealed));
        out
    }

    /// Opens a value [`SecretBox::seal`] sealed under the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<String, SecretError> {
        let fail = || SecretError::Open {
            aad: aad.to_string(),
        };
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(from_hex)
            .filter(|b| b.len() >= 24 + 16)
            .ok_or_else(fail)?;
        let (nonce, msg) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

/// Whether `value` looks like something [`SecretBox::seal`] produced.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seals_and_opens_bound_to_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let b = SecretBox::open_or_create(dir.path()).unwrap();
        let sealed = b.seal("s3cr3t-value", "storage-profile/p/secret_access_key");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("s3cr3t"));
        // A fresh nonce every time: equal secrets do not look equal at rest.
        assert_ne!(
            sealed,
            b.seal("s3cr3t-value", "storage-profile/p/secret_access_key")
        );
        assert_eq!(
            b.open(&sealed, "storage-profile/p/secret_access_key")
                .unwrap(),
            "s3cr3t-value"
        );
        // Moved to another record: refused.
        let e = b
            .open(&sealed, "storage-profile/q/secret_access_key")
            .unwrap_err();
        assert!(matches!(e, SecretError::Open { .. }));
        assert!(!e.to_string().contains("s3cr3t"));
        // Altered: refused.
        let mut bad = sealed.clone();
        let last = if bad.ends_with('0') { "1" } else { "0" };
        bad.replace_range(bad.len() - 1.., last);
        assert!(b.open(&bad, "storage-profile/p/secret_access_key").is_err());
        assert!(b.open("plain", "x").is_err());
        assert!(b.open("xc1:zz", "x").is_err());
    }

    #[test]
    fn key_file_is_created_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::open_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = a.seal("v", "aad");
        let b = SecretBox::open_or_create(dir.path()).unwrap();
        assert_eq!(b.open(&sealed, "aad").unwrap(), "v");
        // Another data directory: another key.
        let other = tempfile::tempdir().unwrap();
        let c = SecretBox::open_or_create(other.path()).unwrap();
        assert!(c.open(&sealed, "aad").is_err());
    }

    #[test]
    fn refuses_a_key_file_others_can_read_or_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        SecretBox::open_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = SecretBox::open_or_create(dir.path()).unwrap_err();
        assert!(matches!(e, SecretError::Permissions { .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not hex\n").unwrap();
        let e = SecretBox::open_or_create(dir.path()).unwrap_err();
        assert!(matches!(e, SecretError::BadKey { .. }), "{e}");
    }

    #[test]
    fn a_store_remembers_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(&dir.path().join("kiln.db")).unwrap();
        let a = SecretBox::from_key(&[7; 32]);
        a.check_store(&store).unwrap();
        a.check_store(&store).unwrap();
        let e = SecretBox::from_key(&[8; 32])
            .check_store(&store)
            .unwrap_err();
        assert!(matches!(e, SecretError::WrongKey { .. }), "{e}");
    }

    #[test]
    fn a_second_server_without_the_key_is_refused_and_given_none() {
        let db = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::open(&db.path().join("kiln.db")).unwrap();
        let first = tempfile::tempdir().unwrap();
        SecretBox::for_store(first.path(), &store).unwrap();
        let second = tempfile::tempdir().unwrap();
        let e = SecretBox::for_store(second.path(), &store).unwrap_err();
        assert!(matches!(e, SecretError::MissingKey { .. }), "{e}");
        assert!(!second.path().join(KEY_FILE).exists());
        std::fs::copy(first.path().join(KEY_FILE), second.path().join(KEY_FILE)).unwrap();
        SecretBox::for_store(second.path(), &store).unwrap();
    }
}
