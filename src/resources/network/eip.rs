//! `network.eip`: the Elastic IP of the NAT gateway, so outbound traffic of the functions leaves
//! from one fixed address (acquirers and card networks allow-list it).

use super::{ensure_tags, missing_tags, owned_filters, single, tag_spec, tags_drift};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::Outputs;
use crate::resources::{Change, Ctx, Resource, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType, Tag};
use serde_json::json;

pub struct ElasticIp;

pub const ID: &str = "network.eip";

pub struct Observed {
    pub allocation_id: String,
    pub public_ip: String,
    pub tags: Vec<Tag>,
}

fn from_ec2(a: &Address) -> Observed {
    Observed {
        allocation_id: a.allocation_id().unwrap_or_default().to_string(),
        public_ip: a.public_ip().unwrap_or_default().to_string(),
        tags: a.tags().to_vec(),
    }
}

#[async_trait]
impl Resource for ElasticIp {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let ec2 = &ctx.clients.ec2;
        if let Some(id) = ctx.recorded_str("allocation_id") {
            let out = ec2
                .describe_addresses()
                .allocation_ids(id)
                .send()
                .await
                .aws("ec2:DescribeAddresses")
                .ok_if_not_found()?;
            if let Some(a) = out.as_ref().and_then(|o| o.addresses().first()) {
                return Ok(Some(from_ec2(a)));
            }
        }
        let out =
            ec2.describe_addresses().set_filters(Some(owned_filters(ctx))).send().await.aws("ec2:DescribeAddresses")?;
        Ok(single(out.addresses().to_vec(), "Elastic IP", |a| a.allocation_id().unwrap_or_default().into())?
            .map(|a| from_ec2(&a)))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let want = ctx.tags(None, Some(&ctx.names.nat_eip()));
        Ok(Change::from_drifts(tags_drift("tags", &o.tags, &want).into_iter().collect()))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        Outputs::from([("allocation_id".into(), json!(o.allocation_id)), ("public_ip".into(), json!(o.public_ip))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let tags = ctx.tags(None, Some(&ctx.names.nat_eip()));
        let o = match observed {
            Some(o) => {
                ensure_tags(ctx, &o.allocation_id, &missing_tags(&o.tags, &tags)).await?;
                o
            }
            None => {
                ctx.progress.step("allocating Elastic IP");
                let out = ctx
                    .clients
                    .ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(tag_spec(ResourceType::ElasticIp, &tags))
                    .send()
                    .await
                    .aws("ec2:AllocateAddress")?;
                Observed {
                    allocation_id: out.allocation_id().unwrap_or_default().to_string(),
                    public_ip: out.public_ip().unwrap_or_default().to_string(),
                    tags: vec![],
                }
            }
        };
        Ok(self.outputs(ctx, &o))
    }

    async fn delete(&self, ctx: &Ctx, o: Observed) -> Result<()> {
        ctx.progress.step(&format!("releasing Elastic IP {}", o.public_ip));
        ctx.clients
            .ec2
            .release_address()
            .allocation_id(&o.allocation_id)
            .send()
            .await
            .aws("ec2:ReleaseAddress")
            .ok_if_not_found()?;
        Ok(())
    }
}
