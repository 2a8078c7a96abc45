//! The payment rules' inputs from their stores: limits and fraud thresholds from Parameter Store,
//! a card's velocity from the transactions table's `by-card` index — then payments-core decides.

use crate::config::Params;
use crate::error::FnError;
use chrono::{DateTime, SecondsFormat, Utc};
use payments_core::validate::Limits;
use payments_core::Thresholds;
use std::collections::BTreeMap;

#[cfg(feature = "dynamodb")]
pub use velocity::{assess, velocity};

pub const FINGERPRINT_SECRET: &str = "resources/card-fingerprint-secret-arn";
pub const TABLE: &str = "resources/table-name";

pub fn limits(p: &Params) -> Result<Limits, FnError> {
    let mut l = Limits::default();
    if p.0.contains_key("payments/max-amount-minor") {
        l.max_amount_minor = p.number("payments/max-amount-minor")?;
    }
    if let Some(list) = p.0.get("payments/allowed-currencies") {
        l.allowed_currencies = list.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect();
    }
    Ok(l)
}

pub fn thresholds(p: &Params) -> Result<Thresholds, FnError> {
    let fraud: BTreeMap<String, String> =
        p.0.iter().filter(|(k, _)| k.starts_with("fraud/")).map(|(k, v)| (k.clone(), v.clone())).collect();
    Thresholds::from_parameters(&fraud).map_err(FnError::Config)
}

/// The operator's BIN table (`fraud/bin-countries`: JSON object of BIN prefix → country).
pub fn bin_countries(p: &Params) -> Result<BTreeMap<String, String>, FnError> {
    match p.0.get("fraud/bin-countries") {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v)
            .map_err(|_| FnError::Config("parameter fraud/bin-countries must be a JSON object".into())),
    }
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What needs the transactions table: the fraud-check and process functions only.
#[cfg(feature = "dynamodb")]
mod velocity {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;
    use payments_core::fraud::{Facts, Velocity};
    use payments_core::{Assessment, CardNumber, PaymentRequest};

    /// This card's transactions in the window before `now` (other than `exclude`, the one being
    /// processed). The index is eventually consistent: a burst within a second may be undercounted,
    /// which the card-testing rule's threshold allows for.
    pub async fn velocity(
        ddb: &aws_sdk_dynamodb::Client,
        table: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        t: &Thresholds,
        exclude: Option<&str>,
    ) -> Result<Velocity, FnError> {
        let since = timestamp(now - chrono::Duration::seconds(t.velocity_window_seconds));
        let mut v = Velocity::default();
        let mut pages = ddb
            .query()
            .table_name(table)
            .index_name("by-card")
            .key_condition_expression("card_fingerprint = :fp AND created_at >= :since")
            .expression_attribute_values(":fp", AttributeValue::S(fingerprint.into()))
            .expression_attribute_values(":since", AttributeValue::S(since))
            .projection_expression("transaction_id, amount")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| FnError::aws("dynamodb:Query", e))?;
            for item in page.items() {
                let id = item.get("transaction_id").and_then(|a| a.as_s().ok());
                if id.is_some() && id.map(String::as_str) == exclude {
                    continue;
                }
                let amount: i64 =
                    item.get("amount").and_then(|a| a.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
                v.count += 1;
                v.amount_minor += amount;
                if amount <= t.card_testing_small_amount_minor {
                    v.small_count += 1;
                }
            }
        }
        Ok(v)
    }

    /// The fraud assessment of a request whose card number parsed.
    pub async fn assess(
        ddb: &aws_sdk_dynamodb::Client,
        params: &Params,
        req: &PaymentRequest,
        card: &CardNumber,
        fingerprint: &str,
        exclude: Option<&str>,
    ) -> Result<Assessment, FnError> {
        let t = thresholds(params)?;
        let countries = bin_countries(params)?;
        let velocity = velocity(ddb, params.get(TABLE)?, fingerprint, Utc::now(), &t, exclude).await?;
        let facts = Facts {
            amount_minor: req.amount,
            bin: card.bin(),
            issuing_country: payments_core::process::issuing_country(card.bin(), &countries),
            ip_country: req.ip_country.as_deref(),
            velocity,
        };
        Ok(payments_core::assess(&facts, &t))
    }
}
