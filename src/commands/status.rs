//! `tapctl status`: every resource, its ids, and whether it exists as recorded.

use super::plan::{plan_all, planned_resources};
use super::report::{Report, Resource};
use super::{report_failures, Session};
use crate::cli::StatusArgs;
use crate::engine::Outcome;
use crate::error::Error;
use crate::outln;
use crate::resources::monitoring::alarms;
use crate::resources::Change;
use crate::traffic::Traffic;
use serde_json::Value;
use std::collections::BTreeMap;

/// ok: exists as recorded. missing: recorded, gone. drifted: exists, differs. untracked: exists,
/// not in the state (the next `up` adopts it). absent: neither recorded nor present. off: left out
/// by the settings, and nothing of it exists.
pub fn status_of(recorded: bool, change: &Change) -> &'static str {
    match (recorded, change) {
        (true, Change::Create) => "missing",
        (false, Change::Create) => "absent",
        (_, Change::Update(_) | Change::Replace(_)) => "drifted",
        (_, Change::Waiting(_)) => "waiting",
        (true, Change::NoOp) => "ok",
        (false, Change::NoOp) => "untracked",
        (_, Change::Off) => "off",
    }
}

/// The split drawn as 40 cells: `blue ██████████████████████████████████████░░ green`.
pub fn bar(t: &Traffic) -> String {
    let share = t.canary.as_ref().map(|c| c.weight).unwrap_or(0.0);
    let other = ((share / 100.0) * 40.0).round() as usize;
    let other = if share > 0.0 { other.max(1) } else { other };
    let (live, canary_color) = (t.live, t.canary.as_ref().map(|c| c.color).unwrap_or(t.live.other()));
    format!(
        "{live} {}{} {canary_color}  ({live} {} %, {canary_color} {share} %)",
        "█".repeat(40 - other),
        "░".repeat(other),
        100.0 - share
    )
}

/// Who gets the traffic, the versions behind each colour, and every alarm's state — read from
/// API Gateway, Lambda (through the functions node's observation) and CloudWatch.
struct TrafficReport {
    traffic: Option<Traffic>,
    versions: Value,
    alarms: BTreeMap<String, String>,
}

async fn traffic_report(session: &Session<'_>) -> Result<TrafficReport, Error> {
    // As the functions' nodes saw it in this run: the stage is read once.
    let traffic =
        crate::resources::api::stage::shared_traffic(&session.memo, &session.clients.apigateway, &session.names.api())
            .await?;
    // {"blue": {"process": "3", …}, "green": {…}} from each function's own outputs.
    let versions = {
        let outputs = session.outputs.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_colour = serde_json::Map::new();
        for colour in crate::traffic::Color::BOTH {
            let per: serde_json::Map<String, Value> = crate::names::FUNCTIONS
                .iter()
                .filter_map(|f| {
                    let v =
                        outputs.get(crate::resources::functions::id_of(f))?.get("versions")?.get(colour.as_str())?;
                    Some((f.to_string(), v.clone()))
                })
                .collect();
            by_colour.insert(colour.as_str().to_string(), Value::Object(per));
        }
        Value::Object(by_colour)
    };
    let names: Vec<String> = alarms::specs(&session.names, "").into_iter().map(|s| s.name).collect();
    let alarms = alarms::states(&session.clients.cloudwatch, &names).await?;
    Ok(TrafficReport { traffic, versions, alarms })
}

/// The widest a line of the human table gets (ids and long drifts are cut; `--wide` and
/// `--json` show them whole).
pub const WIDTH: usize = 120;

