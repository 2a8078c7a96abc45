//! `tapctl logs <function>`: the function's CloudWatch Logs events, rendered from JSON lines.
//!
//! The functions log JSON (their LoggingConfig says so, and `lambda_runtime`'s subscriber then
//! writes tracing's JSON: `level`, `fields.message`, the event's fields); Lambda's own platform
//! lines are JSON too (`type`, `record`), or text under the Text format. Each event becomes one
//! line: its time, its level, its message, then its other fields as key=value. `--json` keeps
//! the event whole, one JSON object per line, for `jq`.

use crate::aws::{AwsError, AwsResultExt, Clients};
use crate::cli::LogsArgs;
use crate::config::{self, Selection};
use crate::error::Error;
use crate::names::{Names, FUNCTIONS};
use crate::outln;
use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::time::Duration;

/// How often `--follow` asks for new events: CloudWatch Logs delivers within seconds, and
/// FilterLogEvents is limited to a few calls per second per account and region, which other
/// followers and the stack's own readers share.
const POLL: Duration = Duration::from_secs(2);

pub async fn run(args: &LogsArgs) -> Result<u8, Error> {
    if !FUNCTIONS.contains(&args.function.as_str()) {
        return Err(Error::invalid(
            "FUNCTION",
            format!("'{}' is not a function of the stack; it is one of {}", args.function, FUNCTIONS.join(", ")),
        ));
    }
    let selection = Selection::from_args(&args.target, config::region_from_env())?;
    let sdk = crate::aws::sdk_config(&selection.region, selection.endpoint_url.as_deref()).await;
    let clients = Clients::new(&sdk, selection.endpoint_url.is_some());
    let suffix = super::stacks::resolve_suffix(&selection, &clients.s3).await?;
    let names = Names::new(&suffix, &selection.region, None);
    let reader = Reader {
        logs: &clients.logs,
        group: names.function_log_group(&args.function),
        suffix: &suffix,
        region: &selection.region,
        json: args.output.json,
    };
    let since = i64::try_from(args.since.as_millis()).unwrap_or(i64::MAX);
    let mut cursor = Cursor::new(chrono::Utc::now().timestamp_millis().saturating_sub(since).max(0));
    // Listened for before the first read: from here on a signal ends the read or the follow
    // through the select below (a follow's normal end), never as an unhandled signal.
    let signal = super::interrupted();
    tokio::pin!(signal);
    let work = async {
        reader.read(&mut cursor).await?;
        if args.follow {
            reader.follow(&mut cursor).await?;
        }
        Ok::<(), Error>(())
    };
    tokio::select! {
        biased;
        signal = &mut signal => {
            if args.follow {
                // Stopping is how a follow ends: not a failure.
                Ok(0)
            } else {
                Err(Error::Interrupted(format!("interrupted by {signal}")))
            }
        }
        done = work => done.map(|()| 0),
    }
}

struct Reader<'a> {
    logs: &'a aws_sdk_cloudwatchlogs::Client,
    group: String,
    suffix: &'a str,
    region: &'a str,
    json: bool,
}

impl Reader<'_> {
    /// Every event from the cursor on, page by page, each printed once.
    async fn read(&self, cursor: &mut Cursor) -> Result<(), Error> {
        let mut poll = cursor.poll();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .logs
                .filter_log_events()
                .log_group_name(&self.group)
                .start_time(poll.from)
                .set_next_token(token.take())
                .send()
                .await
                .aws("logs:FilterLogEvents")
                .map_err(|e| self.missing_group(e))?;
            for event in out.events() {
                if poll.admit(event) {
                    outln!("{}", self.render(event));
                }
            }
            match out.next_token() {
                // AWS may answer a page with no events and a token: the search goes on.
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        cursor.advance(poll);
        Ok(())
    }

    /// Reads what came since the last read, every POLL, until the caller stops it.
    async fn follow(&self, cursor: &mut Cursor) -> Result<(), Error> {
        loop {
            tokio::time::sleep(POLL).await;
            // `tapctl logs -f | head -3`: once the reader has gone there is no one to follow for.
            if crate::output::closed() {
                return Ok(());
            }
            match self.read(cursor).await {
                Ok(()) => {}
                // Throttling or the network outlasting the SDK's retries: the next poll asks again
                // from the same cursor, so nothing is lost; a follow should outlive a blip.
                Err(Error::Aws(e)) if e.transient => crate::errln!("warning: {e}; trying again"),
                Err(e) => return Err(e),
            }
        }
    }

    fn missing_group(&self, e: AwsError) -> Error {
        if !e.is_not_found() {
            return Error::Aws(e);
        }
        Error::State {
            message: format!("log group {} does not exist in {}", self.group, self.region),
            hint: Some(format!(
                "the stack '{}' has not been made there (or not this function yet): `tapctl up --suffix {}` creates it",
                self.suffix, self.suffix
            )),
        }
    }

    fn render(&self, event: &FilteredLogEvent) -> String {
        let millis = event.timestamp().or(event.ingestion_time()).unwrap_or(0);
        let message = event.message().unwrap_or_default();
        if self.json {
            json_line(millis, event.log_stream_name().unwrap_or_default(), message)
        } else {
            human_line(millis, message)
        }
    }
}

