//! `tapctl shift`: moves payment traffic between the blue and green aliases (design.md §7).
//!
//! The stage's traffic is read and patched through `resources::api::stage`, its one owner.
//! Every change is one UpdateStage call, so the stage is never half-shifted: 1-99 sets the
//! canary (its `stageVariableOverrides` name the target colour), 100 promotes (the stage
//! variable becomes the target colour and the canary goes, in the same call), 0 removes the
//! canary. Everything that could refuse is checked before the first change. While baking, the
//! alarms of the API and of the target colour are read every `--poll`; one in ALARM restores
//! the traffic as it was before the command (the live colour takes every request again) and
//! the command fails.

use super::report::print_json;
use super::Session;
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::cli::ShiftArgs;
use crate::config::human_duration;
use crate::error::Error;
use crate::resources::api::rest::ROUTES;
use crate::resources::api::stage::{self, patches, restore, update};
use crate::resources::monitoring::alarms;
use crate::traffic::{Traffic, STAGE};
use serde_json::json;
use std::time::{Duration, Instant};

/// The weights this run walks through, checked (before any AWS call): each 0-100, a
/// progression only increasing, a watch only over a weight that sends traffic somewhere.
pub fn weights(args: &ShiftArgs) -> Result<Vec<u8>, Error> {
    if args.watch.is_some() && args.weight == Some(0) {
        return Err(Error::invalid("--watch", "needs a weight of 1-100: --weight 0 sends no traffic to watch"));
    }
    if args.poll.is_zero() {
        return Err(Error::invalid("--poll", "must be longer than 0s"));
    }
    match (&args.steps, args.weight) {
        (Some(steps), _) => {
            let ok = !steps.is_empty()
                && steps.iter().all(|w| (1..=100).contains(w))
                && steps.windows(2).all(|w| w[0] < w[1]);
            if !ok {
                return Err(Error::invalid(
                    "--steps",
                    format!(
                        "must be increasing weights of 1-100, e.g. 10,50,100; got {}",
                        steps.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
                    ),
                ));
            }
            Ok(steps.iter().map(|w| *w as u8).collect())
        }
        (None, Some(w)) if (0..=100).contains(&w) => Ok(vec![w as u8]),
        (None, Some(w)) => Err(Error::invalid(
            "--weight",
            format!("must be a percentage from 0 (roll back) to 100 (promote), got {w}"),
        )),
        (None, None) => Err(Error::invalid("--weight", "is required (or --steps)")),
    }
}

async fn read_stage(apigw: &aws_sdk_apigateway::Client, api: &str) -> Result<stage::Stage, Error> {
    stage::stage(apigw, api)
        .await?
        .ok_or_else(|| Error::Refused(format!("the API has no stage '{STAGE}': run `tapctl up` first")))
}

async fn read(apigw: &aws_sdk_apigateway::Client, api: &str) -> Result<Traffic, Error> {
    Ok(stage::traffic_of(&read_stage(apigw, api).await?)?)
}

fn describe(t: &Traffic) -> String {
    match &t.canary {
        None => format!("{} takes 100 %", t.live),
        Some(c) => format!("{} takes {} %, {} takes {} %", t.live, 100.0 - c.weight, c.color, c.weight),
    }
}

/// Reads the alarms every `poll` for `bake`; the names of those in ALARM as soon as any is.
async fn bake(session: &Session<'_>, names: &[String], bake: Duration, poll: Duration) -> Result<Vec<String>, Error> {
    let started = Instant::now();
    loop {
        let states = alarms::states(&session.clients.cloudwatch, names).await?;
        let firing: Vec<String> = states.iter().filter(|(_, s)| *s == "ALARM").map(|(n, _)| n.clone()).collect();
        if !firing.is_empty() {
            return Ok(firing);
        }
        let waited = started.elapsed();
        if waited >= bake {
            return Ok(vec![]);
        }
        session.progress.println(&format!(
            "baking: {} of {}, {} alarms OK",
            human_duration(waited),
            human_duration(bake),
            states.values().filter(|s| *s == "OK").count()
        ));
        tokio::time::sleep(poll.min(bake - waited)).await;
    }
}