pub async fn run(session: &Session<'_>, args: &StatusArgs) -> Result<u8, Error> {
    let outcomes = plan_all(session).await?;
    let traffic = traffic_report(session).await?;
    let (failed, _) = report_failures(&session.progress, &outcomes);
    let mut resources = planned_resources(session, &outcomes);
    for r in &mut resources {
        if let Some(Outcome::Done(change)) = outcomes.get(&r.node) {
            r.status = Some(status_of(session.was_recorded(&r.node), change));
        }
    }
    // Healthy: everything exists as recorded (a release waiting for a canary to end is not a fault,
    // nor is a part the settings leave out, such as a custom domain nobody asked for).
    let unhealthy: Vec<&Resource> =
        resources.iter().filter(|r| !matches!(r.status, Some("ok" | "waiting" | "off"))).collect();
    let healthy = unhealthy.is_empty() && failed == 0;
    let mut report = Report::new(session, "status", resources.clone());
    report.healthy = Some(healthy);
    report.traffic = traffic.traffic.as_ref().and_then(|t| serde_json::to_value(t).ok());
    report.versions = Some(traffic.versions.clone());
    report.alarms = Some(traffic.alarms.clone());
    report.outputs = Some(session.operator_outputs());
    report.warnings.extend(crate::resources::account::controls::warning(&session.config));
    if session.run.json {
        report.print();
    } else {
        print_table(&resources, args.wide);
        outln!();
        match &traffic.traffic {
            Some(t) => outln!("traffic: {}", bar(t)),
            None => outln!("traffic: no stage yet (run `tapctl up`)"),
        }
        if let Some(v) = traffic.versions.as_object() {
            for (color, per) in v {
                let list: Vec<String> = per
                    .as_object()
                    .map(|m| m.iter().map(|(f, n)| format!("{f} v{}", n.as_str().unwrap_or("?"))).collect())
                    .unwrap_or_default();
                if !list.is_empty() {
                    outln!("  {color:5} runs {}", list.join(", "));
                }
            }
        }
        let firing: Vec<&str> = traffic.alarms.iter().filter(|(_, s)| *s == "ALARM").map(|(n, _)| n.as_str()).collect();
        match firing.is_empty() {
            true => outln!("alarms: {} total, none in ALARM", traffic.alarms.len()),
            false => outln!("alarms: {} total, {} in ALARM: {}", traffic.alarms.len(), firing.len(), firing.join(", ")),
        }
        let outputs = session.operator_outputs();
        if let Some(url) = outputs.get("api_url") {
            outln!("api: {}", super::stacks::plain(url));
        }
        for w in &report.warnings {
            outln!("warning: {w}");
        }
        outln!(
            "{}: {} ({})",
            session.names.suffix,
            if healthy { "healthy".to_string() } else { format!("{} resource(s) need `tapctl up`", unhealthy.len()) },
            session.cost_line()
        );
    }
    if failed > 0 {
        return Err(Error::NodesFailed { count: failed });
    }
    Ok(if healthy { 0 } else { EXIT_UNHEALTHY })
}

/// `status` exits 2 when a resource is missing, drifted, or not yet in the state.
pub const EXIT_UNHEALTHY: u8 = 2;

fn print_table(resources: &[Resource], wide: bool) {
    let width = resources.iter().map(|r| r.node.len()).max().unwrap_or(10).max(8);
    let fit = |line: String| if wide { line } else { crate::output::fit(&line, WIDTH) };
    outln!(
        "{}",
        fit(format!("{:width$}  {:9}  {}", "RESOURCE", "STATUS", if wide { "IDS" } else { "" }).trim_end().to_string())
    );
    for r in resources {
        let status = r.status.unwrap_or(r.action.as_str());
        let ids = if wide { plain_ids(r) } else { String::new() };
        outln!("{}", fit(format!("{:width$}  {status:9}  {ids}", r.node).trim_end().to_string()));
        for d in &r.changes {
            outln!("{}", fit(format!("{:width$}  {:9}  {d}", "", "")));
        }
        if let Some(e) = &r.error {
            outln!("{}", fit(format!("{:width$}  {:9}  {}", "", "", e.message)));
        }
    }
}

fn plain_ids(r: &Resource) -> String {
    r.ids.values().map(super::stacks::plain).collect::<Vec<_>>().join(", ")
}

/// Repeats the status every `every` until interrupted; each round reads the state and AWS anew.
pub async fn watch(
    cli: &crate::cli::Cli,
    inv: &super::Invocation<'_>,
    run: &crate::config::RunConfig,
    clients: &crate::aws::Clients,
    packages: Option<std::sync::Arc<crate::package::Packages>>,
    every: std::time::Duration,
) -> Result<u8, Error> {
    if every.is_zero() {
        return Err(Error::invalid("--watch", "must be longer than 0s"));
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Held for the whole watch: a Ctrl-C between two selects (after a round prints, before the
    // sleep listens) is kept for the next `interrupted()` instead of exiting 130 at once.
    let _watching = crate::interrupt::defer();
    loop {
        if terminal {
            crate::out!("\x1b[2J\x1b[H");
        }
        let round = super::open_and_run(cli, inv, run.clone(), clients.clone(), packages.clone());
        let code = tokio::select! {
            r = round => match r {
                Err(Error::Interrupted(_)) => return Ok(0),
                // A failed round (a throttle, a blip) is shown and the watch goes on.
                Err(e) => {
                    crate::errln!("{}", e.render());
                    e.exit_code()
                }
                Ok(code) => code,
            },
            _ = super::interrupted() => return Ok(0),
        };
        outln!("(every {}, Ctrl-C to stop; last exit {code})", crate::config::human_duration(every));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = super::interrupted() => return Ok(0),
        }
    }
}