/// Where the next read starts, and which events at that very millisecond were already printed:
/// FilterLogEvents' startTime is inclusive, so each poll sees those again.
struct Cursor {
    from: i64,
    seen: HashSet<String>,
}

impl Cursor {
    fn new(from: i64) -> Self {
        Cursor { from, seen: HashSet::new() }
    }

    fn poll(&self) -> Poll {
        Poll { from: self.from, seen: self.seen.clone(), newest: self.from, at_newest: self.seen.clone() }
    }

    fn advance(&mut self, poll: Poll) {
        self.from = poll.newest;
        self.seen = poll.at_newest;
    }
}

/// One read's view: what it must not print again (fixed for the whole read, so that pages that
/// are not in time order cannot hide each other's events), and the newest events it printed.
struct Poll {
    from: i64,
    seen: HashSet<String>,
    newest: i64,
    at_newest: HashSet<String>,
}

impl Poll {
    fn admit(&mut self, event: &FilteredLogEvent) -> bool {
        let ts = event.timestamp().unwrap_or(self.from);
        let id = event.event_id().unwrap_or_default();
        if ts < self.from || (ts == self.from && !id.is_empty() && self.seen.contains(id)) {
            return false;
        }
        if ts > self.newest {
            self.newest = ts;
            self.at_newest.clear();
        }
        if ts == self.newest && !id.is_empty() {
            self.at_newest.insert(id.to_string());
        }
        true
    }
}

fn timestamp(millis: i64, precise: bool) -> String {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(t) if precise => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => millis.to_string(),
    }
}

/// Lambda ends a text line with a newline of its own.
fn trimmed(message: &str) -> &str {
    message.trim_end_matches(['\n', '\r'])
}

/// The event as a JSON object when it is one; a line of text (or a bare JSON scalar) is text.
fn structured(message: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(trimmed(message)) {
        Ok(Value::Object(o)) => Some(o),
        _ => None,
    }
}

/// `{"timestamp": …, "stream": …, "event": …}`: the event parsed when it is a JSON object,
/// else its text. The time keeps its milliseconds here: a program may order by it.
pub fn json_line(millis: i64, stream: &str, message: &str) -> String {
    let event = structured(message).map(Value::Object).unwrap_or_else(|| Value::String(trimmed(message).into()));
    json!({ "timestamp": timestamp(millis, true), "stream": stream, "event": event }).to_string()
}

