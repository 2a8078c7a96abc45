//! The stage `live`: who gets the payment traffic. `api.rest` creates the stage and keeps its
//! configuration; the traffic on it (the stage variable and the canary) is read and changed only
//! here — by the functions' nodes (`up` moves only the idle colour), by `shift`, and by `status` —
//! so the stage has one owner.

use super::replace;
use crate::aws::{AwsError, AwsResultExt, NotFoundExt};
use crate::resources::{Ctx, RunMemo};
use crate::traffic::{Canary, Color, Traffic, ALIAS_VARIABLE, STAGE};
use aws_sdk_apigateway::types::{Op, PatchOperation};

/// The id of the REST API named `name`, if there is one. Two of that name (a create retried
/// after its answer was lost) is an error naming both: tapctl does not guess which is live.
pub async fn find_api(apigw: &aws_sdk_apigateway::Client, name: &str) -> Result<Option<String>, AwsError> {
    let mut found = Vec::new();
    let mut pages = apigw.get_rest_apis().limit(500).into_paginator().items().send();
    while let Some(api) = pages.next().await {
        let api = api.aws("apigateway:GetRestApis")?;
        if api.name() == Some(name) {
            found.extend(api.id().map(str::to_string));
        }
    }
    if found.len() > 1 {
        return Err(AwsError {
            operation: "apigateway:GetRestApis".into(),
            code: Some("AmbiguousAdoption".into()),
            message: format!(
                "{} REST APIs are named {name} ({}); delete the one that is not serving traffic, then re-run",
                found.len(),
                found.join(", ")
            ),
            transient: false,
        });
    }
    Ok(found.pop())
}

pub type Stage = aws_sdk_apigateway::operation::get_stage::GetStageOutput;

/// The stage `live` as API Gateway holds it; None when it does not exist (nothing is live yet).
pub async fn stage(apigw: &aws_sdk_apigateway::Client, api_id: &str) -> Result<Option<Stage>, AwsError> {
    apigw.get_stage().rest_api_id(api_id).stage_name(STAGE).send().await.aws("apigateway:GetStage").ok_if_not_found()
}

/// The traffic of the stage, from what API Gateway holds. None when the stage does not exist.
pub async fn read(apigw: &aws_sdk_apigateway::Client, api_id: &str) -> Result<Option<Traffic>, AwsError> {
    stage(apigw, api_id).await?.as_ref().map(traffic_of).transpose()
}

/// A stage whose variable names no colour is an error: the integrations would call an
/// alias that does not exist.
pub fn traffic_of(stage: &Stage) -> Result<Traffic, AwsError> {
    let variable = stage.variables().and_then(|v| v.get(ALIAS_VARIABLE)).map(String::as_str).unwrap_or_default();
    let live = Color::parse(variable).ok_or_else(|| AwsError {
        operation: "apigateway:GetStage".into(),
        code: Some("InvalidStageVariable".into()),
        message: format!("stage {STAGE} has {ALIAS_VARIABLE}='{variable}', which is neither blue nor green"),
        transient: false,
    })?;
    let canary = stage.canary_settings().and_then(|c| {
        let color = c.stage_variable_overrides().and_then(|o| o.get(ALIAS_VARIABLE)).and_then(|v| Color::parse(v))?;
        Some(Canary { color, weight: c.percent_traffic() })
    });
    Ok(Traffic { live, canary })
}

/// The traffic as this run first saw it, read once and shared by every node that asks (the four
/// functions' nodes would otherwise read the stage four times, and `status` a fifth). Within a
/// run nothing else changes it: `shift` and `up` exclude each other by the state lock.
pub async fn live_traffic(ctx: &Ctx) -> crate::resources::Result<Option<Traffic>> {
    Ok(shared_traffic(&ctx.run, &ctx.clients.apigateway, &ctx.names.api()).await?)
}

/// `live_traffic` for a command that holds the run's memo rather than a node's context.
pub async fn shared_traffic(
    memo: &RunMemo,
    apigw: &aws_sdk_apigateway::Client,
    api_name: &str,
) -> Result<Option<Traffic>, AwsError> {
    let read = memo
        .traffic
        .get_or_try_init(|| async {
            match find_api(apigw, api_name).await? {
                Some(api) => read(apigw, &api).await,
                None => Ok(None),
            }
        })
        .await?;
    Ok(read.clone())
}

