//! `events.db-subscriptions`: RDS event subscriptions sending the Aurora cluster's and its
//! instances' failovers, failures, maintenance, notifications and configuration changes to the
//! alerts topic (PCI DSS 10.7.2: failures of critical security controls are detected and
//! alerted; 12.10.5: alerts reach the responders).
//!
//! Two subscriptions, because one subscription has one source type: `db-cluster` for the cluster,
//! `db-instance` for its instances. Each names its sources (not "every source of the type in the
//! account": the stack alerts about its own database only). Categories are RDS's documented ones
//! for each source type (Aurora User Guide, USER_Events.Messages; DescribeEventCategories):
//! failover, failure, maintenance, notification and configuration change exist for both;
//! instances also report availability (restarted, shut down) and recovery.
//!
//! A subscription is `creating`, `modifying` or `deleting` for a while after each change and then
//! `active` (terraform `rds/event_subscription.go` waits for the same states, 40 minutes); a
//! subscription RDS cannot deliver is `no-permission` or `topic-not-exist`.

use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::database;
use crate::resources::retry::Readiness;
use crate::resources::{alerts, listed, on_off, Change, Ctx, Drift, Input, Outputs, Resource, Result};
use async_trait::async_trait;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub struct DbEventSubscriptions;

pub const ID: &str = "events.db-subscriptions";

/// The cluster's event categories (Aurora DB cluster events).
pub const CLUSTER_CATEGORIES: &[&str] = &["configuration change", "failover", "failure", "maintenance", "notification"];
/// The instances' event categories (Aurora DB instance events).
pub const INSTANCE_CATEGORIES: &[&str] =
    &["availability", "configuration change", "failover", "failure", "maintenance", "notification", "recovery"];

/// One subscription as the stack wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub source_type: &'static str,
    pub source_ids: BTreeSet<String>,
    pub categories: BTreeSet<String>,
    pub topic_arn: String,
}

/// One subscription as RDS holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub arn: String,
    pub source_type: Option<String>,
    pub source_ids: BTreeSet<String>,
    pub categories: BTreeSet<String>,
    pub topic_arn: String,
    pub enabled: bool,
    pub status: String,
    pub tags: BTreeMap<String, String>,
}

pub struct Observed {
    /// By subscription name; a wanted subscription that does not exist is absent.
    pub held: BTreeMap<String, Held>,
}

/// The ARN RDS gives the subscription `name` (ListTagsForResource needs it).
pub fn subscription_arn(names: &crate::names::Names, name: &str) -> String {
    format!("arn:aws:rds:{}:{}:es:{}", names.region, names.account, name)
}

fn wanted(ctx: &Ctx) -> Result<Vec<Wanted>> {
    let topic_arn = ctx.input(alerts::ID, "topic_arn")?;
    let cluster = ctx.input(database::cluster::ID, "cluster_id")?;
    let instances = ctx.input_list(database::instances::ID, "instance_ids")?;
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<String>>();
    Ok(vec![
        Wanted {
            name: ctx.names.db_event_subscription(),
            source_type: "db-cluster",
            source_ids: BTreeSet::from([cluster]),
            categories: set(CLUSTER_CATEGORIES),
            topic_arn: topic_arn.clone(),
        },
        Wanted {
            name: ctx.names.db_instance_event_subscription(),
            source_type: "db-instance",
            source_ids: instances.into_iter().collect(),
            categories: set(INSTANCE_CATEGORIES),
            topic_arn,
        },
    ])
}

/// The names of the stack's subscriptions (they are deterministic: adoption is by name).
fn names_of(ctx: &Ctx) -> [String; 2] {
    [ctx.names.db_event_subscription(), ctx.names.db_instance_event_subscription()]
}

async fn describe(ctx: &Ctx, name: &str) -> Result<Option<aws_sdk_rds::types::EventSubscription>> {
    let out = ctx
        .clients
        .rds
        .describe_event_subscriptions()
        .subscription_name(name)
        .send()
        .await
        .aws("rds:DescribeEventSubscriptions")
        .ok_if_not_found()?;
    Ok(out.and_then(|o| o.event_subscriptions_list().first().cloned()))
}