/// `2026-11-30T18:02:03Z INFO  message key=value …`, or the text as is after the time.
pub fn human_line(millis: i64, message: &str) -> String {
    let time = timestamp(millis, false);
    let Some(mut event) = structured(message) else {
        return format!("{time} {}", printable(trimmed(message)));
    };
    // tracing's JSON puts the message and the event's fields under "fields", Lambda's platform
    // lines theirs under "record": shown at the top, as the function wrote them.
    for wrapper in ["fields", "record"] {
        if let Some(Value::Object(inner)) = event.get(wrapper).cloned() {
            event.remove(wrapper);
            for (k, v) in inner {
                event.entry(k).or_insert(v);
            }
        }
    }
    // The line already starts with the event's time.
    event.remove("timestamp");
    event.remove("time");
    let level = match event.remove("level") {
        Some(Value::String(l)) => l.to_uppercase(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let message = ["message", "msg", "type"].iter().find_map(|k| match event.get(*k) {
        Some(Value::String(_)) => event.remove(*k).map(|v| plain(&v)),
        _ => None,
    });
    let mut line = format!("{time} {level:<5}");
    if let Some(m) = message {
        line.push(' ');
        line.push_str(&m);
    }
    let mut keys: Vec<&String> = event.keys().collect();
    keys.sort();
    for k in keys {
        line.push_str(&format!(" {k}={}", value(&event[k])));
    }
    printable(line.trim_end())
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A field's value: bare when it is one word, quoted (JSON's escapes) when it has spaces, `=` or
/// quotes, so that the line splits back into its fields; objects and arrays as compact JSON.
fn value(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '=' || c == '"') => {
            Value::String(s.clone()).to_string()
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A log line must not drive the terminal (escape sequences) nor break the one-line-per-event
/// rule: control characters are shown escaped, as JSON writes them.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_796_061_723_456; // 2026-11-30T18:02:03.456Z

    #[test]
    fn a_tracing_json_line_reads_as_level_message_and_sorted_fields() {
        let line = r#"{"level":"INFO","fields":{"message":"processed","transaction_id":"t-1","code":201,"amount":"12.50 EUR"},"target":"process"}"#;
        assert_eq!(
            human_line(T, line),
            r#"2026-11-30T18:02:03Z INFO  processed amount="12.50 EUR" code=201 target=process transaction_id=t-1"#
        );
    }

    #[test]
    fn msg_and_nested_objects_and_a_missing_level() {
        assert_eq!(
            human_line(T, r#"{"level":"warn","msg":"slow","db":{"ms":12},"tags":["a"],"timestamp":"x"}"#),
            r#"2026-11-30T18:02:03Z WARN  slow db={"ms":12} tags=["a"]"#
        );
        assert_eq!(
            human_line(T, r#"{"time":"x","type":"platform.start","record":{"requestId":"r-1","version":"$LATEST"}}"#),
            "2026-11-30T18:02:03Z       platform.start requestId=r-1 version=$LATEST"
        );
    }

    #[test]
    fn text_is_printed_as_is_after_the_time_and_cannot_drive_the_terminal() {
        assert_eq!(
            human_line(T, "START RequestId: r-1 Version: $LATEST\n"),
            "2026-11-30T18:02:03Z START RequestId: r-1 Version: $LATEST"
        );
        assert_eq!(human_line(T, "42"), "2026-11-30T18:02:03Z 42");
        assert_eq!(human_line(T, "a\u{1b}[2Jb\nc"), "2026-11-30T18:02:03Z a\\u001b[2Jb\\nc");
    }

    #[test]
    fn json_lines_carry_the_event_parsed_or_as_text() {
        let v: Value = serde_json::from_str(&json_line(T, "s-1", r#"{"level":"INFO","message":"hi"}"#)).unwrap();
        assert_eq!(
            v,
            json!({"timestamp": "2026-11-30T18:02:03.456Z", "stream": "s-1", "event": {"level": "INFO", "message": "hi"}})
        );
        let v: Value = serde_json::from_str(&json_line(T, "s-1", "END RequestId: r-1\n")).unwrap();
        assert_eq!(v["event"], "END RequestId: r-1");
    }

    fn event(ts: i64, id: &str) -> FilteredLogEvent {
        FilteredLogEvent::builder().timestamp(ts).event_id(id).build()
    }

    #[test]
    fn a_poll_prints_each_event_once_even_at_the_same_millisecond() {
        let mut cursor = Cursor::new(100);
        let mut poll = cursor.poll();
        assert!(poll.admit(&event(100, "a")));
        assert!(poll.admit(&event(105, "b")));
        assert!(poll.admit(&event(103, "c")), "pages out of order still print");
        cursor.advance(poll);
        let mut poll = cursor.poll();
        assert!(!poll.admit(&event(105, "b")), "startTime is inclusive: seen again, not printed again");
        assert!(poll.admit(&event(105, "d")), "a new event of the same millisecond");
        assert!(!poll.admit(&event(104, "e")));
        cursor.advance(poll);
        assert_eq!((cursor.from, cursor.seen.len()), (105, 2));
    }
}