pub async fn run(session: &Session<'_>, args: &ShiftArgs) -> Result<u8, Error> {
    let plan = weights(args)?;
    let apigw = &session.clients.apigateway;
    let names = &session.names;
    let to = args.to;

    // Everything that can refuse, before the first change.
    let api = stage::find_api(apigw, &names.api())
        .await?
        .ok_or_else(|| Error::Refused(format!("there is no API {}: run `tapctl up` first", names.api())))?;
    // One read of the stage: the traffic before, and the deployment a canary runs.
    let live = read_stage(apigw, &api).await?;
    let before = stage::traffic_of(&live)?;
    let deployment_id = live.deployment_id().unwrap_or_default().to_string();
    for f in ROUTES {
        let function = names.function(f);
        let alias = session
            .clients
            .lambda
            .get_alias()
            .function_name(&function)
            .name(to.as_str())
            .send()
            .await
            .aws("lambda:GetAlias")
            .ok_if_not_found()?;
        if alias.is_none() {
            return Err(Error::Refused(format!(
                "alias {to} of {function} is missing, so the {to} colour cannot take traffic; run `tapctl up` to create it"
            )));
        }
    }
    if let Some(c) = before.canary.as_ref().filter(|c| c.color != to) {
        return Err(Error::Refused(format!(
            "a canary sends {} % to {}; promote it (--to {} --weight 100) or roll it back (--to {} --weight 0) first",
            c.weight, c.color, c.color, c.color
        )));
    }
    if before.live == to && plan != [100] {
        return Err(Error::Refused(format!(
            "{to} is already live and takes every request not sent to a canary; to move traffic away from it, shift --to {}",
            to.other()
        )));
    }
    let watched = alarms::watched(names, to);
    let bakes = args.watch.is_some() || plan.len() > 1;
    let states = alarms::states(&session.clients.cloudwatch, &watched).await?;
    if bakes && states.is_empty() {
        return Err(Error::Refused(format!(
            "none of the alarms to watch exist ({}…): run `tapctl up` to create them",
            watched[0]
        )));
    }
    // Moving traffic onto a colour that already fails would only be rolled back (or, unwatched,
    // hurt payments): refused unless the operator says otherwise. A rollback (weight 0) is never
    // refused: it moves traffic away from the colour.
    // Only the colour's own alarms: the API's fire when the *live* colour fails, and must not block
    // moving traffic away from it.
    let own: Vec<String> = ROUTES.iter().map(|f| alarms::color_alarm_name(names, f, to)).collect();
    let firing: Vec<&String> =
        states.iter().filter(|(n, s)| *s == "ALARM" && own.contains(n)).map(|(n, _)| n).collect();
    if !firing.is_empty() && plan.iter().any(|w| *w > 0) {
        let names: Vec<&str> = firing.iter().map(|n| n.as_str()).collect();
        if args.force {
            session
                .progress
                .println(&format!("warning: moving traffic to {to} although {} in ALARM (--force)", names.join(", ")));
        } else {
            return Err(Error::Refused(format!(
                "{} of {to} already in ALARM: {}; fix it (or roll back) first, or pass --force to shift anyway",
                if names.len() == 1 { "an alarm is" } else { "alarms are" },
                names.join(", ")
            )));
        }
    }

    let mut now = before.clone();
    for (i, &weight) in plan.iter().enumerate() {
        update(apigw, &api, patches(&now, to, weight, &deployment_id)).await?;
        now = read(apigw, &api).await?;
        let last = i + 1 == plan.len();
        if !last || args.watch.is_some() {
            session.progress.println(&format!("shift: {}", describe(&now)));
        }
        let bake_for = if last { args.watch } else { args.interval };
        let Some(bake_for) = bake_for.filter(|_| weight > 0) else { continue };
        let firing = bake(session, &watched, bake_for, args.poll).await?;
        if !firing.is_empty() {
            update(apigw, &api, restore(&now, &before)).await?;
            let after = read(apigw, &api).await?;
            if session.run.json {
                print_json(&shift_report(session, to, &plan, true, &firing, &after, &api));
            }
            return Err(Error::RolledBack(format!(
                "alarm {} fired while {to} took {weight} %; rolled back: {}",
                firing.join(", "),
                describe(&after)
            )));
        }
    }
    if session.run.json {
        print_json(&shift_report(session, to, &plan, false, &[], &now, &api));
    } else {
        crate::outln!("shift: {} ({})", describe(&now), session.cost_line());
    }
    Ok(0)
}

/// The shift in the one JSON shape (commands::report): no resource changes, the traffic after.
fn shift_report(
    session: &Session<'_>,
    to: crate::traffic::Color,
    weights: &[u8],
    rolled_back: bool,
    firing: &[String],
    traffic: &Traffic,
    api: &str,
) -> serde_json::Value {
    let mut report = super::report::Report::new(session, "shift", vec![]);
    report.traffic = serde_json::to_value(traffic).ok();
    report.shift = Some(json!({
        "to": to, "weights": weights, "rolled_back": rolled_back, "alarms": firing, "api_id": api,
    }));
    serde_json::to_value(&report).unwrap_or_default()
}
