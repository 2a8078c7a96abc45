//! Who gets the payment traffic (design.md §7): the vocabulary. The REST API's stage variable
//! `lambdaAlias` names the live colour; an API Gateway canary on the stage, whose
//! `stageVariableOverrides` name the other colour, sends a share of requests there. Reading and
//! changing it is the API's: `resources::api::stage`, the stage's one owner.

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
