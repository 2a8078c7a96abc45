//! Fraud rules, explainable: each rule that fires adds to a 0–100 score and names itself in the
//! reasons. Thresholds come from Parameter Store (`/payments/<suffix>/fraud/…`); the velocity
//! figures are what the function read from the table's `by-card` index for this fingerprint.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Review,
    Decline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    pub decision: Decision,
    pub score: u8,
    pub reasons: Vec<String>,
}

/// The thresholds, as Parameter Store holds them (defaults = tapctl's `params.config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub review_amount_minor: i64,
    pub decline_amount_minor: i64,
    pub velocity_window_seconds: i64,
    pub velocity_max_count: u32,
    pub velocity_max_amount_minor: i64,
    pub card_testing_small_amount_minor: i64,
    pub card_testing_burst_count: u32,
    pub blocked_bins: Vec<String>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            review_amount_minor: 100_000,
            decline_amount_minor: 500_000,
            velocity_window_seconds: 3600,
            velocity_max_count: 10,
            velocity_max_amount_minor: 1_000_000,
            card_testing_small_amount_minor: 200,
            card_testing_burst_count: 5,
            blocked_bins: Vec::new(),
        }
    }
}

impl Thresholds {
    /// From parameters named relative to the prefix (`fraud/review-amount-minor` → "100000").
    /// A missing parameter keeps its default; a malformed one is an error naming it.
    pub fn from_parameters(params: &BTreeMap<String, String>) -> Result<Thresholds, String> {
        let mut t = Thresholds::default();
        fn num<T: std::str::FromStr>(
            params: &BTreeMap<String, String>,
            name: &str,
            into: &mut T,
        ) -> Result<(), String> {
            if let Some(v) = params.get(name) {
                *into = v.trim().parse().map_err(|_| format!("parameter {name} must be a whole number"))?;
            }
            Ok(())
        }
        num(params, "fraud/review-amount-minor", &mut t.review_amount_minor)?;
        num(params, "fraud/decline-amount-minor", &mut t.decline_amount_minor)?;
        num(params, "fraud/velocity-window-seconds", &mut t.velocity_window_seconds)?;
        num(params, "fraud/velocity-max-count", &mut t.velocity_max_count)?;
        num(params, "fraud/velocity-max-amount-minor", &mut t.velocity_max_amount_minor)?;
        num(params, "fraud/card-testing-small-amount-minor", &mut t.card_testing_small_amount_minor)?;
        num(params, "fraud/card-testing-burst-count", &mut t.card_testing_burst_count)?;
        if let Some(v) = params.get("fraud/blocked-bins") {
            t.blocked_bins = serde_json::from_str(v)
                .map_err(|_| "parameter fraud/blocked-bins must be a JSON list of BINs".to_string())?;
        }
        if t.review_amount_minor > t.decline_amount_minor {
            return Err("fraud/review-amount-minor must not exceed fraud/decline-amount-minor".into());
        }
        Ok(t)
    }
}

/// What the function knows about this card's recent history (from the `by-card` index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Velocity {
    /// Transactions of this card fingerprint in the window, before this one.
    pub count: u32,
    /// Their sum in minor units.
    pub amount_minor: i64,
    /// How many of them were small (card testing probes).
    pub small_count: u32,
}

/// What the rules look at; nothing here is the card number (only its BIN and issuing country).
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub amount_minor: i64,
    pub bin: &'a str,
    pub issuing_country: Option<&'a str>,
    pub ip_country: Option<&'a str>,
    pub velocity: Velocity,
}

