//! The state: what tapctl created (ids, ARNs, non-secret outputs), schema-versioned, guarded by
//! a lock, kept by one of two stores behind one interface (`Store`): a file under `--state-dir`
//! (`local`) or an object in S3 shared by a team (`s3`). A store moves text and holds the lock;
//! parsing, checking and rendering the document happen here, once, for both.
//!
//! Guarantees (each store says how it keeps them):
//! - A save is all-or-nothing, and the previous version is kept.
//! - A document that cannot be read or parsed is never overwritten; the command stops instead.
//! - Only one command per suffix runs at once, and a killed holder never blocks the next one.
//! - Nothing secret is ever stored: outputs are ids, ARNs, names and endpoints.

mod local;
pub mod s3;

pub use local::LocalStore;
pub use local::{holder as local_holder, suffixes as local_suffixes};
pub use s3::S3Store;

use crate::config::StackSettings;
use crate::error::Error;
use crate::resources::Outputs;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA_VERSION: u32 = 1;

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

/// Where a state document is kept and how it is locked: locked when made, released by `release`
/// (or by its holder's death).
#[async_trait]
pub trait Store: Send + Sync {
    /// Where the state lives, for messages.
    fn location(&self) -> String;
    /// Where the last good copy is kept, for the hint when the document is corrupt.
    fn backup(&self) -> String;
    /// The document, or None when there is none yet.
    async fn load(&self) -> Result<Option<String>, Error>;
    async fn save(&self, text: String) -> Result<(), Error>;
    /// The operator-facing outputs beside the state.
    async fn save_outputs(&self, text: String) -> Result<(), Error>;
    /// After a destroy: nothing is left to record.
    async fn remove(&self) -> Result<(), Error>;
    /// The operator-facing outputs, when a run saved them.
    async fn load_outputs(&self) -> Result<Option<String>, Error>;
    /// For a reader that took no lock: who holds it now, if anyone.
    async fn holder(&self) -> Option<LockHolder>;
    /// Releases the lock now.
    async fn release(&self);
}

/// An open, locked state of one suffix, in whichever store holds it.
pub struct StateStore {
    store: Box<dyn Store>,
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
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
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
fn parse_state(text: &str, place: &str, backup: &str, suffix: &str, region: &str) -> Result<State, Error> {
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

fn render_state(state: &State) -> Result<String, Error> {
    let mut state = state.clone();
    state.updated_at = Some(now());
    serde_json::to_string_pretty(&state)
        .map_err(|e| Error::State { message: format!("cannot serialise the state: {e}"), hint: None })
}

impl StateStore {
    /// Loads the state of a store that holds the lock (empty if there is none yet). On any
    /// error the lock is released and nothing is written.
    pub async fn open(store: Box<dyn Store>, suffix: &str, region: &str) -> Result<(StateStore, State), Error> {
        let loaded = match store.load().await {
            Ok(None) => Ok(empty_state(suffix, region)),
            Ok(Some(text)) => parse_state(&text, &store.location(), &store.backup(), suffix, region),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(state) => Ok((StateStore { store }, state)),
            Err(e) => {
                store.release().await;
                Err(e)
            }
        }
    }

    /// Where the state lives, for messages.
    pub fn location(&self) -> String {
        self.store.location()
    }

    pub async fn save(&self, state: &State) -> Result<(), Error> {
        self.store.save(render_state(state)?).await
    }

    pub async fn save_outputs(&self, outputs: &Outputs) -> Result<(), Error> {
        self.store.save_outputs(serde_json::to_string_pretty(outputs).unwrap_or_else(|_| "{}".into())).await
    }

    /// The outputs the last `up` saved, if any.
    pub async fn load_outputs(&self) -> Result<Option<Outputs>, Error> {
        match self.store.load_outputs().await? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| Error::State {
                message: format!("the outputs beside {} are corrupt: {e}", self.location()),
                hint: Some("run `tapctl up` to write them again".into()),
            }),
        }
    }

    /// For a snapshot: who holds the lock now, if anyone.
    pub async fn holder(&self) -> Option<LockHolder> {
        self.store.holder().await
    }

    /// After a destroy: nothing is left to record.
    pub async fn remove_files(&self) -> Result<(), Error> {
        self.store.remove().await
    }

    /// Releases the lock now (a local lock is also released by dropping the store, or by the
    /// kernel when the process dies; a remote one expires with its lease).
    pub async fn release(self) {
        self.store.release().await;
    }
}

impl State {
    pub fn record(&mut self, node: &str, outputs: Outputs) {
        self.nodes.insert(node.to_string(), NodeState { outputs, updated_at: now() });
    }
}
