//! Progress: one live line per in-flight node (indicatif) on a terminal, plain timestamped lines
//! otherwise. Always on stderr, so stdout stays clean for summaries and JSON.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
    started: Instant,
}

impl Progress {
    /// Live bars when `live` (a terminal, and --no-progress not given), plain lines otherwise.
    pub fn new(live: bool) -> Self {
        let bars = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { bars, started: Instant::now() }
    }

    /// A line of its own, outside any node.
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(line);
            }
            None => crate::errln!("{line}"),
        }
    }

    pub fn start(&self, node: &str, doing: &str) -> NodeProgress {
        let bar = self.bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(node.to_string());
            bar.set_message(doing.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            self.plain(node, doing);
        }
        NodeProgress {
            progress: self.clone(),
            node: node.to_string(),
            bar,
            started: Instant::now(),
            last_wait_line: Arc::new(Mutex::new(None)),
        }
    }

    fn plain(&self, node: &str, msg: &str) {
        crate::errln!("[{:>6.1}s] {node}: {msg}", self.started.elapsed().as_secs_f64());
    }
}

/// The progress of one node.
pub struct NodeProgress {
    progress: Progress,
    node: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_wait_line: Arc<Mutex<Option<(String, Instant)>>>,
}

/// How often a plain-mode wait repeats itself, so a log shows it is still alive.
const PLAIN_WAIT_REPEAT: Duration = Duration::from_secs(30);

impl NodeProgress {
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn step(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None => self.progress.plain(&self.node, msg),
        }
    }

    /// "waiting for <reason> (12s, up to 10m)": shown live, or as a plain line when the reason
    /// changes and every 30 s after.
    pub fn waiting(&self, reason: &str, waited: Duration, limit: Duration) {
        let human = crate::config::human_duration;
        let msg = format!("waiting for {reason} ({}, up to {})", human(waited), human(limit));
        match &self.bar {
            Some(b) => b.set_message(msg),
            None => {
                let mut last = self.last_wait_line.lock().unwrap_or_else(|p| p.into_inner());
                let due = match &*last {
                    Some((r, at)) => r != reason || at.elapsed() >= PLAIN_WAIT_REPEAT,
                    None => true,
                };
                if due {
                    self.progress.plain(&self.node, &msg);
                    *last = Some((reason.to_string(), Instant::now()));
                }
            }
        }
    }

    pub fn finish(self, summary: &str) {
        let line = format!("{summary} ({:.1}s)", self.started.elapsed().as_secs_f64());
        match &self.bar {
            Some(b) => {
                b.finish_and_clear();
                self.progress.println(&format!("✓ {}: {line}", self.node));
            }
            None => self.progress.plain(&self.node, &line),
        }
    }

    pub fn fail(self, summary: &str) {
        match &self.bar {
            Some(b) => {
                b.finish_and_clear();
                self.progress.println(&format!("✗ {}: {summary}", self.node));
            }
            None => self.progress.plain(&self.node, &format!("FAILED: {summary}")),
        }
    }
}