/// Whether a subscription's status means it delivers: RDS's documented statuses
/// (EventSubscription.Status); any other status is not ready.
fn readiness(status: Option<&str>) -> Readiness<()> {
    match status {
        Some("active") => Readiness::Ready(()),
        Some(s @ ("creating" | "modifying")) => Readiness::Pending(format!("status {s}")),
        Some(s @ ("no-permission" | "topic-not-exist")) => Readiness::Failed(format!("status {s}")),
        Some(s) => Readiness::Pending(format!("status {s}")),
        None => Readiness::Pending("no status yet".into()),
    }
}

async fn until_active(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.until_ready(&format!("RDS event subscription {name}"), ctx.waits.database, || async {
        Ok(match describe(ctx, name).await? {
            None => Readiness::Absent,
            Some(s) => readiness(s.status()),
        })
    })
    .await
    .map_err(|e| {
        if e.message.contains("no-permission") || e.message.contains("topic-not-exist") {
            e.with_hint(
                "RDS cannot publish to the alerts topic: check its policy (events.rds.amazonaws.com) and the key's",
            )
        } else {
            e
        }
    })
}

fn drifts(w: &Wanted, h: &Held, ctx: &Ctx) -> Vec<Drift> {
    let on = format!("subscription {}", w.name);
    let mut d = Vec::new();
    if !h.enabled {
        d.push(Drift::new("enabled", on_off(false), on_off(true)).on(&on));
    }
    if h.topic_arn != w.topic_arn {
        d.push(Drift::new("topic", &h.topic_arn, &w.topic_arn).on(&on));
    }
    if h.source_type.as_deref() != Some(w.source_type) {
        d.push(Drift::new("source type", h.source_type.as_deref().unwrap_or("every source"), w.source_type).on(&on));
    }
    if h.categories != w.categories {
        let have = if h.categories.is_empty() { "every category".to_string() } else { listed(&h.categories) };
        d.push(Drift::new("categories", have, listed(&w.categories)).on(&on));
    }
    if h.source_ids != w.source_ids {
        let have = if h.source_ids.is_empty() { "every source".to_string() } else { listed(&h.source_ids) };
        d.push(Drift::new("sources", have, listed(&w.source_ids)).on(&on));
    }
    if let Some(t) = ctx.tag_drift(&h.tags) {
        d.push(t.on(&on));
    }
    d
}

