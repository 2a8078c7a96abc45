//! The network layer: a VPC over three AZs with public, private and database tiers. Shared EC2
//! helpers live here; each node has its own module.

pub mod default_security_group;
pub mod eip;
pub mod endpoints;
pub mod flow_logs;
pub mod igw;
pub mod nacls;
pub mod nat;
pub mod route_tables;
pub mod security_groups;
pub mod subnets;
pub mod vpc;

use super::{Ctx, Drift, Result};
use crate::aws::AwsResultExt;
use crate::names::tag;
use crate::resources::retry::catalogue;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use futures::FutureExt;
use std::collections::BTreeMap;

pub fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder().name(name).set_values(Some(values.into_iter().map(Into::into).collect())).build()
}

/// Server-side filters that select this node's resources of this suffix.
pub fn owned_filters(ctx: &Ctx) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{}", tag::SUFFIX), [ctx.names.suffix.clone()]),
        filter(&format!("tag:{}", tag::RESOURCE), [ctx.node]),
    ]
}

pub fn tag_spec(resource_type: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder().resource_type(resource_type).set_tags(Some(ec2_tags(tags))).build()
}

pub fn ec2_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// True when the tags say this resource is this node's, for this suffix. Used where the
/// emulator (or an API) cannot filter on tags server-side.
pub fn is_owned(tags: &[Tag], ctx: &Ctx) -> bool {
    let m = tag_map(tags);
    m.get(tag::SUFFIX).map(String::as_str) == Some(ctx.names.suffix.as_str())
        && m.get(tag::RESOURCE).map(String::as_str) == Some(ctx.node)
}

pub fn member_of(tags: &[Tag]) -> Option<String> {
    tag_map(tags).remove(tag::MEMBER)
}

/// The wanted tags that are absent or carry another value.
pub fn missing_tags(have: &[Tag], want: &[(String, String)]) -> Vec<(String, String)> {
    let have = tag_map(have);
    want.iter().filter(|(k, v)| have.get(k) != Some(v)).cloned().collect()
}

/// The tags drift of an EC2 resource: what it holds of the wanted tags, and what is wanted.
pub fn tags_drift(field: impl Into<String>, have: &[Tag], want: &[(String, String)]) -> Option<Drift> {
    crate::resources::tags_drift(field, &tag_map(have), want)
}

/// The wanted tags `ensure_tags` adds, in the words of a progress step: `CostCenter=payments, …`.
pub fn tag_list(tags: &[(String, String)]) -> String {
    crate::resources::listed(tags.iter().map(|(k, v)| format!("{k}={v}")))
}

pub async fn ensure_tags(ctx: &Ctx, id: &str, missing: &[(String, String)]) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    ctx.progress.step(&format!("tagging {id}: {}", tag_list(missing)));
    // terraform `ec2/tags.go::createTags`: tagging retries while the resource is not visible yet.
    ctx.retry_while_propagating(&catalogue::EC2_NEW_RESOURCE, id, || {
        ctx.clients
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(ec2_tags(missing)))
            .send()
            .map(|r| r.aws("ec2:CreateTags"))
    })
    .await?;
    Ok(())
}

/// Exactly one match, none, or a refusal to guess between several.
pub fn single<T>(mut found: Vec<T>, what: &str, ids: impl Fn(&T) -> String) -> Result<Option<T>> {
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(super::ResourceError::new(
            "AmbiguousAdoption",
            format!(
                "found {} {what}s tagged for this node: {}",
                found.len(),
                found.iter().map(ids).collect::<Vec<_>>().join(", ")
            ),
        )
        .with_hint("delete the ones tapctl did not make (or that are stale), then re-run")),
    }
}
