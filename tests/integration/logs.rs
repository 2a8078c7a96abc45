//! `tapctl logs`: a function's events from its log group, as lines a person reads and as JSON
//! Lines. The group and its events are made here with the SDK, as Lambda would write them; the
//! stack itself is not needed (and `up` would be slow).

use super::harness::Account;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const GROUP: &str = "/aws/lambda/payment-process-qa";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

/// The time as `tapctl logs` shows it.
fn shown(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).expect("a time").format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn make_group(acct: &Account, streams: &[&str]) {
    acct.block_on(async {
        acct.logs.create_log_group().log_group_name(GROUP).send().await.expect("create the log group");
        for s in streams {
            acct.logs.create_log_stream().log_group_name(GROUP).log_stream_name(*s).send().await.expect("a stream");
        }
    });
}

/// Writes events to a stream, as the function's instance would (in time order, as AWS requires).
fn put(acct: &Account, stream: &str, events: &[(i64, &str)]) {
    let events = events
        .iter()
        .map(|(ts, m)| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(*ts)
                .message(*m)
                .build()
                .expect("a log event")
        })
        .collect::<Vec<_>>();
    acct.block_on(
        acct.logs.put_log_events().log_group_name(GROUP).log_stream_name(stream).set_log_events(Some(events)).send(),
    )
    .expect("put the events");
}

const PROCESSED: &str = r#"{"level":"INFO","fields":{"message":"processed","request_id":"r-1","transaction_id":"t-1","code":201,"note":"two words"},"target":"process"}"#;
const FAILED: &str =
    r#"{"level":"ERROR","msg":"could not send the alert","error":{"code":"Throttling"},"request_id":"r-2"}"#;
const START: &str = "START RequestId: r-3 Version: $LATEST\n";

#[test]
fn logs_renders_json_events_as_level_message_and_fields_and_text_as_is() {
    let acct = Account::new();
    make_group(&acct, &["2026/11/30/[$LATEST]a", "2026/11/30/[$LATEST]b"]);
    let t = now_ms() - 60_000;
    put(
        &acct,
        "2026/11/30/[$LATEST]a",
        &[(t - 2 * 3_600_000, r#"{"level":"INFO","message":"too old"}"#), (t, PROCESSED), (t + 2_000, START)],
    );
    // Another instance, between the first one's events: the output follows time, not streams.
    put(&acct, "2026/11/30/[$LATEST]b", &[(t + 1_000, FAILED)]);

    let run = acct.ok(&["logs", "process", "--suffix", "qa", "--since", "1h"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{} INFO  processed code=201 note=\"two words\" request_id=r-1 target=process transaction_id=t-1",
                shown(t)
            ),
            format!(
                "{} ERROR could not send the alert error={{\"code\":\"Throttling\"}} request_id=r-2",
                shown(t + 1_000)
            ),
            format!("{} START RequestId: r-3 Version: $LATEST", shown(t + 2_000)),
        ],
        "{}",
        run.stderr
    );
    assert!(!run.stdout.contains("too old"), "--since 1h leaves out an event of two hours ago");
    let calls = acct.proxy.calls();
    assert!(calls.iter().all(|c| c.0 == "logs:FilterLogEvents"), "logs only reads: {calls:?}");

    let run = acct.ok(&["logs", "process", "--suffix", "qa", "--since", "1h", "--json"]);
    let docs: Vec<Value> = run.stdout.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(docs.len(), 3, "{}", run.stdout);
    assert_eq!(docs[0]["event"], serde_json::from_str::<Value>(PROCESSED).unwrap());
    assert_eq!(docs[0]["stream"], "2026/11/30/[$LATEST]a");
    let time = docs[0]["timestamp"].as_str().expect("a timestamp");
    assert!(time.starts_with(shown(t).trim_end_matches('Z')) && time.ends_with('Z'), "{time}");
    assert_eq!(docs[1]["event"]["error"]["code"], "Throttling");
    assert_eq!(docs[1]["stream"], "2026/11/30/[$LATEST]b");
    assert_eq!(docs[2]["event"], "START RequestId: r-3 Version: $LATEST");
}

#[test]
fn logs_refuses_an_unknown_function_naming_the_valid_ones_without_calling_aws() {
    let acct = Account::new();
    let run = acct.run(&["logs", "refund", "--suffix", "qa"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("FUNCTION"), "{}", run.stderr);
    assert!(run.stderr.contains("validate, fraud-check, process, rotate-secret"), "{}", run.stderr);
    assert!(acct.proxy.calls().is_empty(), "AWS was called: {:?}", acct.proxy.calls());
}

#[test]
fn logs_names_a_missing_log_group_and_suggests_up() {
    let acct = Account::new();
    let run = acct.run(&["logs", "validate", "--suffix", "qa"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("/aws/lambda/payment-validate-qa"), "{}", run.stderr);
    assert!(run.stderr.contains("tapctl up --suffix qa"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// stdout of a running tapctl, line by line, with an overall limit so that a broken follow
/// fails the test instead of hanging it.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
    deadline: Instant,
}

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx, seen: Vec::new(), deadline: Instant::now() + Duration::from_secs(120) }
    }

    fn until(&mut self, child: &mut Child, wanted: &str) {
        while !self.seen.iter().any(|l| l.contains(wanted)) {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("no line with {wanted:?}; got {:#?}", self.seen);
                }
            }
        }
    }
}

#[test]
fn logs_follow_prints_new_events_once_until_interrupted_then_exits_0() {
    let acct = Account::new();
    make_group(&acct, &["s-1", "s-2"]);
    put(&acct, "s-1", &[(now_ms() - 1_000, r#"{"level":"INFO","message":"first"}"#)]);
    let mut child = acct
        .tapctl(&["logs", "process", "--suffix", "qa", "--since", "1h", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tapctl logs --follow");
    let mut lines = Lines::of(&mut child);
    lines.until(&mut child, "first");
    put(&acct, "s-2", &[(now_ms(), r#"{"level":"WARN","message":"second","attempt":2}"#)]);
    lines.until(&mut child, "second");
    // Polls of the same millisecond again (startTime is inclusive) until the signal: still once.
    let polls = acct.proxy.calls().len();
    while acct.proxy.calls().len() < polls + 2 {
        assert!(Instant::now() < lines.deadline, "tapctl stopped polling");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().expect("tapctl exits");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    while let Ok(line) = lines.rx.recv_timeout(Duration::from_secs(10)) {
        lines.seen.push(line);
    }
    assert_eq!(lines.seen.iter().filter(|l| l.contains("first")).count(), 1, "{:#?}", lines.seen);
    let second: Vec<&String> = lines.seen.iter().filter(|l| l.contains("second")).collect();
    assert_eq!(second.len(), 1, "{:#?}", lines.seen);
    assert!(second[0].contains("WARN  second attempt=2"), "{}", second[0]);
}