#[async_trait]
impl Resource for DbEventSubscriptions {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    fn reads(&self) -> &'static [Input] {
        &[
            Input { node: alerts::ID, key: "topic_arn" },
            Input { node: database::cluster::ID, key: "cluster_id" },
            Input { node: database::instances::ID, key: "instance_ids" },
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let mut held = BTreeMap::new();
        for name in names_of(ctx) {
            let Some(s) = describe(ctx, &name).await? else { continue };
            if s.status() == Some("deleting") {
                continue;
            }
            let arn =
                s.event_subscription_arn().map(str::to_string).unwrap_or_else(|| subscription_arn(&ctx.names, &name));
            let tags = database::tags_of(ctx, &arn).await?;
            held.insert(
                name,
                Held {
                    arn,
                    source_type: s.source_type().map(str::to_string),
                    source_ids: s.source_ids_list().iter().cloned().collect(),
                    categories: s.event_categories_list().iter().cloned().collect(),
                    topic_arn: s.sns_topic_arn().unwrap_or_default().to_string(),
                    enabled: s.enabled().unwrap_or(false),
                    status: s.status().unwrap_or_default().to_string(),
                    tags,
                },
            );
        }
        Ok(if held.is_empty() { None } else { Some(Observed { held }) })
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut d = Vec::new();
        for w in wanted(ctx)? {
            match o.held.get(&w.name) {
                None => d.push(Drift::missing(
                    format!("subscription {}", w.name),
                    format!("{} events of {}", w.source_type, listed(&w.source_ids)),
                )),
                Some(h) => d.extend(drifts(&w, h, ctx)),
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, ctx: &Ctx, o: &Observed) -> Outputs {
        let arns: Vec<String> = names_of(ctx).iter().filter_map(|n| o.held.get(n)).map(|h| h.arn.clone()).collect();
        Outputs::from([("subscription_names".into(), json!(names_of(ctx))), ("subscription_arns".into(), json!(arns))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let rds = &ctx.clients.rds;
        let mut held = observed.map(|o| o.held).unwrap_or_default();
        for w in wanted(ctx)? {
            let categories: Vec<String> = w.categories.iter().cloned().collect();
            let Some(h) = held.get(&w.name).cloned() else {
                ctx.progress.step(&format!("subscribing to {} events of {}", w.source_type, listed(&w.source_ids)));
                let made = rds
                    .create_event_subscription()
                    .subscription_name(&w.name)
                    .sns_topic_arn(&w.topic_arn)
                    .source_type(w.source_type)
                    .set_event_categories(Some(categories))
                    .set_source_ids(Some(w.source_ids.iter().cloned().collect()))
                    .enabled(true)
                    .set_tags(Some(database::rds_tags(ctx)))
                    .send()
                    .await
                    .aws("rds:CreateEventSubscription");
                match made {
                    Ok(_) => {}
                    // Made by a run killed before it recorded it, or a concurrent one: it is
                    // the stack's by name; the next observe compares it like any other.
                    Err(e) if e.code.as_deref() == Some("SubscriptionAlreadyExist") => {}
                    Err(e) => return Err(e.into()),
                }
                until_active(ctx, &w.name).await?;
                let arn = subscription_arn(&ctx.names, &w.name);
                held.insert(
                    w.name.clone(),
                    Held {
                        arn,
                        source_type: Some(w.source_type.to_string()),
                        source_ids: w.source_ids.clone(),
                        categories: w.categories.clone(),
                        topic_arn: w.topic_arn.clone(),
                        enabled: true,
                        status: "active".into(),
                        tags: ctx.tags(None, None).into_iter().collect(),
                    },
                );
                continue;
            };
            if !h.enabled
                || h.topic_arn != w.topic_arn
                || h.source_type.as_deref() != Some(w.source_type)
                || h.categories != w.categories
            {
                ctx.progress.step(&format!("repairing subscription {}", w.name));
                rds.modify_event_subscription()
                    .subscription_name(&w.name)
                    .sns_topic_arn(&w.topic_arn)
                    .source_type(w.source_type)
                    .set_event_categories(Some(categories))
                    .enabled(true)
                    .send()
                    .await
                    .aws("rds:ModifyEventSubscription")?;
                until_active(ctx, &w.name).await?;
            }
            for id in w.source_ids.difference(&h.source_ids) {
                ctx.progress.step(&format!("adding {id} to subscription {}", w.name));
                rds.add_source_identifier_to_subscription()
                    .subscription_name(&w.name)
                    .source_identifier(id)
                    .send()
                    .await
                    .aws("rds:AddSourceIdentifierToSubscription")?;
                until_active(ctx, &w.name).await?;
            }
            for id in h.source_ids.difference(&w.source_ids) {
                ctx.progress.step(&format!("removing {id} from subscription {}", w.name));
                rds.remove_source_identifier_from_subscription()
                    .subscription_name(&w.name)
                    .source_identifier(id)
                    .send()
                    .await
                    .aws("rds:RemoveSourceIdentifierFromSubscription")
                    .ok_if_not_found()?;
                until_active(ctx, &w.name).await?;
            }
            database::ensure_tags(ctx, &h.arn, &h.tags).await?;
            held.insert(
                w.name.clone(),
                Held {
                    enabled: true,
                    topic_arn: w.topic_arn.clone(),
                    source_type: Some(w.source_type.to_string()),
                    categories: w.categories.clone(),
                    source_ids: w.source_ids.clone(),
                    ..h
                },
            );
        }
        Ok(self.outputs(ctx, &Observed { held }))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        for name in o.held.keys() {
            ctx.progress.step(&format!("deleting subscription {name}"));
            ctx.clients
                .rds
                .delete_event_subscription()
                .subscription_name(name)
                .send()
                .await
                .aws("rds:DeleteEventSubscription")
                .ok_if_not_found()?;
            ctx.until_gone(&format!("RDS event subscription {name}"), ctx.waits.database, || async {
                Ok(describe(ctx, name).await?.map(|s| s.status().unwrap_or("deleting").to_string()))
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};
    use serde_json::Value;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:payment-alerts-qa";

    fn test_ctx() -> Ctx {
        ctx(
            ID,
            DbEventSubscriptions.reads(),
            &[
                (alerts::ID, "topic_arn", Value::String(TOPIC.into())),
                (database::cluster::ID, "cluster_id", Value::String("payment-db-qa".into())),
                (database::instances::ID, "instance_ids", json!(["payment-db-writer-qa", "payment-db-reader-1-qa"])),
            ],
        )
    }

    fn as_wanted(ctx: &Ctx, w: &Wanted) -> Held {
        Held {
            arn: subscription_arn(&ctx.names, &w.name),
            source_type: Some(w.source_type.into()),
            source_ids: w.source_ids.clone(),
            categories: w.categories.clone(),
            topic_arn: w.topic_arn.clone(),
            enabled: true,
            status: "active".into(),
            tags: ctx.tags(None, None).into_iter().collect(),
        }
    }

    #[test]
    fn each_subscription_drift_is_named_in_the_operators_words() {
        let ctx = test_ctx();
        let want = wanted(&ctx).unwrap();
        assert_eq!(want[0].source_type, "db-cluster");
        assert_eq!(want[1].source_ids.len(), 2);
        let held: BTreeMap<String, Held> = want.iter().map(|w| (w.name.clone(), as_wanted(&ctx, w))).collect();
        assert_eq!(DbEventSubscriptions.diff(&ctx, &Observed { held: held.clone() }).unwrap(), Change::NoOp);

        let mut off = held.clone();
        let instances = off.get_mut(&want[1].name).unwrap();
        instances.enabled = false;
        instances.source_ids.remove("payment-db-reader-1-qa");
        instances.categories.clear();
        let change = DbEventSubscriptions.diff(&ctx, &Observed { held: off }).unwrap();
        let text: Vec<String> = change.drifts().iter().map(|d| d.to_string()).collect();
        let name = &want[1].name;
        assert_eq!(
            text,
            [
                format!("subscription {name} enabled: off → on"),
                format!(
                    "subscription {name} categories: every category → availability, configuration change, failover, failure, maintenance, notification, recovery"
                ),
                format!("subscription {name} sources: payment-db-writer-qa → payment-db-reader-1-qa, payment-db-writer-qa"),
            ]
        );
        assert_plain(&change.drifts());

        let mut gone = held;
        gone.remove(&want[0].name);
        let change = DbEventSubscriptions.diff(&ctx, &Observed { held: gone }).unwrap();
        assert_eq!(
            change.drifts()[0].to_string(),
            format!("subscription {}: missing → db-cluster events of payment-db-qa", want[0].name)
        );
    }

    #[test]
    fn only_an_active_subscription_is_ready_and_one_rds_cannot_deliver_is_a_failure() {
        assert!(matches!(readiness(Some("active")), Readiness::Ready(())));
        assert!(matches!(readiness(Some("creating")), Readiness::Pending(_)));
        assert!(matches!(readiness(Some("modifying")), Readiness::Pending(_)));
        assert!(matches!(readiness(Some("no-permission")), Readiness::Failed(_)));
        assert!(matches!(readiness(Some("topic-not-exist")), Readiness::Failed(_)));
        assert!(matches!(readiness(Some("something new")), Readiness::Pending(_)));
    }
}
