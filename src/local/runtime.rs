//! Lambda's execution model for one function version, on this machine: instances of the
//! version's `bootstrap`, each polling its own Lambda Runtime API (Lambda's "Using the Lambda
//! runtime API for custom runtimes"), as each Lambda execution environment has its own.
//! `GET /2018-06-01/runtime/invocation/next` long-polls for an event; the response or error is
//! POSTed back under the request id. `tapctl local` runs the functions with it, and the tests
//! run them with it too (tests/integration/lambda.rs), so both exercise the same code.
//!
//! What it keeps of Lambda, and why each matters to a payment:
//! - An instance serves one invocation at a time. An event goes to an idle instance, and a new
//!   one is started when none is idle, up to `max_instances`; beyond, the event waits for a free
//!   instance within its own timeout. Taking an instance is exclusive, so two overlapping
//!   requests never queue behind one instance while the bound allows another.
//! - An event is handed to exactly one chosen instance. If the invocation times out, that
//!   instance is killed with every process it started (its process group), as Lambda resets an
//!   environment after a timeout: the event can never run later, behind the caller's back, and a
//!   hung instance does not hold a slot forever.
//! - An instance that exits mid-invocation fails it at once with `Runtime.ExitError` (API
//!   Gateway answers 502), not after the timeout. An idle instance found dead before it took the
//!   event is replaced, and the event goes to the new one, as Lambda would start an environment.
//! - Instances idle for `retire_idle`'s age are stopped, as Lambda reclaims idle environments.
//! - The invocation runs in its own task: a caller that gives up (a dropped HTTP connection)
//!   does not kill an instance in the middle of recording a payment.
//!
//! Accepted sockets set TCP_NODELAY: without it some invocations stall ~40 ms (Nagle with
//! delayed ACK on loopback).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// How an invocation ended: the function's response, or its error document (Lambda's
/// `{"errorType", "errorMessage"}`, also for an instance that exited), or no answer within the
/// function's timeout.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
    TimedOut,
}

/// An outcome and, when an instance took the event, the time from handing it over to the
/// answer: Lambda's billed `Duration`, without the wait for a free instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub outcome: Outcome,
    pub duration: Option<Duration>,
}

/// Where instances' stdout and stderr (the functions' log lines) go.
#[derive(Debug, Clone)]
pub enum Output {
    Inherit,
    /// Appended to this file.
    File(PathBuf),
}

/// How to start an instance of one version.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    /// The instance's whole environment: nothing of the caller's is inherited. Each instance
    /// gets its own `AWS_LAMBDA_RUNTIME_API` besides.
    pub env: Vec<(String, String)>,
    pub output: Output,
    pub max_instances: usize,
}

/// Bounds on what is kept for diagnosis, so a long `tapctl local` does not grow without end.
const KEPT: usize = 256;

#[derive(Default)]
struct Stats {
    /// When each instance first polled for an event: its cold start ends there.
    first_polls: Vec<Instant>,
    /// What instances reported to `/runtime/init/error`.
    init_errors: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running instances of one function version.
pub struct Pool {
    launch: Launch,
    /// Started instances that serve no invocation now.
    idle: Mutex<Vec<Instance>>,
    /// One permit per instance that may exist: an invocation holds one from choosing an
    /// instance until it is done with it.
    slots: Arc<Semaphore>,
    stats: Arc<Mutex<Stats>>,
    counter: AtomicU64,
}

impl Pool {
    pub fn new(launch: Launch) -> Arc<Pool> {
        let slots = Arc::new(Semaphore::new(launch.max_instances.max(1)));
        Arc::new(Pool {
            launch,
            idle: Mutex::new(Vec::new()),
            slots,
            stats: Arc::new(Mutex::new(Stats::default())),
            counter: AtomicU64::new(0),
        })
    }

    /// Starts `n` instances now (at most the bound), as provisioned concurrency would.
    pub async fn prestart(&self, n: usize) -> std::io::Result<()> {
        for _ in 0..n.min(self.launch.max_instances) {
            let instance = Instance::start(&self.launch, &self.stats).await?;
            lock(&self.idle).push(instance);
        }
        Ok(())
    }

