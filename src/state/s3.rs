//! Remote state in S3 (`--state s3://bucket/prefix`), shared by a team, locked the way
//! Terraform 1.10's S3 lockfile is: with S3 conditional writes, no DynamoDB table.
//!
//! - Lock: `PUT <prefix>/<suffix>.lock` with `If-None-Match: *` succeeds for exactly one writer.
//!   The lock carries a lease (`TAPCTL_REMOTE_LOCK_LEASE_SECONDS`, default 120 s) that the holder
//!   renews every third of it with `If-Match: <etag>`. A holder that died stops renewing: once
//!   its lease has run out, the next command takes the lock over with `If-Match` on the stale
//!   lock's ETag, so two contenders cannot both win.
//! - State: read with its ETag, written with `If-Match: <etag>` (or `If-None-Match: *` for the
//!   first write): an update based on a stale read is refused, never merged.
//! - Backups: enable versioning on the state bucket; every save is then a version.

use super::{LockHolder, Store};
use crate::aws::{AwsError, AwsResultExt};
use crate::config::RemoteState;
use crate::error::Error;
use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

pub struct S3Store {
    s3: aws_sdk_s3::Client,
    remote: RemoteState,
    suffix: String,
    lock_etag: Arc<Mutex<String>>,
    state_etag: Mutex<Option<String>>,
    /// None for a snapshot: it holds no lock, and may not write.
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

fn lease() -> Duration {
    std::env::var("TAPCTL_REMOTE_LOCK_LEASE_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LEASE)
}

fn lease_until(lease: Duration) -> String {
    let until = chrono::Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
    until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn precondition_failed(e: &AwsError) -> bool {
    // 412 when the condition fails; 409 when another conditional write to the key is in flight.
    matches!(e.code.as_deref(), Some("PreconditionFailed" | "ConditionalRequestConflict"))
}

fn state_error(e: AwsError, what: &str) -> Error {
    Error::State {
        message: format!("cannot {what}: {e}"),
        hint: Some("check that the state bucket exists in this region and the caller may read and write it".into()),
    }
}

impl S3Store {
    fn key(&self, ext: &str) -> String {
        self.remote.key(&format!("{}.{ext}", self.suffix))
    }

    /// A reader that takes no lock: a GetObject returns one whole version of the document.
    pub fn snapshot(s3: aws_sdk_s3::Client, remote: RemoteState, suffix: &str) -> S3Store {
        S3Store {
            s3,
            remote,
            suffix: suffix.to_string(),
            lock_etag: Arc::new(Mutex::new(String::new())),
            state_etag: Mutex::new(None),
            heartbeat: None,
        }
    }

    /// Takes the lock, waiting up to `wait` for its holder to finish, or refuses naming the holder.
    pub async fn lock(
        s3: aws_sdk_s3::Client,
        remote: RemoteState,
        suffix: &str,
        command: &str,
        wait: Option<Duration>,
    ) -> Result<S3Store, Error> {
        let started = std::time::Instant::now();
        loop {
            match Self::try_lock(s3.clone(), remote.clone(), suffix, command).await {
                Err(Error::Locked(why)) => match wait.map(|limit| limit.saturating_sub(started.elapsed())) {
                    Some(left) if !left.is_zero() => tokio::time::sleep(Duration::from_secs(1).min(left)).await,
                    _ => return Err(Error::Locked(format!("{why}; pass --lock-timeout 5m to wait for it"))),
                },
                other => return other,
            }
        }
    }

    async fn try_lock(
        s3: aws_sdk_s3::Client,
        remote: RemoteState,
        suffix: &str,
        command: &str,
    ) -> Result<S3Store, Error> {
        let lease = lease();
        let lock_key = remote.key(&format!("{suffix}.lock"));
        let mut holder = LockHolder::me(command);
        holder.expires = Some(lease_until(lease));
        let body = serde_json::to_vec(&holder).unwrap_or_default();
        let put = s3
            .put_object()
            .bucket(&remote.bucket)
            .key(&lock_key)
            .if_none_match("*")
            .content_type("application/json")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .aws("s3:PutObject");
        let etag = match put {
            Ok(out) => out.e_tag().unwrap_or_default().to_string(),
            Err(e) if precondition_failed(&e) => take_over_if_expired(&s3, &remote, &lock_key, suffix, body).await?,
            Err(e) => return Err(state_error(e, "take the remote state lock")),
        };
        let lock_etag = Arc::new(Mutex::new(etag));
        let heartbeat = tokio::spawn(renew(s3.clone(), remote.clone(), lock_key, lock_etag.clone(), holder, lease));
        Ok(S3Store {
            s3,
            remote,
            suffix: suffix.to_string(),
            lock_etag,
            state_etag: Mutex::new(None),
            heartbeat: Some(heartbeat),
        })
    }

    fn writable(&self) -> Result<(), Error> {
        match self.heartbeat {
            Some(_) => Ok(()),
            None => Err(Error::State {
                message: format!("the state {} was opened to read; nothing may be written", self.location()),
                hint: None,
            }),
        }
    }

    async fn get(&self, key: String) -> Result<Option<(Option<String>, Vec<u8>)>, Error> {
        let got = self.s3.get_object().bucket(&self.remote.bucket).key(&key).send().await.aws("s3:GetObject");
        let out = match got {
            Ok(out) => out,
            Err(e) if e.code.as_deref() == Some("NoSuchKey") => return Ok(None),
            Err(e) => return Err(state_error(e, "read the remote state")),
        };
        let etag = out.e_tag().map(str::to_string);
        let bytes = out.body.collect().await.map_err(|e| Error::State {
            message: format!("cannot read s3://{}/{key}: {e}", self.remote.bucket),
            hint: None,
        })?;
        Ok(Some((etag, bytes.into_bytes().to_vec())))
    }
}

/// The suffixes with a state document under the remote prefix, sorted.
pub async fn suffixes(s3: &aws_sdk_s3::Client, remote: &RemoteState) -> Result<Vec<String>, Error> {
    let prefix = remote.key("");
    let mut pages = s3.list_objects_v2().bucket(&remote.bucket).prefix(&prefix).into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws("s3:ListObjectsV2").map_err(|e| state_error(e, "list the remote states"))?;
        for o in page.contents() {
            let name = o.key().unwrap_or_default().strip_prefix(&prefix).unwrap_or_default();
            if let Some(s) = name.strip_suffix(".json").filter(|s| !s.contains('.') && !s.contains('/')) {
                out.push(s.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[async_trait]
impl Store for S3Store {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.remote.bucket, self.key("json"))
    }

    fn backup(&self) -> String {
        "the previous version of the object (bucket versioning)".into()
    }

    /// Remembers the document's ETag: a save is conditional on it.
    async fn load(&self) -> Result<Option<String>, Error> {
        let Some((etag, bytes)) = self.get(self.key("json")).await? else { return Ok(None) };
        *self.state_etag.lock().unwrap_or_else(|p| p.into_inner()) = etag;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn load_outputs(&self) -> Result<Option<String>, Error> {
        Ok(self.get(self.key("outputs.json")).await?.map(|(_, b)| String::from_utf8_lossy(&b).into_owned()))
    }

    async fn holder(&self) -> Option<LockHolder> {
        if self.heartbeat.is_some() {
            return None;
        }
        let (_, bytes) = self.get(self.key("lock")).await.ok()??;
        let holder: LockHolder = serde_json::from_slice(&bytes).ok()?;
        let live = holder
            .expires
            .as_deref()
            .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
            .is_none_or(|e| e > chrono::Utc::now());
        live.then_some(holder)
    }

    async fn save(&self, text: String) -> Result<(), Error> {
        self.writable()?;
        let etag = self.state_etag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut put = self
            .s3
            .put_object()
            .bucket(&self.remote.bucket)
            .key(self.key("json"))
            .content_type("application/json")
            .body(ByteStream::from(text.into_bytes()));
        put = match &etag {
            Some(e) => put.if_match(e),
            None => put.if_none_match("*"),
        };
        match put.send().await.aws("s3:PutObject") {
            Ok(out) => {
                *self.state_etag.lock().unwrap_or_else(|p| p.into_inner()) = out.e_tag().map(str::to_string);
                Ok(())
            }
            Err(e) if precondition_failed(&e) => Err(Error::State {
                message: format!("the remote state {} was changed by someone else during this run", self.location()),
                hint: Some("nothing was overwritten; run the command again to start from the current state".into()),
            }),
            Err(e) => Err(state_error(e, "write the remote state")),
        }
    }

    async fn save_outputs(&self, text: String) -> Result<(), Error> {
        self.writable()?;
        self.s3
            .put_object()
            .bucket(&self.remote.bucket)
            .key(self.key("outputs.json"))
            .content_type("application/json")
            .body(ByteStream::from(text.into_bytes()))
            .send()
            .await
            .aws("s3:PutObject")
            .map_err(|e| state_error(e, "write the remote outputs"))?;
        Ok(())
    }

    async fn remove(&self) -> Result<(), Error> {
        self.writable()?;
        for key in [self.key("json"), self.key("outputs.json")] {
            self.s3
                .delete_object()
                .bucket(&self.remote.bucket)
                .key(key)
                .send()
                .await
                .aws("s3:DeleteObject")
                .map_err(|e| state_error(e, "remove the remote state"))?;
        }
        *self.state_etag.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    async fn release(&self) {
        let Some(heartbeat) = &self.heartbeat else { return };
        heartbeat.abort();
        let etag = self.lock_etag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let deleted = self
            .s3
            .delete_object()
            .bucket(&self.remote.bucket)
            .key(self.key("lock"))
            .if_match(etag)
            .send()
            .await
            .aws("s3:DeleteObject");
        if let Err(e) = deleted {
            crate::errln!("warning: could not release the remote lock {}: {e}", self.key("lock"));
        }
    }
}

/// The lock is held: take it over only if its lease has run out, atomically (If-Match).
async fn take_over_if_expired(
    s3: &aws_sdk_s3::Client,
    remote: &RemoteState,
    lock_key: &str,
    suffix: &str,
    body: Vec<u8>,
) -> Result<String, Error> {
    let current = s3.get_object().bucket(&remote.bucket).key(lock_key).send().await.aws("s3:GetObject");
    let current = match current {
        Ok(c) => c,
        // Released between our PUT and this GET: the caller may simply run again.
        Err(e) if e.code.as_deref() == Some("NoSuchKey") => {
            return Err(Error::Locked(format!(
                "the remote state of suffix '{suffix}' was locked a moment ago and has just been released; run again"
            )))
        }
        Err(e) => return Err(state_error(e, "read the remote state lock")),
    };
    let etag = current.e_tag().unwrap_or_default().to_string();
    let bytes = current.body.collect().await.map(|b| b.into_bytes().to_vec()).unwrap_or_default();
    let holder: Option<LockHolder> = serde_json::from_slice(&bytes).ok();
    let expired = holder
        .as_ref()
        .and_then(|h| h.expires.as_deref())
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
        .is_some_and(|e| e < chrono::Utc::now());
    if !expired {
        let who = holder.as_ref().map(LockHolder::describe).unwrap_or_else(|| "another tapctl process".into());
        let until = holder.and_then(|h| h.expires).unwrap_or_else(|| "unknown".into());
        return Err(Error::Locked(format!(
            "the remote state of suffix '{suffix}' is locked by {who}; its lease runs until {until} \
             (if that process died, the lock expires then) — s3://{}/{lock_key}",
            remote.bucket
        )));
    }
    let out = s3
        .put_object()
        .bucket(&remote.bucket)
        .key(lock_key)
        .if_match(&etag)
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .aws("s3:PutObject");
    match out {
        Ok(o) => Ok(o.e_tag().unwrap_or_default().to_string()),
        Err(e) if precondition_failed(&e) => Err(Error::Locked(format!(
            "another tapctl process took over the expired remote lock of suffix '{suffix}' first"
        ))),
        Err(e) => Err(state_error(e, "take over the expired remote lock")),
    }
}

/// Renews the lease every third of it, as long as the command runs.
async fn renew(
    s3: aws_sdk_s3::Client,
    remote: RemoteState,
    lock_key: String,
    etag: Arc<Mutex<String>>,
    mut holder: LockHolder,
    lease: Duration,
) {
    loop {
        tokio::time::sleep(lease / 3).await;
        holder.expires = Some(lease_until(lease));
        let current = etag.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let out = s3
            .put_object()
            .bucket(&remote.bucket)
            .key(&lock_key)
            .if_match(current)
            .content_type("application/json")
            .body(ByteStream::from(serde_json::to_vec(&holder).unwrap_or_default()))
            .send()
            .await
            .aws("s3:PutObject");
        match out {
            Ok(o) => *etag.lock().unwrap_or_else(|p| p.into_inner()) = o.e_tag().unwrap_or_default().to_string(),
            Err(e) => {
                crate::errln!("warning: could not renew the remote state lock ({e}); another run may take it over");
                if precondition_failed(&e) {
                    return;
                }
            }
        }
    }
}
