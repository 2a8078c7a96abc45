//! The state file `<state-dir>/<suffix>.json`: what tapctl created (ids, ARNs, non-secret
//! outputs), schema-versioned, saved atomically, guarded by a lock.
//!
//! Guarantees:
//! - A save is all-or-nothing: temp file in the same directory, fsync, rename, fsync of the dir.
//! - A file that cannot be read or parsed is never overwritten; the command stops instead.
//! - Only one command per suffix runs at once. The lock is an OS file lock (flock), so the
//!   kernel drops it when its holder dies: a killed run never blocks the next one.
//! - Nothing secret is ever stored: outputs are ids, ARNs, names and endpoints.

use crate::config::StackSettings;
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;

use crate::resources::Outputs;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub schema_version: u32,
    pub suffix: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<StackSettings>,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeState {
    pub outputs: Outputs,
    pub updated_at: String,
}

/// Who holds the lock, written into the lock file so the loser can say so.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub since: String,
    /// Remote locks only: when the lease runs out unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// An open, locked state. Local: an flock on `<suffix>.lock` (dropping the store releases it).
/// Remote (S3): a lock object with a lease, renewed while the command runs; `release` deletes it.
pub struct StateStore {
    suffix: String,
    backend: Backend,
}

enum Backend {
    Local { dir: PathBuf, _lock: File },
    S3(crate::remote_state::S3Store),
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateStore({})", self.location())
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string())
}

impl LockHolder {
    pub fn me(command: &str) -> LockHolder {
        LockHolder { pid: std::process::id(), host: host_name(), command: command.into(), since: now(), expires: None }
    }

    pub fn describe(&self) -> String {
        format!("pid {} on {} (`tapctl {}`) since {}", self.pid, self.host, self.command, self.since)
    }
}

/// A state that does not exist yet.
pub fn empty_state(suffix: &str, region: &str) -> State {
    State { schema_version: SCHEMA_VERSION, suffix: suffix.to_string(), region: region.to_string(), ..State::default() }
}

/// Parses and checks a state document; `place` names it in errors, `backup` where the last good
/// copy is kept.
pub fn parse_state(text: &str, place: &str, backup: &str, suffix: &str, region: &str) -> Result<State, Error> {
    let mut state: State = serde_json::from_str(text).map_err(|e| Error::State {
        message: format!("the state file {place} is corrupt: {e}"),
        hint: Some(format!(
            "tapctl never overwrites a state it cannot parse. The last good state is kept at {backup}: \
             copy it back, or move the damaged file aside and run `tapctl up`, which adopts existing \
             resources by their tags"
        )),
    })?;
    if state.schema_version > SCHEMA_VERSION {
        return Err(Error::State {
            message: format!(
                "the state file {place} has schema version {}, newer than this tapctl understands ({SCHEMA_VERSION})",
                state.schema_version
            ),
            hint: Some("upgrade tapctl".into()),
        });
    }
    if state.suffix != suffix || state.region != region {
        return Err(Error::State {
            message: format!(
                "the state file {place} belongs to suffix '{}' in {}, not '{suffix}' in {region}",
                state.suffix, state.region
            ),
            hint: Some("pass the matching --region, or use another --state-dir".into()),
        });
    }
    for retired in RETIRED_NODES {
        state.nodes.remove(*retired);
    }
    Ok(state)
}

/// Nodes earlier versions recorded that no longer exist. Their resources belong to the nodes that
/// replaced them, which adopt them by name and tags on the next `up`; the old entries go.
/// - `functions.lambdas`: since engine v2 each function is its own node (`functions.<name>`).
/// - `network.function-interfaces`: owned nothing; it is the functions' finalizer now
///   (`functions.network-interfaces`), which a destroy runs and no state records.
pub const RETIRED_NODES: &[&str] = &["functions.lambdas", "network.function-interfaces"];

pub fn render_state(state: &State) -> Result<String, Error> {
    let mut state = state.clone();
    state.updated_at = Some(now());
    serde_json::to_string_pretty(&state)
        .map_err(|e| Error::State { message: format!("cannot serialise the state: {e}"), hint: None })
}

impl StateStore {
    pub fn state_path(dir: &Path, suffix: &str) -> PathBuf {
        dir.join(format!("{suffix}.json"))
    }
    pub fn backup_path(dir: &Path, suffix: &str) -> PathBuf {
        dir.join(format!("{suffix}.json.bak"))
    }
    pub fn outputs_path(dir: &Path, suffix: &str) -> PathBuf {
        dir.join(format!("{suffix}.outputs.json"))
    }
    fn lock_path(dir: &Path, suffix: &str) -> PathBuf {
        dir.join(format!("{suffix}.lock"))
    }