    pub fn first_polls(&self) -> Vec<Instant> {
        lock(&self.stats).first_polls.clone()
    }

    pub fn init_errors(&self) -> Vec<String> {
        lock(&self.stats).init_errors.clone()
    }

    /// Instances started and serving no invocation now.
    pub fn idle(&self) -> usize {
        lock(&self.idle).len()
    }

    /// Stops the instances that have served nothing for `age` (dropping one kills it).
    pub fn retire_idle(&self, age: Duration) {
        lock(&self.idle).retain(|i| i.idle_since.elapsed() < age);
    }

    /// Runs `event` on an instance and waits up to `timeout` (which includes waiting for a free
    /// instance). `request_id` is Lambda's for this invocation; `invoked_arn` what the function
    /// is told it was invoked as (an alias's ARN when the API calls a colour).
    pub async fn invoke(
        self: &Arc<Self>,
        request_id: Option<String>,
        event: &Value,
        invoked_arn: &str,
        timeout: Duration,
    ) -> Finished {
        let id = request_id.unwrap_or_else(|| format!("local-{:08}", self.counter.fetch_add(1, Ordering::Relaxed)));
        let pending = Pending {
            id,
            event: event.to_string().into_bytes(),
            deadline: SystemTime::now() + timeout,
            invoked_arn: invoked_arn.to_string(),
        };
        let me = Arc::clone(self);
        let deadline = tokio::time::Instant::now() + timeout;
        tokio::spawn(async move { me.run(pending, deadline).await }).await.unwrap_or_else(|e| Finished {
            outcome: Outcome::Error(json!({"errorType": "Runtime.Unavailable", "errorMessage": e.to_string()})),
            duration: None,
        })
    }

    async fn run(&self, pending: Pending, deadline: tokio::time::Instant) -> Finished {
        let timed_out = Finished { outcome: Outcome::TimedOut, duration: None };
        let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, Arc::clone(&self.slots).acquire_owned()).await else {
            return timed_out;
        };
        let mut pending = Some(pending);
        loop {
            let (instance, was_idle) = match self.take_idle() {
                Some(i) => (i, true),
                None => match Instance::start(&self.launch, &self.stats).await {
                    Ok(i) => (i, false),
                    Err(e) => {
                        tracing::error!("starting {}: {e}", self.launch.program.display());
                        return Finished {
                            outcome: Outcome::Error(json!({
                                "errorType": "Runtime.InvalidEntrypoint",
                                "errorMessage": format!("cannot start the bootstrap: {e}")
                            })),
                            duration: None,
                        };
                    }
                },
            };
            let Some(event) = pending.take() else { return timed_out };
            let id = event.id.clone();
            let (reply, answer) = oneshot::channel();
            let mut exited = instance.exited.clone();
            let sent = instance.events.send((event, reply)).await;
            let answered = match sent {
                Err(mpsc::error::SendError((event, _))) => {
                    pending = Some(event);
                    None
                }
                Ok(()) => tokio::select! {
                    // An answer that came just before the process exited is still its answer.
                    biased;
                    answered = answer => answered.ok(),
                    _ = exited.wait_for(Option::is_some) => None,
                    // Dropping the instance kills it (Lambda resets an environment after a timeout).
                    _ = tokio::time::sleep_until(deadline) => return timed_out,
                },
            };
            if let Some((outcome, took)) = answered {
                self.put_back(instance);
                return Finished { outcome, duration: Some(took) };
            }
            // The instance is gone. If it died idle, before taking this event, the event goes to
            // a new instance; once taken (or from a fresh instance: its init failed) it fails.
            let taken = lock(&instance.state).taken.as_deref() == Some(id.as_str());
            if !was_idle || taken {
                return instance.exit_outcome(&id);
            }
            if pending.is_none() {
                // The event sat in the dead instance's inbox: take it back.
                pending = instance.reclaim();
            }
            if pending.is_none() {
                return instance.exit_outcome(&id);
            }
        }
    }

    fn put_back(&self, mut instance: Instance) {
        instance.idle_since = Instant::now();
        lock(&self.idle).push(instance);
    }