fn remove_canary() -> PatchOperation {
    PatchOperation::builder().op(Op::Remove).path("/canarySettings").build()
}

/// The patch that gives the stage `weight` % towards `to`, from `now`.
pub fn patches(now: &Traffic, to: Color, weight: u8, deployment_id: &str) -> Vec<PatchOperation> {
    let has_canary = now.canary.is_some();
    match weight {
        0 => has_canary.then(remove_canary).into_iter().collect(),
        100 => {
            let mut v = vec![replace(format!("/variables/{ALIAS_VARIABLE}"), to.as_str())];
            if has_canary {
                v.push(remove_canary());
            }
            v
        }
        w => {
            // The canary runs the stage's own (current) deployment: only the alias differs.
            let mut v = vec![replace("/canarySettings/deploymentId", deployment_id)];
            if !has_canary {
                v.push(replace("/canarySettings/useStageCache", "false"));
            }
            v.push(replace("/canarySettings/percentTraffic", format!("{w}.0")));
            v.push(replace(format!("/canarySettings/stageVariableOverrides/{ALIAS_VARIABLE}"), to.as_str()));
            v
        }
    }
}

/// The patch that puts `before` back.
pub fn restore(now: &Traffic, before: &Traffic) -> Vec<PatchOperation> {
    let mut v = Vec::new();
    if now.live != before.live {
        v.push(replace(format!("/variables/{ALIAS_VARIABLE}"), before.live.as_str()));
    }
    if now.canary.is_some() {
        v.push(remove_canary());
    }
    v
}

/// Applies a patch in one UpdateStage call, so the stage is never half-changed.
pub async fn update(apigw: &aws_sdk_apigateway::Client, api: &str, ops: Vec<PatchOperation>) -> Result<(), AwsError> {
    if ops.is_empty() {
        return Ok(());
    }
    apigw
        .update_stage()
        .rest_api_id(api)
        .stage_name(STAGE)
        .set_patch_operations(Some(ops))
        .send()
        .await
        .aws("apigateway:UpdateStage")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(ops: &[PatchOperation]) -> Vec<String> {
        ops.iter()
            .map(|o| {
                format!(
                    "{} {} {}",
                    o.op().map(|x| x.as_str()).unwrap_or(""),
                    o.path().unwrap_or(""),
                    o.value().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn a_first_canary_names_the_stage_deployment_the_weight_and_the_colour() {
        let now = Traffic { live: Color::Blue, canary: None };
        assert_eq!(
            paths(&patches(&now, Color::Green, 10, "d1")),
            [
                "replace /canarySettings/deploymentId d1",
                "replace /canarySettings/useStageCache false",
                "replace /canarySettings/percentTraffic 10.0",
                "replace /canarySettings/stageVariableOverrides/lambdaAlias green"
            ]
        );
    }

    #[test]
    fn raising_a_canary_follows_the_stages_current_deployment() {
        let now = Traffic { live: Color::Blue, canary: Some(Canary { color: Color::Green, weight: 10.0 }) };
        assert_eq!(
            paths(&patches(&now, Color::Green, 50, "d2")),
            [
                "replace /canarySettings/deploymentId d2",
                "replace /canarySettings/percentTraffic 50.0",
                "replace /canarySettings/stageVariableOverrides/lambdaAlias green"
            ]
        );
    }

    #[test]
    fn promoting_sets_the_variable_and_removes_the_canary_in_one_call() {
        let now = Traffic { live: Color::Blue, canary: Some(Canary { color: Color::Green, weight: 50.0 }) };
        assert_eq!(
            paths(&patches(&now, Color::Green, 100, "d1")),
            ["replace /variables/lambdaAlias green", "remove /canarySettings "]
        );
        assert_eq!(paths(&patches(&now, Color::Green, 0, "d1")), ["remove /canarySettings "]);
    }

    #[test]
    fn restoring_puts_back_the_live_colour_without_a_canary() {
        let before = Traffic { live: Color::Blue, canary: None };
        let now = Traffic { live: Color::Green, canary: None };
        assert_eq!(paths(&restore(&now, &before)), ["replace /variables/lambdaAlias blue"]);
        let canary = Traffic { live: Color::Blue, canary: Some(Canary { color: Color::Green, weight: 10.0 }) };
        assert_eq!(paths(&restore(&canary, &before)), ["remove /canarySettings "]);
    }
}
