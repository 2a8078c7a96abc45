//! The local store: `<state-dir>/<suffix>.json`, with `<suffix>.json.bak` (the previous
//! version) and `<suffix>.outputs.json` beside it.
//!
//! - A save is all-or-nothing: temp file in the same directory, fsync, rename, fsync of the dir.
//! - The lock is an OS file lock (flock) on `<suffix>.lock`, so the kernel drops it when its
//!   holder dies: a killed run never blocks the next one. Dropping the store releases it too.
//! - A reader (`snapshot`) takes no lock and makes nothing: a save is a rename, so it reads the
//!   state before or after a writer's save, never a mix.

use super::{LockHolder, State, Store};
use crate::error::Error;
use async_trait::async_trait;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How long a writer without --lock-timeout keeps trying a lock it finds held: longer than a
/// reader's probe of it, far shorter than any run.
const PROBE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

pub struct LocalStore {
    dir: PathBuf,
    suffix: String,
    /// None for a snapshot: it reads, and may not write.
    lock: Option<File>,
}

impl LocalStore {
    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.suffix))
    }

    /// A reader of `suffix` in `dir` that takes no lock and creates nothing.
    pub fn snapshot(dir: &Path, suffix: &str) -> LocalStore {
        LocalStore { dir: dir.to_path_buf(), suffix: suffix.to_string(), lock: None }
    }

    /// Takes the lock of `suffix` in `dir`, waiting up to `wait` for its holder to finish, or
    /// refuses naming the holder. Makes `dir` if it does not exist yet: the first run of a suffix.
    pub async fn lock(
        dir: &Path,
        suffix: &str,
        command: &str,
        wait: Option<std::time::Duration>,
    ) -> Result<LocalStore, Error> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::invalid("--state", format!("'{}' exists and is not a directory", dir.display())));
        }
        fs::create_dir_all(dir)
            .map_err(|e| Error::invalid("--state", format!("'{}' cannot be created: {e}", dir.display())))?;
        let lock_path = dir.join(format!("{suffix}.lock"));
        let mut lock =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(|e| {
                Error::State {
                    message: format!("cannot open the lock file {}: {e}", lock_path.display()),
                    hint: Some("check that the state directory (--state) is writable".into()),
                }
            })?;
        let started = std::time::Instant::now();
        let mut told = false;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    let who = read_holder(&mut lock)
                        .map(|h| h.describe())
                        .unwrap_or_else(|| "another tapctl process".to_string());
                    let waited = started.elapsed();
                    // A reader's probe (`holder`) holds a shared lock for microseconds: a writer
                    // without --lock-timeout still tries for PROBE_GRACE before it gives up.
                    match wait.or(Some(PROBE_GRACE)) {
                        Some(limit) if waited < limit => {
                            if !told && wait.is_some() {
                                crate::errln!("waiting up to {} for the lock of '{suffix}', held by {who}", crate::config::human_duration(limit));
                                told = true;
                            }
                            let poll = if wait.is_some() { 500 } else { 20 };
                            tokio::time::sleep(std::time::Duration::from_millis(poll).min(limit - waited)).await;
                        }
                        _ => {
                            return Err(Error::Locked(format!(
                                "the state of suffix '{suffix}' is locked by {who}; wait for it to finish, or pass \
                                 --lock-timeout 5m to wait (a killed holder releases the lock by itself) — lock file {}",
                                lock_path.display()
                            )))
                        }
                    }
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::State {
                        message: format!("cannot lock {}: {e}", lock_path.display()),
                        hint: None,
                    })
                }
            }
        }
        // Best effort: the lock itself is the flock; the text only tells a waiting user who holds it.
        let _ = lock.set_len(0).and_then(|_| lock.seek(SeekFrom::Start(0)));
        let _ = lock.write_all(serde_json::to_string(&LockHolder::me(command)).unwrap_or_default().as_bytes());
        let _ = lock.sync_data();

        Ok(LocalStore { dir: dir.to_path_buf(), suffix: suffix.to_string(), lock: Some(lock) })
    }

    fn writable(&self) -> Result<(), Error> {
        match self.lock {
            Some(_) => Ok(()),
            None => Err(Error::State {
                message: format!("the state {} was opened to read; nothing may be written", self.location()),
                hint: None,
            }),
        }
    }
}