    /// Where the state lives, for messages.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Local { dir, .. } => Self::state_path(dir, &self.suffix).display().to_string(),
            Backend::S3(s) => s.location(),
        }
    }

    pub fn remote(suffix: &str, store: crate::remote_state::S3Store) -> StateStore {
        StateStore { suffix: suffix.to_string(), backend: Backend::S3(store) }
    }

    /// Takes the lock of `suffix` in `dir`, then loads its state (empty if there is none yet).
    pub fn open(dir: &Path, suffix: &str, region: &str, command: &str) -> Result<(StateStore, State), Error> {
        let lock_path = Self::lock_path(dir, suffix);
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

        let path = Self::state_path(dir, suffix);
        let state = match fs::read_to_string(&path) {
            Ok(text) => parse_state(
                &text,
                &path.display().to_string(),
                &Self::backup_path(dir, suffix).display().to_string(),
                suffix,
                region,
            )?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty_state(suffix, region),
            Err(e) => {
                return Err(Error::State {
                    message: format!("cannot read the state file {}: {e}", path.display()),
                    hint: Some("fix its permissions; tapctl will not overwrite a state it cannot read".into()),
                })
            }
        };
        let store =
            StateStore { suffix: suffix.to_string(), backend: Backend::Local { dir: dir.to_path_buf(), _lock: lock } };
        Ok((store, state))
    }

    /// Saves atomically: a reader (or a crash) sees the old file or the new one, never a mix.
    /// The previous version is kept as `<suffix>.json.bak` (remote: use bucket versioning).
    pub async fn save(&self, state: &State) -> Result<(), Error> {
        let text = render_state(state)?;
        match &self.backend {
            Backend::Local { dir, .. } => {
                let path = Self::state_path(dir, &self.suffix);
                if let Ok(previous) = fs::read(&path) {
                    if serde_json::from_slice::<State>(&previous).is_ok() {
                        write_atomic(&Self::backup_path(dir, &self.suffix), &previous)?;
                    }
                }
                write_atomic(&path, text.as_bytes())
            }
            Backend::S3(s) => s.save_state(text).await,
        }
    }

    pub async fn save_outputs(&self, outputs: &Outputs) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(outputs).unwrap_or_else(|_| "{}".into());
        match &self.backend {
            Backend::Local { dir, .. } => write_atomic(&Self::outputs_path(dir, &self.suffix), text.as_bytes()),
            Backend::S3(s) => s.save_outputs(text).await,
        }
    }

    /// After a destroy: nothing is left to record.
    pub async fn remove_files(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::Local { dir, .. } => {
                for p in [
                    Self::state_path(dir, &self.suffix),
                    Self::outputs_path(dir, &self.suffix),
                    Self::backup_path(dir, &self.suffix),
                ] {
                    match fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(Error::State {
                                message: format!("cannot remove {}: {e}", p.display()),
                                hint: None,
                            })
                        }
                    }
                }
                Ok(())
            }
            Backend::S3(s) => s.remove_state().await,
        }
    }

    /// Releases the lock now (a local lock is also released by dropping the store, or by the
    /// kernel when the process dies; a remote one expires with its lease).
    pub async fn release(self) {
        if let Backend::S3(s) = self.backend {
            s.release().await;
        }
    }
}

impl State {
    pub fn record(&mut self, node: &str, outputs: Outputs) {
        self.nodes.insert(node.to_string(), NodeState { outputs, updated_at: now() });
    }
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

    #[test]
    fn a_second_opener_is_refused_and_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (_held, _) = StateStore::open(dir.path(), "qa", "us-east-1", "up").unwrap();
        let err = StateStore::open(dir.path(), "qa", "us-east-1", "destroy").unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(err.contains("`tapctl up`"), "{err}");
    }

    #[test]
    fn the_lock_is_released_when_the_store_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path(), "qa", "us-east-1", "up").unwrap());
        assert!(StateStore::open(dir.path(), "qa", "us-east-1", "up").is_ok());
    }

    #[test]
    fn a_corrupt_state_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateStore::state_path(dir.path(), "qa");
        fs::write(&path, "{ not json").unwrap();
        let err = StateStore::open(dir.path(), "qa", "us-east-1", "up").unwrap_err();
        assert!(err.to_string().contains("corrupt"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "{ not json");
    }

    #[tokio::test]
    async fn saved_state_reads_back_identically_and_the_previous_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut state) = StateStore::open(dir.path(), "qa", "us-east-1", "up").unwrap();
        store.save(&state).await.unwrap();
        let mut outputs = Outputs::new();
        outputs.insert("vpc_id".into(), serde_json::Value::String("vpc-1".into()));
        state.record("network.vpc", outputs.clone());
        store.save(&state).await.unwrap();
        let backup: State =
            serde_json::from_str(&fs::read_to_string(StateStore::backup_path(dir.path(), "qa")).unwrap()).unwrap();
        assert!(backup.nodes.is_empty(), "the backup is the state before the last save");
        drop(store);
        let (_s, loaded) = StateStore::open(dir.path(), "qa", "us-east-1", "status").unwrap();
        assert_eq!(loaded.nodes["network.vpc"].outputs, outputs);
        assert_eq!(loaded.schema_version, SCHEMA_VERSION);
    }
}