    /// An idle instance that is still running; those that exited meanwhile are dropped.
    fn take_idle(&self) -> Option<Instance> {
        let mut idle = lock(&self.idle);
        while let Some(i) = idle.pop() {
            if i.exited.borrow().is_none() {
                return Some(i);
            }
        }
        None
    }
}

/// An event on its way to an instance.
struct Pending {
    id: String,
    event: Vec<u8>,
    deadline: SystemTime,
    invoked_arn: String,
}

type Reply = oneshot::Sender<(Outcome, Duration)>;

/// The invocation an instance is serving.
struct Current {
    id: String,
    reply: Reply,
    handed_at: Instant,
}

#[derive(Default)]
struct InstanceState {
    current: Option<Current>,
    /// The id of the last event `next` handed over.
    taken: Option<String>,
    polled: bool,
    init_error: Option<String>,
}

/// One process and its own Runtime API. Dropping it kills the process (its finalizer).
struct Instance {
    events: mpsc::Sender<(Pending, Reply)>,
    /// The inbox `next` reads, kept to take back an event a dead instance never took.
    inbox: Arc<tokio::sync::Mutex<mpsc::Receiver<(Pending, Reply)>>>,
    idle_since: Instant,
    /// Set when the process has exited: how it ended.
    exited: watch::Receiver<Option<String>>,
    state: Arc<Mutex<InstanceState>>,
    _kill: oneshot::Sender<()>,
}

impl Instance {
    async fn start(launch: &Launch, stats: &Arc<Mutex<Stats>>) -> std::io::Result<Instance> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        // Opened before anything is started, so a failure leaves nothing behind.
        let output = match &launch.output {
            Output::Inherit => None,
            Output::File(path) => Some(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (events, inbox) = mpsc::channel::<(Pending, Reply)>(1);
        let inbox = Arc::new(tokio::sync::Mutex::new(inbox));
        let state = Arc::new(Mutex::new(InstanceState::default()));
        let (st, stats, kept_inbox) = (Arc::clone(&state), Arc::clone(stats), Arc::clone(&inbox));
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (inbox, st, stats) = (Arc::clone(&inbox), Arc::clone(&st), Arc::clone(&stats));
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (inbox, st, stats) = (Arc::clone(&inbox), Arc::clone(&st), Arc::clone(&stats));
                        async move { serve(req, inbox, st, stats).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let mut cmd = tokio::process::Command::new(&launch.program);
        cmd.env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", &address)
            .stdin(Stdio::null())
            // Its own process group: what the bootstrap starts is killed with it.
            .process_group(0)
            .kill_on_drop(true);
        match output {
            None => cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit()),
            Some(file) => match file.try_clone() {
                Ok(copy) => cmd.stdout(copy).stderr(file),
                Err(e) => {
                    server.abort();
                    return Err(e);
                }
            },
        };
        let mut child = match spawn_fresh_executable(&mut cmd).await {
            Ok(c) => c,
            Err(e) => {
                server.abort();
                return Err(e);
            }
        };
        let group = child.id();
        let (kill, killed) = oneshot::channel::<()>();
        let (exit, exited) = watch::channel(None);
        tokio::spawn(async move {
            // Either branch ends the process's life: it exited, or its Instance was dropped.
            let ended = tokio::select! {
                status = child.wait() => Some(status),
                _ = killed => None,
            };
            // The whole group goes, whether the bootstrap exited or is being killed: nothing it
            // started outlives it (Lambda resets the environment).
            if let Some(pid) = group.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let status = match ended {
                Some(status) => status,
                None => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            server.abort();
            let _ = exit.send(Some(match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            }));
        });
        Ok(Instance { events, inbox: kept_inbox, idle_since: Instant::now(), exited, state, _kill: kill })
    }

    /// The event waiting in this (dead) instance's inbox, if `next` never took it.
    fn reclaim(&self) -> Option<Pending> {
        self.inbox.try_lock().ok()?.try_recv().ok().map(|(p, _)| p)
    }

    /// What an invocation ends with when its instance exited under it: what the instance
    /// reported as its init error, or Lambda's `Runtime.ExitError`.
    fn exit_outcome(&self, request_id: &str) -> Finished {
        let init_error = lock(&self.state).init_error.clone();
        let document = init_error.and_then(|e| serde_json::from_str::<Value>(&e).ok()).unwrap_or_else(|| {
            let status = self.exited.borrow().clone().unwrap_or_else(|| "no answer".into());
            json!({
                "errorType": "Runtime.ExitError",
                "errorMessage": format!("RequestId: {request_id} Error: Runtime exited with error: {status}")
            })
        });
        Finished { outcome: Outcome::Error(document), duration: None }
    }
}

/// Starts a program this process may just have written, retrying while Linux answers "text file
/// busy". Writing a file and executing it from a multi-threaded process races with every other
/// thread's fork: a child forked while the file was open for writing holds that descriptor until
/// its own exec, and exec fails with ETXTBSY meanwhile (rust-lang/rust#114554, golang/go#22315).
/// The window is the child's fork-to-exec time, so a few short retries close it; a file that
/// stays busy for 2 s is a real fault.
async fn spawn_fresh_executable(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            spawned => return spawned,
        }
    }
}

