//! The walker: runs `visit` on every node of a graph once all of the node's dependencies have
//! finished, at most `parallelism` at a time. A failed node's dependants are skipped (and so are
//! theirs); its siblings carry on. Every outcome is returned: nothing stops at the first error.
//!
//! A slot is held only while a node works, not while it waits: a node polling AWS for a
//! resource that takes minutes (an Aurora cluster, a NAT gateway) parks between polls and gives
//! its slot to the next ready node, as kube-runtime requeues an object that is not ready
//! instead of holding a worker.

use super::{Diagnostic, Graph};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The walker slot of the node running on this task.
#[derive(Clone)]
struct Slot {
    slots: Arc<Semaphore>,
    held: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl Slot {
    async fn take(&self) {
        // The semaphore is never closed, so acquiring only waits.
        if let Ok(permit) = self.slots.clone().acquire_owned().await {
            *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
        }
    }

    fn give_back(&self) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

tokio::task_local! {
    static SLOT: Slot;
}

/// Up to `n` more walker slots for the node running on this task, taken only if free now (never
/// waited for, so a node cannot deadlock on itself): a node working on several members of a
/// family at once stays within `--parallelism`. Outside a walk there are none. The slots go back
/// when the permits are dropped.
pub fn extra_slots(n: usize) -> Vec<OwnedSemaphorePermit> {
    SLOT.try_with(|s| (0..n).map_while(|_| s.slots.clone().try_acquire_owned().ok()).collect()).unwrap_or_default()
}

/// Awaits `pause` (the sleep between two polls of a wait) without holding the walker slot, and
/// takes a slot again before returning. Outside a walk it is just `pause`.
pub async fn parked<F: Future>(pause: F) -> F::Output {
    let slot = SLOT.try_with(Slot::clone).ok();
    if let Some(s) = &slot {
        s.give_back();
    }
    let out = pause.await;
    if let Some(s) = &slot {
        s.take().await;
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Dependencies first: create, plan, status.
    Forward,
    /// Dependants first: destroy.
    Reverse,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Done(T),
    Failed(Diagnostic),
    /// Not visited because `because` (a node it depends on, directly or not) failed.
    Skipped {
        because: String,
    },
}

impl<T> Outcome<T> {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }
}

/// The error policy: how often a node whose failure is retryable is visited again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 3, first_delay: std::time::Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    pub const NEVER: RetryPolicy = RetryPolicy { attempts: 1, first_delay: std::time::Duration::ZERO };
}

/// Visits `node` until it succeeds, fails for good, or runs out of attempts (doubling delays).
async fn visit_with_retries<T, F, Fut>(visit: &F, node: String, policy: RetryPolicy) -> Result<T, Diagnostic>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, Diagnostic>>,
{
    let mut delay = policy.first_delay;
    let mut attempt = 1;
    loop {
        match visit(node.clone()).await {
            Err(d) if d.retryable && attempt < policy.attempts => {
                parked(tokio::time::sleep(delay)).await;
                delay *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

pub async fn walk<T, F, Fut>(
    graph: &Graph,
    direction: Direction,
    parallelism: usize,
    retry: RetryPolicy,
    visit: F,
) -> BTreeMap<String, Outcome<T>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, Diagnostic>>,
{
    let reversed;
    let graph = match direction {
        Direction::Forward => graph,
        Direction::Reverse => {
            reversed = graph.reversed();
            &reversed
        }
    };
    let slots = Arc::new(Semaphore::new(parallelism.max(1)));
    let mut outcomes: BTreeMap<String, Outcome<T>> = BTreeMap::new();
    let mut waiting: BTreeSet<String> = graph.nodes().map(str::to_string).collect();
    let mut running = FuturesUnordered::new();

    loop {
        // Start (or skip) every node whose dependencies have all finished; each waits for a slot.
        let mut changed = true;
        while changed {
            changed = false;
            let ready: Vec<String> =
                waiting.iter().filter(|n| graph.dependencies(n).all(|d| outcomes.contains_key(d))).cloned().collect();
            for node in ready {
                let blocker = graph.dependencies(&node).find_map(|d| match &outcomes[d] {
                    Outcome::Done(_) => None,
                    Outcome::Failed(_) => Some(d.to_string()),
                    Outcome::Skipped { because } => Some(because.clone()),
                });
                if let Some(because) = blocker {
                    waiting.remove(&node);
                    outcomes.insert(node, Outcome::Skipped { because });
                    changed = true;
                } else {
                    waiting.remove(&node);
                    let visit = &visit;
                    let slot = Slot { slots: slots.clone(), held: Arc::default() };
                    running.push(async move {
                        slot.take().await;
                        let result = SLOT.scope(slot.clone(), visit_with_retries(visit, node.clone(), retry)).await;
                        slot.give_back();
                        (node, result)
                    });
                }
            }
        }
        match running.next().await {
            Some((node, Ok(value))) => {
                outcomes.insert(node, Outcome::Done(value));
            }
            Some((node, Err(diagnostic))) => {
                outcomes.insert(node, Outcome::Failed(diagnostic));
            }
            None => break,
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        Graph::new(edges.iter().map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect::<Vec<_>>())))
            .unwrap()
    }

    #[tokio::test]
    async fn independent_nodes_run_at_the_same_time() {
        // a and b each wait for the other at a barrier: a serial walker would never finish.
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &["a", "b"])]);
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let order = Arc::new(Mutex::new(Vec::new()));
        let run = walk(&g, Direction::Forward, 8, RetryPolicy::NEVER, |n| {
            let barrier = barrier.clone();
            let order = order.clone();
            async move {
                if n != "c" {
                    barrier.wait().await;
                }
                order.lock().unwrap().push(n.clone());
                Ok::<_, Diagnostic>(n)
            }
        });
        let outcomes = tokio::time::timeout(Duration::from_secs(5), run).await.expect("a and b never overlapped");
        assert!(outcomes.values().all(Outcome::is_done));
        assert_eq!(order.lock().unwrap().last().map(String::as_str), Some("c"));
    }

    #[tokio::test]
    async fn a_failed_node_skips_only_its_dependants() {
        let g = graph(&[("vpc", &[]), ("subnets", &["vpc"]), ("routes", &["subnets"]), ("key", &[])]);
        let outcomes = walk(&g, Direction::Forward, 4, RetryPolicy::NEVER, |n| async move {
            if n == "vpc" {
                Err(Diagnostic {
                    node: n,
                    code: Some("Boom".into()),
                    message: "failed".into(),
                    hint: None,
                    retryable: false,
                })
            } else {
                Ok(())
            }
        })
        .await;
        assert!(matches!(outcomes["vpc"], Outcome::Failed(_)));
        assert_eq!(outcomes["subnets"], Outcome::Skipped { because: "vpc".into() });
        assert_eq!(outcomes["routes"], Outcome::Skipped { because: "vpc".into() });
        assert_eq!(outcomes["key"], Outcome::Done(()));
    }

    #[tokio::test]
    async fn parallelism_bounds_the_nodes_in_flight() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &[]), ("d", &[]), ("e", &[])]);
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        walk(&g, Direction::Forward, 2, RetryPolicy::NEVER, |_| {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Diagnostic>(())
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_node_waiting_between_polls_gives_its_slot_to_the_next_ready_node() {
        // One slot, and "a-slow" starts first (nodes start in id order). It waits until "b-quick"
        // has run: if a waiting node kept its slot, "b-quick" could never start.
        let g = graph(&[("a-slow", &[]), ("b-quick", &[])]);
        let quick_ran = Arc::new(tokio::sync::Notify::new());
        let run = walk(&g, Direction::Forward, 1, RetryPolicy::NEVER, |n| {
            let quick_ran = quick_ran.clone();
            async move {
                if n == "a-slow" {
                    parked(quick_ran.notified()).await;
                } else {
                    quick_ran.notify_one();
                }
                Ok::<_, Diagnostic>(())
            }
        });
        let outcomes = tokio::time::timeout(Duration::from_secs(5), run).await.expect("the waiting node held its slot");
        assert!(outcomes.values().all(Outcome::is_done));
    }

    #[tokio::test]
    async fn a_node_takes_only_the_extra_slots_that_are_free() {
        let g = graph(&[("family", &[])]);
        let taken = Arc::new(AtomicUsize::new(usize::MAX));
        let t = taken.clone();
        walk(&g, Direction::Forward, 3, RetryPolicy::NEVER, |_| {
            let t = t.clone();
            async move {
                let extra = extra_slots(10);
                t.store(extra.len(), Ordering::SeqCst);
                Ok::<_, Diagnostic>(())
            }
        })
        .await;
        assert_eq!(taken.load(Ordering::SeqCst), 2, "three slots: its own and two free");
        assert!(extra_slots(4).is_empty(), "outside a walk there are none");
    }

    #[tokio::test]
    async fn a_retryable_failure_is_visited_again_and_a_permanent_one_is_not() {
        let g = graph(&[("flaky", &[]), ("broken", &[])]);
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let policy = RetryPolicy { attempts: 3, first_delay: Duration::from_millis(1) };
        let outcomes = walk(&g, Direction::Forward, 2, policy, |n| {
            let calls = calls.clone();
            async move {
                let seen = {
                    let mut c = calls.lock().unwrap();
                    c.push(n.clone());
                    c.iter().filter(|x| **x == n).count()
                };
                let fail =
                    |retryable| Diagnostic { node: n.clone(), code: None, message: "x".into(), hint: None, retryable };
                match n.as_str() {
                    "flaky" if seen < 3 => Err(fail(true)),
                    "broken" => Err(fail(false)),
                    _ => Ok(()),
                }
            }
        })
        .await;
        assert_eq!(outcomes["flaky"], Outcome::Done(()));
        assert!(matches!(outcomes["broken"], Outcome::Failed(_)));
        let calls = calls.lock().unwrap();
        assert_eq!(calls.iter().filter(|c| *c == "flaky").count(), 3);
        assert_eq!(calls.iter().filter(|c| *c == "broken").count(), 1, "a permanent failure is not retried");
    }

    #[tokio::test]
    async fn reverse_walk_visits_dependants_before_their_dependencies() {
        let g = graph(&[("vpc", &[]), ("subnets", &["vpc"]), ("nat", &["subnets"])]);
        let order = Arc::new(Mutex::new(Vec::new()));
        walk(&g, Direction::Reverse, 8, RetryPolicy::NEVER, |n| {
            let order = order.clone();
            async move {
                order.lock().unwrap().push(n);
                Ok::<_, Diagnostic>(())
            }
        })
        .await;
        assert_eq!(*order.lock().unwrap(), vec!["nat", "subnets", "vpc"]);
    }
}
