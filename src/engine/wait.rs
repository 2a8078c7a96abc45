//! Waiting for AWS to finish something, with a limit and a visible reason. Used for resources
//! that pass through pending states (NAT gateways, databases, functions) and for eventual
//! consistency (a new thing not visible yet).

use super::progress::NodeProgress;
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    pub limit: Duration,
    pub first_poll: Duration,
    pub max_poll: Duration,
    pub pace: Pace,
}

/// How the time between polls grows (always within `first_poll`..=`max_poll`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// A tenth of the time waited so far: a resource that becomes ready is noticed within 10 %
    /// of the wait (or `max_poll`), whatever its duration. Exponential backoff overshoots by up
    /// to its factor: a ×1.5 backoff noticed an instance ready after 16 s at 24.6 s.
    ShareOfWait,
    /// Each interval this many times the last: for retrying a call that was refused, where every
    /// attempt is a write (terraform-provider-aws doubles from 0.5 s to 10 s).
    Backoff(f64),
}

impl WaitPolicy {
    pub const fn new(limit: Duration) -> Self {
        WaitPolicy {
            limit,
            first_poll: Duration::from_millis(500),
            max_poll: Duration::from_secs(15),
            pace: Pace::ShareOfWait,
        }
    }

    /// The pause after a poll that found the thing not ready, `waited` into the wait, the last
    /// pause having been `last`.
    pub fn next_poll(&self, waited: Duration, last: Duration) -> Duration {
        let next = match self.pace {
            Pace::ShareOfWait => waited / 10,
            Pace::Backoff(factor) => last.mul_f64(factor),
        };
        next.clamp(self.first_poll, self.max_poll.max(self.first_poll))
    }
}

/// What one poll found.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the string says what AWS reports (e.g. "state pending").
    NotYet(String),
}

#[derive(Debug)]
pub enum WaitError<E> {
    TimedOut {
        reason: String,
        waited: Duration,
        last: String,
    },
    /// The check itself failed (an AWS error, a resource in a failed state): no point waiting.
    Check(E),
}

impl<E: std::fmt::Display> std::fmt::Display for WaitError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::TimedOut { reason, waited, last } => {
                write!(f, "gave up waiting for {reason} after {}s (last seen: {last})", waited.as_secs())
            }
            WaitError::Check(e) => e.fmt(f),
        }
    }
}

/// Polls `check` with exponential backoff (×1.5, capped) until it is ready or `policy.limit`
/// has passed, showing `reason` and the elapsed time on `progress`.
pub async fn until<T, E, F, Fut>(
    progress: &NodeProgress,
    reason: &str,
    policy: WaitPolicy,
    mut check: F,
) -> Result<T, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
{
    let started = Instant::now();
    let mut delay = Duration::ZERO;
    loop {
        let last = match check().await.map_err(WaitError::Check)? {
            Poll::Ready(v) => return Ok(v),
            Poll::NotYet(seen) => seen,
        };
        let waited = started.elapsed();
        if waited >= policy.limit {
            return Err(WaitError::TimedOut { reason: reason.to_string(), waited, last });
        }
        progress.waiting(&format!("{reason}: {last}"), waited, policy.limit);
        delay = policy.next_poll(waited, delay);
        super::walk::parked(tokio::time::sleep(delay.min(policy.limit.saturating_sub(waited)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Progress;

    #[tokio::test]
    async fn waits_until_ready_and_returns_the_value() {
        let progress = Progress::new(false).start("test.node", "waiting test");
        let mut polls = 0;
        let policy = WaitPolicy {
            limit: Duration::from_secs(5),
            first_poll: Duration::from_millis(1),
            max_poll: Duration::from_millis(5),
            pace: Pace::ShareOfWait,
        };
        let v: Result<u32, WaitError<()>> = until(&progress, "thing to be ready", policy, || {
            polls += 1;
            let n = polls;
            async move { Ok(if n < 4 { Poll::NotYet(format!("pending #{n}")) } else { Poll::Ready(n) }) }
        })
        .await;
        assert_eq!(v.unwrap(), 4);
    }

    #[tokio::test]
    async fn gives_up_at_the_limit_with_the_reason_and_last_state() {
        let progress = Progress::new(false).start("test.node", "waiting test");
        let policy = WaitPolicy {
            limit: Duration::from_millis(50),
            first_poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(10),
            pace: Pace::Backoff(2.0),
        };
        let err = until::<(), &str, _, _>(&progress, "NAT gateway nat-1 to become available", policy, || async {
            Ok(Poll::NotYet("state pending".into()))
        })
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("NAT gateway nat-1") && text.contains("state pending"), "{text}");
    }

    #[test]
    fn a_ready_resource_is_noticed_within_a_tenth_of_the_wait_and_refused_calls_back_off() {
        let policy = WaitPolicy::new(Duration::from_secs(3600));
        let s = Duration::from_secs;
        assert_eq!(policy.next_poll(Duration::ZERO, Duration::ZERO), Duration::from_millis(500));
        assert_eq!(policy.next_poll(s(60), s(5)), s(6), "a tenth of a minute");
        assert_eq!(policy.next_poll(s(600), s(15)), s(15), "capped");
        // Whatever the duration, the poll after it comes within 10 % (or the cap) of it.
        for ready_at in [3, 8, 16, 45, 90, 240, 480, 1200] {
            let (mut t, mut last) = (Duration::ZERO, Duration::ZERO);
            while t < s(ready_at) {
                last = policy.next_poll(t, last);
                t += last;
            }
            let over = t - s(ready_at);
            assert!(over <= (s(ready_at) / 10).clamp(Duration::from_millis(500), s(15)), "{ready_at}s: {over:?} late");
        }
        let retry = WaitPolicy { pace: Pace::Backoff(2.0), max_poll: s(10), ..policy };
        assert_eq!(retry.next_poll(s(3), s(2)), s(4));
        assert_eq!(retry.next_poll(s(30), s(8)), s(10));
    }

    #[tokio::test]
    async fn a_failing_check_stops_the_wait_at_once() {
        let progress = Progress::new(false).start("test.node", "waiting test");
        let err = until::<(), &str, _, _>(&progress, "x", WaitPolicy::new(Duration::from_secs(60)), || async {
            Err("AccessDenied")
        })
        .await
        .unwrap_err();
        assert!(matches!(err, WaitError::Check("AccessDenied")));
    }
}