fn read_holder(lock: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    lock.seek(SeekFrom::Start(0)).ok()?;
    lock.read_to_string(&mut text).ok()?;
    serde_json::from_str::<LockHolder>(&text).ok()
}

/// Who holds the lock of `suffix` in `dir` right now, if anyone; creates nothing.
pub fn holder(dir: &Path, suffix: &str) -> Option<LockHolder> {
    let mut file = OpenOptions::new().read(true).open(dir.join(format!("{suffix}.lock"))).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(fs::TryLockError::WouldBlock) => {
            // A writer that has just taken the lock may not have written its name yet.
            read_holder(&mut file)
        }
        Err(fs::TryLockError::Error(_)) => None,
    }
}

/// The suffixes with a state file in `dir` (none when `dir` does not exist), sorted.
pub fn suffixes(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(Error::State {
                message: format!("cannot list the state directory {}: {e}", dir.display()),
                hint: None,
            })
        }
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| {
            n.strip_suffix(".json").filter(|s| !s.ends_with(".outputs") && !s.contains('.')).map(str::to_string)
        })
        .collect();
    out.sort();
    Ok(out)
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
        self.writable()?;
        let path = self.path("json");
        if let Ok(previous) = fs::read(&path) {
            if serde_json::from_slice::<State>(&previous).is_ok() {
                write_atomic(&self.path("json.bak"), &previous)?;
            }
        }
        write_atomic(&path, text.as_bytes())
    }

    async fn save_outputs(&self, text: String) -> Result<(), Error> {
        self.writable()?;
        write_atomic(&self.path("outputs.json"), text.as_bytes())
    }

    async fn remove(&self) -> Result<(), Error> {
        self.writable()?;
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

    async fn load_outputs(&self) -> Result<Option<String>, Error> {
        match fs::read_to_string(self.path("outputs.json")) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::State { message: format!("cannot read the outputs: {e}"), hint: None }),
        }
    }

    async fn holder(&self) -> Option<LockHolder> {
        if self.lock.is_some() {
            return None;
        }
        holder(&self.dir, &self.suffix)
    }

    /// The flock goes with the store (or the process).
    async fn release(&self) {}
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let fail = |e: std::io::Error| Error::State {
        message: format!("cannot write {}: {e}", path.display()),
        hint: Some("check free space and permissions of the state directory (--state)".into()),
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
        StateStore::open(Box::new(LocalStore::lock(dir, "qa", command, None).await?), "qa", "us-east-1").await
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
    async fn a_snapshot_reads_while_the_lock_is_held_names_the_holder_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (held, mut state) = open(dir.path(), "up").await.unwrap();
        state.record("network.vpc", Outputs::new());
        held.save(&state).await.unwrap();
        let reader = LocalStore::snapshot(dir.path(), "qa");
        let who = reader.holder().await.expect("the lock is held");
        assert_eq!((who.pid, who.command.as_str()), (std::process::id(), "up"));
        let (snap, read) = StateStore::open(Box::new(reader), "qa", "us-east-1").await.unwrap();
        assert!(read.nodes.contains_key("network.vpc"));
        assert!(snap.save(&read).await.is_err(), "a snapshot may not write");
        drop(held);
        assert!(LocalStore::snapshot(dir.path(), "qa").holder().await.is_none());
    }

    #[tokio::test]
    async fn a_snapshot_of_a_missing_directory_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let (_s, state) =
            StateStore::open(Box::new(LocalStore::snapshot(&missing, "qa")), "qa", "us-east-1").await.unwrap();
        assert!(state.nodes.is_empty());
        assert!(!missing.exists());
        assert_eq!(suffixes(&missing).unwrap(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_writer_waits_for_the_lock_up_to_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let held = open(dir.path(), "up").await.unwrap();
        let path = dir.path().to_path_buf();
        let waiter = tokio::spawn(async move {
            LocalStore::lock(&path, "qa", "shift", Some(std::time::Duration::from_secs(600))).await.map(|_| ())
        });
        tokio::task::yield_now().await;
        drop(held);
        waiter.await.unwrap().expect("the lock is taken once its holder lets go");
        let _again = open(dir.path(), "up").await.unwrap();
        let refused = LocalStore::lock(dir.path(), "qa", "up", None).await.err().unwrap().to_string();
        assert!(refused.contains("--lock-timeout"), "{refused}");
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
