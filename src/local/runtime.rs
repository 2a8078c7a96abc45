//! A Lambda Runtime API (Lambda's "Using the Lambda runtime API for custom runtimes"): the one a
//! function's `bootstrap` talks to on Lambda, served on loopback so that the functions' real
//! binaries run here as they would there. `GET /2018-06-01/runtime/invocation/next` long-polls
//! for an event; the response or error is POSTed back under the request id. Several instances
//! may poll one server; like Lambda, an instance serves one invocation at a time, and a new one
//! is started when an event waits and every instance is busy (up to a bound).
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
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How an invocation ended: the function's response, or its error document (Lambda's
/// `{"errorType", "errorMessage"}`), or no answer within the function's timeout.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
    TimedOut,
}

struct Pending {
    id: String,
    event: Vec<u8>,
    deadline_ms: u128,
    invoked_arn: String,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Shared {
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    /// Instances waiting in `next` right now: an event finds one idle, or a new one is started.
    polling: usize,
    init_errors: Vec<String>,
}

/// One Runtime API: one function version's instances poll it.
pub struct RuntimeApi {
    pub address: String,
    queue: mpsc::UnboundedSender<Pending>,
    shared: Arc<Mutex<Shared>>,
    counter: AtomicU64,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl RuntimeApi {
    /// Serves on 127.0.0.1 (an ephemeral port) on the current tokio runtime.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (queue, rx) = mpsc::unbounded_channel::<Pending>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let st = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let (rx, st) = (rx.clone(), st.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (rx, st) = (rx.clone(), st.clone());
                        async move { serve(req, rx, st).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi { address, queue, shared, counter: AtomicU64::new(0) })
    }

    /// Whether an instance is waiting for an event now (else the caller may start another).
    pub fn idle_instances(&self) -> usize {
        lock(&self.shared).polling
    }

    /// What instances reported to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<String> {
        lock(&self.shared).init_errors.clone()
    }

    /// Hands `event` to the next instance that polls and waits up to `timeout` for its outcome.
    /// `request_id` is Lambda's for this invocation; `invoked_arn` what the function is told it
    /// was invoked as (an alias's ARN when the API calls a colour).
    pub async fn invoke(
        &self,
        request_id: Option<String>,
        event: &Value,
        invoked_arn: &str,
        timeout: Duration,
    ) -> Outcome {
        let id = request_id.unwrap_or_else(|| format!("local-{:08}", self.counter.fetch_add(1, Ordering::Relaxed)));
        let (reply, outcome) = oneshot::channel();
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d + timeout).as_millis())
            .unwrap_or_default();
        let pending = Pending {
            id: id.clone(),
            event: event.to_string().into_bytes(),
            deadline_ms,
            invoked_arn: invoked_arn.into(),
            reply,
        };
        if self.queue.send(pending).is_err() {
            return Outcome::Error(
                json!({"errorType": "Runtime.Unavailable", "errorMessage": "the runtime API stopped"}),
            );
        }
        match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(o)) => o,
            Ok(Err(_)) => Outcome::Error(json!({"errorType": "Runtime.ExitError", "errorMessage": "no answer"})),
            Err(_) => {
                lock(&self.shared).waiting.remove(&id);
                Outcome::TimedOut
            }
        }
    }
}

/// Counts an instance as idle while its `next` waits, also when its connection drops meanwhile.
struct Polling(Arc<Mutex<Shared>>);

impl Polling {
    fn new(st: &Arc<Mutex<Shared>>) -> Polling {
        lock(st).polling += 1;
        Polling(st.clone())
    }
}

impl Drop for Polling {
    fn drop(&mut self) {
        lock(&self.0).polling -= 1;
    }
}

fn reply(status: u16, body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

async fn serve(
    req: Request<Incoming>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    st: Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await?.to_bytes();
    let parts: Vec<&str> = path.trim_start_matches("/2018-06-01/runtime/").split('/').collect();
    Ok(match parts.as_slice() {
        ["invocation", "next"] => {
            let next = {
                let _polling = Polling::new(&st);
                rx.lock().await.recv().await
            };
            let Some(p) = next else { return Ok(reply(500, b"")) };
            lock(&st).waiting.insert(p.id.clone(), p.reply);
            Response::builder()
                .status(200)
                .header("Lambda-Runtime-Aws-Request-Id", &p.id)
                .header("Lambda-Runtime-Deadline-Ms", p.deadline_ms.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", p.invoked_arn)
                .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
                .body(Full::new(Bytes::from(p.event)))
                .unwrap_or_else(|_| reply(500, b""))
        }
        ["invocation", id, kind @ ("response" | "error")] => {
            let value: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
            if let Some(tx) = lock(&st).waiting.remove(*id) {
                let _ = tx.send(if *kind == "response" { Outcome::Response(value) } else { Outcome::Error(value) });
            }
            reply(202, br#"{"status":"OK"}"#)
        }
        ["init", "error"] => {
            lock(&st).init_errors.push(String::from_utf8_lossy(&body).into_owned());
            reply(202, br#"{"status":"OK"}"#)
        }
        _ => reply(404, b""),
    })
}