/// Lambda's quota on a synchronous invocation's response, in the bytes its error names.
const MAX_RESPONSE: usize = 6_291_556;

/// Lambda's error document for a response over `MAX_RESPONSE`.
fn response_too_large() -> Value {
    json!({
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."),
    })
}

fn reply(status: u16, body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

async fn serve(
    req: Request<Incoming>,
    inbox: Arc<tokio::sync::Mutex<mpsc::Receiver<(Pending, Reply)>>>,
    st: Arc<Mutex<InstanceState>>,
    stats: Arc<Mutex<Stats>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    // Lambda's synchronous payload quota: a larger response fails the invocation
    // (`Function.ResponseSizeTooLarge`) and the runtime is told 413. The excess is read and
    // dropped, not kept, so that the runtime, still sending, gets that answer and not a reset.
    let mut incoming = req.into_body();
    let (mut kept, mut too_large) = (Vec::new(), false);
    while let Some(frame) = incoming.frame().await {
        if let Ok(data) = frame?.into_data() {
            too_large = too_large || kept.len() + data.len() > MAX_RESPONSE;
            if !too_large {
                kept.extend_from_slice(&data);
            }
        }
    }
    let body = Bytes::from(kept);
    let parts: Vec<&str> = path.trim_start_matches("/2018-06-01/runtime/").split('/').collect();
    Ok(match parts.as_slice() {
        ["invocation", "next"] => {
            if !std::mem::replace(&mut lock(&st).polled, true) {
                let mut stats = lock(&stats);
                if stats.first_polls.len() < KEPT {
                    stats.first_polls.push(Instant::now());
                }
            }
            let Some((p, reply_to)) = inbox.lock().await.recv().await else { return Ok(reply(500, b"")) };
            {
                let mut state = lock(&st);
                state.taken = Some(p.id.clone());
                state.current = Some(Current { id: p.id.clone(), reply: reply_to, handed_at: Instant::now() });
            }
            let deadline_ms =
                p.deadline.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default();
            Response::builder()
                .status(200)
                .header("Lambda-Runtime-Aws-Request-Id", &p.id)
                .header("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", p.invoked_arn)
                .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
                .body(Full::new(Bytes::from(p.event)))
                .unwrap_or_else(|_| reply(500, b""))
        }
        ["invocation", id, kind @ ("response" | "error")] => {
            let value: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
            let current = {
                let mut state = lock(&st);
                match state.current.take() {
                    Some(c) if c.id == *id => Some(c),
                    other => {
                        state.current = other;
                        None
                    }
                }
            };
            let Some(current) = current else { return Ok(reply(400, br#"{"errorType":"InvalidRequestID"}"#)) };
            if too_large {
                let _ = current.reply.send((Outcome::Error(response_too_large()), current.handed_at.elapsed()));
                return Ok(reply(413, br#"{"errorType":"RequestEntityTooLarge"}"#));
            }
            let outcome = if *kind == "response" { Outcome::Response(value) } else { Outcome::Error(value) };
            let _ = current.reply.send((outcome, current.handed_at.elapsed()));
            reply(202, br#"{"status":"OK"}"#)
        }
        ["init", "error"] => {
            let text = String::from_utf8_lossy(&body).into_owned();
            lock(&st).init_error = Some(text.clone());
            let mut stats = lock(&stats);
            if stats.init_errors.len() < KEPT {
                stats.init_errors.push(text);
            }
            reply(202, br#"{"status":"OK"}"#)
        }
        _ => reply(404, b""),
    })
}

#[cfg(test)]
mod tests {
    //! The execution model, on shell scripts that speak the Runtime API with curl-free bash
    //! (`/dev/tcp`): an echo, a hang, a crash. Each asserts what the caller gets back.
    use super::*;

    /// A bootstrap in bash: polls `next` over /dev/tcp and runs `act` with the event's request id
    /// in `$id` and its body in `$event`.
    fn script(dir: &std::path::Path, name: &str, act: &str) -> PathBuf {
        let path = dir.join(name);
        let body = format!(
            r#"#!/usr/bin/env bash
set -u
host=${{AWS_LAMBDA_RUNTIME_API%:*}}; port=${{AWS_LAMBDA_RUNTIME_API#*:}}
request() {{ # method path body -> prints the response's headers and body
  exec 3<>/dev/tcp/$host/$port
  printf '%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$1" "$2" "${{#3}}" "$3" >&3
  cat <&3; exec 3<&-
}}
while true; do
  answer=$(request GET /2018-06-01/runtime/invocation/next "")
  id=$(printf '%s' "$answer" | tr -d '\r' | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: //p')
  event=$(printf '%s' "$answer" | tr -d '\r' | sed '1,/^$/d')
  {act}
done
"#
        );
        std::fs::write(&path, body).expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// Instances log beside their script: a child a test leaves hanging must not hold the test's
    /// own stdout.
    fn pool(program: PathBuf, max: usize) -> Arc<Pool> {
        let env = vec![("PATH".to_string(), std::env::var("PATH").unwrap_or_default())];
        let output = Output::File(program.with_extension("log"));
        Pool::new(Launch { program, env, output, max_instances: max })
    }

    const ECHO: &str = r#"request POST /2018-06-01/runtime/invocation/$id/response "$event" >/dev/null"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_events_get_their_own_instances() {
        let dir = tempfile::tempdir().expect("dir");
        // Each instance answers only once three events have arrived, wherever they went: if two
        // shared an instance, none would ever answer (bounded by the timeout below).
        let act = format!(
            r#"touch {d}/arrived.$id; until [ $(ls {d} | grep -c arrived) -ge 3 ]; do sleep 0.05; done; {ECHO}"#,
            d = dir.path().display()
        );
        let p = pool(script(dir.path(), "echo", &act), 4);
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:f:blue";
        let calls = (0..3).map(|i| {
            let p = Arc::clone(&p);
            async move { p.invoke(Some(format!("r{i}")), &json!({ "n": i }), arn, Duration::from_secs(120)).await }
        });
        let answers = futures::future::join_all(calls).await;
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a.outcome, Outcome::Response(json!({ "n": i })));
            assert!(a.duration.is_some());
        }
        assert_eq!(p.first_polls().len(), 3);
    }

    /// Whether process `pid` still exists (a reaped process has no /proc entry).
    fn alive(pid: &str) -> bool {
        std::path::Path::new("/proc").join(pid.trim()).exists()
    }

    /// Waits for `pid` to be gone; the bound is a safety net, not a measure.
    async fn gone(pid: &str) -> bool {
        for _ in 0..600 {
            if !alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_invocation_times_out_and_its_instance_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().expect("dir");
        // Hangs on the event "hang" in a child process of its own, as a handler stuck in a
        // subprocess would; both pids are written first.
        let act = format!(
            r#"case "$event" in *hang*) sleep 600 & echo $! > {d}/child.pid; echo $$ > {d}/bootstrap.pid; wait;; esac; {ECHO}"#,
            d = dir.path().display()
        );
        let p = pool(script(dir.path(), "hang", &act), 1);
        // A timeout that ends before the instance even took the event proves nothing about the
        // kill: then the next, longer one is tried (no race with the machine's speed).
        let mut hung = None;
        for seconds in [3, 10, 30, 90] {
            let first = p.invoke(None, &json!("hang"), "arn", Duration::from_secs(seconds)).await;
            assert_eq!(first.outcome, Outcome::TimedOut);
            let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).ok().filter(|s| !s.is_empty());
            if let (Some(bootstrap), Some(child)) = (read("bootstrap.pid"), read("child.pid")) {
                hung = Some((bootstrap, child));
                break;
            }
        }
        let (bootstrap, child) = hung.expect("the bootstrap never took the event");
        assert!(gone(&bootstrap).await, "the hung bootstrap {bootstrap} was not killed");
        assert!(gone(&child).await, "the process it started ({child}) outlived it");
        // One instance at most: only killing the hung one freed the slot for this call.
        let second = p.invoke(None, &json!(2), "arn", Duration::from_secs(120)).await;
        assert_eq!(second.outcome, Outcome::Response(json!(2)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_instance_that_died_is_replaced_and_idle_ones_are_retired() {
        let dir = tempfile::tempdir().expect("dir");
        // Answers one event, then exits: idle, but dead.
        let p = pool(script(dir.path(), "once", &format!("{ECHO}; exit 0")), 1);
        for n in 0..3 {
            let f = p.invoke(None, &json!(n), "arn", Duration::from_secs(120)).await;
            assert_eq!(f.outcome, Outcome::Response(json!(n)), "event {n} went to a live instance");
        }
        let q = pool(script(dir.path(), "echo", ECHO), 2);
        q.prestart(2).await.expect("prestart");
        assert_eq!(q.idle(), 2);
        q.retire_idle(Duration::from_secs(3600));
        assert_eq!(q.idle(), 2, "recently idle instances stay");
        q.retire_idle(Duration::ZERO);
        assert_eq!(q.idle(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_response_over_lambdas_quota_fails_the_invocation_and_the_runtime_is_told() {
        let dir = tempfile::tempdir().expect("dir");
        // Answers its first event with 7 MB and writes what the Runtime API told it; echoes after.
        let act = format!(
            r#"if [ ! -e {d}/told ]; then big=$(head -c 7000000 /dev/zero | tr '\0' x); request POST /2018-06-01/runtime/invocation/$id/response "\"$big\"" > {d}/told; else {ECHO}; fi"#,
            d = dir.path().display()
        );
        let p = pool(script(dir.path(), "big", &act), 1);
        let f = p.invoke(None, &json!(1), "arn", Duration::from_secs(300)).await;
        let Outcome::Error(doc) = f.outcome else { panic!("{f:?}") };
        assert_eq!(doc["errorType"], "Function.ResponseSizeTooLarge");
        let told = std::fs::read_to_string(dir.path().join("told")).expect("the runtime's answer");
        assert!(told.starts_with("HTTP/1.1 413"), "{told}");
        // The instance lives on, as on Lambda: the next event is answered.
        let next = p.invoke(None, &json!(2), "arn", Duration::from_secs(300)).await;
        assert_eq!(next.outcome, Outcome::Response(json!(2)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_instance_that_exits_mid_invocation_fails_it_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let p = pool(script(dir.path(), "crash", "exit 3"), 1);
        // A generous timeout: the answer must come from the exit, long before it.
        let started = Instant::now();
        let f = p.invoke(Some("req-1".into()), &json!({}), "arn", Duration::from_secs(600)).await;
        assert!(started.elapsed() < Duration::from_secs(300), "the exit was noticed, not the timeout");
        let Outcome::Error(doc) = f.outcome else { panic!("{f:?}") };
        assert_eq!(doc["errorType"], "Runtime.ExitError");
        assert!(doc["errorMessage"].as_str().is_some_and(|m| m.contains("req-1") && m.contains('3')), "{doc}");
    }
}
