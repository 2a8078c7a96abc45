//! SIGINT (Ctrl-C) and SIGTERM. The handlers are installed when a command starts, so a signal
//! is never lost between two steps: inside a section that knows how to stop (a walk, a watch, a
//! follow — each `tokio::select!`s on `interrupted()`), the section reports what was done and
//! what to run next; anywhere else (checking input, loading the state) nothing has been changed
//! yet and the process exits 130 at once.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use tokio::sync::watch;

/// How many sections are waiting on `interrupted()` right now.
static LISTENING: AtomicUsize = AtomicUsize::new(0);
static RECEIVED: OnceLock<watch::Sender<Option<&'static str>>> = OnceLock::new();

/// Installs the handlers; call once, inside the runtime, before anything is changed.
pub fn install() {
    let tx = RECEIVED.get_or_init(|| watch::channel(None).0).clone();
    tokio::spawn(async move {
        loop {
            let name = next_signal().await;
            if LISTENING.load(Ordering::SeqCst) == 0 {
                crate::errln!("interrupted by {name}; nothing was changed");
                std::process::exit(i32::from(crate::error::EXIT_INTERRUPTED));
            }
            // `send` drops the value when no receiver exists yet (a section between two
            // `interrupted()` calls); `send_replace` keeps it for the next one.
            tx.send_replace(Some(name));
        }
    });
}

#[cfg(unix)]
async fn next_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn next_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// While held, a signal does not end the process at once: it is kept for the next `interrupted()`
/// (or dropped if none comes). Held across a run that holds a lock only a release can return
/// (an S3 lock would otherwise stay until its lease ran out).
pub struct Listening;

/// Defers signals until the guard is dropped; see `Listening`.
pub fn defer() -> Listening {
    LISTENING.fetch_add(1, Ordering::SeqCst);
    Listening
}

impl Drop for Listening {
    fn drop(&mut self) {
        LISTENING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves with the signal's name once SIGINT or SIGTERM arrives. The caller counts as
/// listening from this call on (not from the first poll), so that a `select!` between it and
/// the work it guards never lets a signal through to the exit-at-once path.
pub fn interrupted() -> impl Future<Output = &'static str> {
    let listening = defer();
    let mut rx = RECEIVED.get_or_init(|| watch::channel(None).0).subscribe();
    async move {
        let _listening = listening;
        loop {
            if let Some(name) = *rx.borrow_and_update() {
                return name;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}
