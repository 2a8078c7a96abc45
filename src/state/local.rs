//! The local store: `<state-dir>/<suffix>.json`, with `<suffix>.json.bak` (the previous
//! version) and `<suffix>.outputs.json` beside it.
//!
//! - A save is all-or-nothing: temp file in the same directory, fsync, rename, fsync of the dir.
//! - The lock is an OS file lock (flock) on `<suffix>.lock`, so the kernel drops it when its
//!   holder dies: a killed run never blocks the next one. Dropping the store releases it too.

use super::{LockHolder, State, Store};
use crate::error::Error;
use async_trait::async_trait;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct LocalStore {
    dir: PathBuf,
    suffix: String,
    _lock: File,
}

impl LocalStore {
    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.suffix))
    }

    /// Takes the lock of `suffix` in `dir`, or refuses naming its holder.
    /// Makes `dir` if it does not exist yet: the first run of a suffix.
    pub fn lock(dir: &Path, suffix: &str, command: &str) -> Result<LocalStore, Error> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::invalid("--state-dir", format!("'{}' exists and is not a directory", dir.display())));
        }
        fs::create_dir_all(dir)
            .map_err(|e| Error::invalid("--state-dir", format!("'{}' cannot be created: {e}", dir.display())))?;
        let lock_path = dir.join(format!("{suffix}.lock"));
        let mut lock =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(|e| {
                Error::State {
                    message: format!("cannot open the lock file {}: {e}", lock_path.display()),
                    hint: Some("check that --state-dir is writable".into()),
                }
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                let who = match serde_json::from_str::<LockHolder>(&text) {
                    Ok(h) => h.describe(),
                    Err(_) => "another tapctl process".to_string(),
                };
                return Err(Error::Locked(format!(
                    "the state of suffix '{suffix}' is locked by {who}; wait for it to finish \
                     (a killed holder releases the lock by itself) — lock file {}",
                    lock_path.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::State { message: format!("cannot lock {}: {e}", lock_path.display()), hint: None })
            }
        }
        // Best effort: the lock itself is the flock; the text only tells a waiting user who holds it.
        let _ = lock.set_len(0).and_then(|_| lock.seek(SeekFrom::Start(0)));
        let _ = lock.write_all(serde_json::to_string(&LockHolder::me(command)).unwrap_or_default().as_bytes());
        let _ = lock.sync_data();

        Ok(LocalStore { dir: dir.to_path_buf(), suffix: suffix.to_string(), _lock: lock })
    }
}

#[async_trait]
impl Store for LocalStore {
    fn location(&self) -> String {
        self.path("json").display().to_string()
    }

    fn backup(&self) -> String {
        self.path("json.bak").display().to_string()
    }

    async fn load(&self) -> Result<Option<String>, Error> {
        let path = self.path("json");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::State {
                message: format!("cannot read the state file {}: {e}", path.display()),
                hint: Some("fix its permissions; tapctl will not overwrite a state it cannot read".into()),
            }),
        }
    }

    /// A reader (or a crash) sees the old file or the new one, never a mix; the previous
    /// version, if it parses, becomes the backup.
    async fn save(&self, text: String) -> Result<(), Error> {
        let path = self.path("json");
        if let Ok(previous) = fs::read(&path) {
            if serde_json::from_slice::<State>(&previous).is_ok() {
                write_atomic(&self.path("json.bak"), &previous)?;
            }
        }
        write_atomic(&path, text.as_bytes())
    }

    async fn save_outputs(&self, text: String) -> Result<(), Error> {
        write_atomic(&self.path("outputs.json"), text.as_bytes())
    }

    async fn remove(&self) -> Result<(), Error> {
        for p in [self.path("json"), self.path("outputs.json"), self.path("json.bak")] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::State { message: format!("cannot remove {}: {e}", p.display()), hint: None })
                }
            }
        }
        Ok(())
    }

    /// The flock goes with the store (or the process).
    async fn release(&self) {}
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let fail = |e: std::io::Error| Error::State {
        message: format!("cannot write {}: {e}", path.display()),
        hint: Some("check free space and permissions of --state-dir".into()),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Outputs;
    use crate::state::{StateStore, SCHEMA_VERSION};

    async fn open(dir: &Path, command: &str) -> Result<(StateStore, State), Error> {
        StateStore::open(Box::new(LocalStore::lock(dir, "qa", command)?), "qa", "us-east-1").await
    }

    #[tokio::test]
    async fn a_second_opener_is_refused_and_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (_held, _) = open(dir.path(), "up").await.unwrap();
        let err = open(dir.path(), "destroy").await.unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("`tapctl up`"), "{err}");
    }

    #[tokio::test]
    async fn the_lock_is_released_when_the_store_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), "up").await.unwrap());
        assert!(open(dir.path(), "up").await.is_ok());
    }

    #[tokio::test]
    async fn a_corrupt_state_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qa.json");
        fs::write(&path, "{ not json").unwrap();
        let err = open(dir.path(), "up").await.unwrap_err();
        assert!(err.to_string().contains("corrupt"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "{ not json");
    }

    #[tokio::test]
    async fn saved_state_reads_back_identically_and_the_previous_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut state) = open(dir.path(), "up").await.unwrap();
        store.save(&state).await.unwrap();
        let mut outputs = Outputs::new();
        outputs.insert("vpc_id".into(), serde_json::Value::String("vpc-1".into()));
        state.record("network.vpc", outputs.clone());
        store.save(&state).await.unwrap();
        let backup: State = serde_json::from_str(&fs::read_to_string(dir.path().join("qa.json.bak")).unwrap()).unwrap();
        assert!(backup.nodes.is_empty(), "the backup is the state before the last save");
        drop(store);
        let (_s, loaded) = open(dir.path(), "status").await.unwrap();
        assert_eq!(loaded.nodes["network.vpc"].outputs, outputs);
        assert_eq!(loaded.schema_version, SCHEMA_VERSION);
    }
}
