//! Who gets the payment traffic (design.md §7). The REST API's stage variable `lambdaAlias`
//! names the live colour; an API Gateway canary on the stage, whose `stageVariableOverrides`
//! name the other colour, sends a share of requests there. This module only reads that; `up`
//! uses it to leave the live colour alone, `shift` to change it, `status` to show it.

use crate::aws::{AwsError, AwsResultExt, NotFoundExt};
use serde::Serialize;

/// The stage every request goes through.
pub const STAGE: &str = "live";
/// The stage variable the integrations' URIs end in: `…:${stageVariables.lambdaAlias}/invocations`.
pub const ALIAS_VARIABLE: &str = "lambdaAlias";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub const BOTH: [Color; 2] = [Color::Blue, Color::Green];

    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }
    pub fn parse(s: &str) -> Option<Color> {
        Color::BOTH.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Color {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Canary {
    pub color: Color,
    /// Percent of requests, 0-100 (API Gateway keeps a double).
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traffic {
    pub live: Color,
    pub canary: Option<Canary>,
}

impl Traffic {
    /// The colour no request reaches: the one `up` may move to new code. None while a canary
    /// sends requests to both.
    pub fn idle(&self) -> Option<Color> {
        match &self.canary {
            Some(_) => None,
            None => Some(self.live.other()),
        }
    }
}

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
    stage(apigw, api_id).await?.as_ref().map(Traffic::of).transpose()
}

impl Traffic {
    /// A stage whose variable names no colour is an error: the integrations would call an
    /// alias that does not exist.
    pub fn of(stage: &Stage) -> Result<Traffic, AwsError> {
        let variable = stage.variables().and_then(|v| v.get(ALIAS_VARIABLE)).map(String::as_str).unwrap_or_default();
        let live = Color::parse(variable).ok_or_else(|| AwsError {
            operation: "apigateway:GetStage".into(),
            code: Some("InvalidStageVariable".into()),
            message: format!("stage {STAGE} has {ALIAS_VARIABLE}='{variable}', which is neither blue nor green"),
            transient: false,
        })?;
        let canary = stage.canary_settings().and_then(|c| {
            let color =
                c.stage_variable_overrides().and_then(|o| o.get(ALIAS_VARIABLE)).and_then(|v| Color::parse(v))?;
            Some(Canary { color, weight: c.percent_traffic() })
        });
        Ok(Traffic { live, canary })
    }
}