pub fn assess(facts: &Facts<'_>, t: &Thresholds) -> Assessment {
    if t.blocked_bins.iter().any(|b| facts.bin.starts_with(b.as_str())) {
        return Assessment { decision: Decision::Decline, score: 100, reasons: vec!["blocked_bin".into()] };
    }
    let mut score: u32 = 0;
    let mut reasons = Vec::new();
    let mut fire = |points: u32, reason: &str| {
        score += points;
        reasons.push(reason.to_string());
    };
    if facts.amount_minor >= t.decline_amount_minor {
        fire(70, "amount_over_decline_threshold");
    } else if facts.amount_minor >= t.review_amount_minor {
        fire(40, "amount_over_review_threshold");
    }
    if facts.velocity.count >= t.velocity_max_count {
        fire(40, "velocity_count_exceeded");
    }
    if facts.velocity.amount_minor + facts.amount_minor > t.velocity_max_amount_minor {
        fire(30, "velocity_amount_exceeded");
    }
    if facts.amount_minor <= t.card_testing_small_amount_minor
        && facts.velocity.small_count + 1 >= t.card_testing_burst_count
    {
        fire(70, "card_testing_burst");
    }
    if let (Some(ip), Some(issuer)) = (facts.ip_country, facts.issuing_country) {
        if !ip.eq_ignore_ascii_case(issuer) {
            fire(25, "ip_country_mismatch");
        }
    }
    let score = score.min(100) as u8;
    let decision = match score {
        70.. => Decision::Decline,
        40.. => Decision::Review,
        _ => Decision::Approve,
    };
    Assessment { decision, score, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(amount: i64) -> Facts<'static> {
        Facts {
            amount_minor: amount,
            bin: "424242",
            issuing_country: Some("US"),
            ip_country: Some("US"),
            velocity: Velocity::default(),
        }
    }

    #[test]
    fn an_ordinary_payment_is_approved_with_no_reasons() {
        let a = assess(&facts(2_500), &Thresholds::default());
        assert_eq!((a.decision, a.score, a.reasons.len()), (Decision::Approve, 0, 0));
    }

    #[test]
    fn amounts_over_the_thresholds_go_to_review_then_decline() {
        let t = Thresholds::default();
        assert_eq!(assess(&facts(100_000), &t).decision, Decision::Review);
        assert_eq!(assess(&facts(500_000), &t).decision, Decision::Decline);
        assert_eq!(assess(&facts(500_000), &t).reasons, vec!["amount_over_decline_threshold"]);
    }

    #[test]
    fn velocity_card_testing_country_and_blocked_bins_are_explained() {
        let t = Thresholds { blocked_bins: vec!["411111".into()], ..Thresholds::default() };
        let mut f = facts(2_500);
        f.velocity = Velocity { count: 10, amount_minor: 20_000, small_count: 0 };
        assert_eq!(assess(&f, &t).reasons, vec!["velocity_count_exceeded"]);
        let mut f = facts(100);
        f.velocity = Velocity { count: 4, amount_minor: 400, small_count: 4 };
        assert_eq!(assess(&f, &t).decision, Decision::Decline);
        assert!(assess(&f, &t).reasons.contains(&"card_testing_burst".to_string()));
        let mut f = facts(2_500);
        f.ip_country = Some("FR");
        assert_eq!(assess(&f, &t).reasons, vec!["ip_country_mismatch"]);
        let mut f = facts(2_500);
        f.bin = "411111";
        assert_eq!(
            assess(&f, &t),
            Assessment { decision: Decision::Decline, score: 100, reasons: vec!["blocked_bin".into()] }
        );
    }

    #[test]
    fn thresholds_come_from_parameters_and_bad_ones_are_named() {
        let mut p = BTreeMap::new();
        p.insert("fraud/review-amount-minor".to_string(), "5000".to_string());
        p.insert("fraud/blocked-bins".to_string(), "[\"400000\"]".to_string());
        let t = Thresholds::from_parameters(&p).unwrap();
        assert_eq!((t.review_amount_minor, t.blocked_bins.clone()), (5000, vec!["400000".to_string()]));
        p.insert("fraud/velocity-max-count".to_string(), "ten".to_string());
        assert!(Thresholds::from_parameters(&p).unwrap_err().contains("fraud/velocity-max-count"));
    }

    #[test]
    fn the_score_never_exceeds_100() {
        let mut f = facts(900_000);
        f.ip_country = Some("FR");
        f.velocity = Velocity { count: 50, amount_minor: 9_000_000, small_count: 0 };
        assert_eq!(assess(&f, &Thresholds::default()).score, 100);
    }
}
