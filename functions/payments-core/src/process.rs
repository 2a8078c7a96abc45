//! The pure parts of `/process`: the Idempotency-Key rule, the transaction id and request digest
//! that make processing idempotent by (merchant, key), the statuses, the response, the audit
//! event and its key, and the request rules the JSON Schema states that serde does not check.

use crate::validate::{FieldError, PaymentRequest};
use crate::{Brand, Decision};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::collections::BTreeMap;

/// The header that makes a /process request idempotent.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// 1–255 printable ASCII characters (the API contract).
pub fn check_idempotency_key(key: Option<&str>) -> Result<&str, FieldError> {
    let rule = "the Idempotency-Key header is required: 1 to 255 printable ASCII characters";
    match key {
        Some(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| (0x20..0x7f).contains(&b)) => Ok(k),
        Some(_) => Err(FieldError { field: "Idempotency-Key", code: "invalid_idempotency_key", message: rule.into() }),
        None => Err(FieldError { field: "Idempotency-Key", code: "missing_idempotency_key", message: rule.into() }),
    }
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    for p in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The transaction id of (merchant, idempotency key): the same pair always names the same
/// transaction, so a conditional put on it lets exactly one of many concurrent requests win.
/// Keyed, so ids reveal nothing about the keys.
pub fn transaction_id(secret: &[u8], merchant_id: &str, idempotency_key: &str) -> String {
    let m = mac(secret, &[b"transaction-id", merchant_id.as_bytes(), idempotency_key.as_bytes()]);
    format!("txn_{}", hex::encode(&m[..16]))
}

/// A keyed digest of the request body in canonical form (keys sorted, no whitespace): a replay
/// with another body is refused (409). Keyed, because the body holds the card number and a plain
/// hash of it could be brute-forced.
pub fn request_digest(secret: &[u8], body: &Value) -> String {
    hex::encode(mac(secret, &[b"request", body.to_string().as_bytes()]))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Declined,
    Review,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Declined => "declined",
            Status::Review => "review",
            Status::Failed => "failed",
        }
    }

    pub fn of(decision: Decision) -> Status {
        match decision {
            Decision::Approve => Status::Approved,
            Decision::Review => Status::Review,
            Decision::Decline => Status::Declined,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardSummary {
    pub brand: Brand,
    pub last4: String,
}

/// The 201 body of /process (the API contract), plus the reasons and, for a card that failed
/// validation, its errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessResponse {
    pub transaction_id: String,
    pub status: Status,
    pub decision: Decision,
    pub amount: i64,
    pub currency: String,
    pub card: CardSummary,
    pub created_at: String,
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The audit event of one transaction: what happened, never the card (brand and last four only).
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    pub event: &'static str,
    pub transaction_id: &'a str,
    pub request_id: &'a str,
    pub merchant_id: &'a str,
    pub status: Status,
    pub decision: Decision,
    pub score: u8,
    pub reasons: &'a [String],
    pub amount: i64,
    pub currency: &'a str,
    pub card_brand: Brand,
    pub card_last4: &'a str,
    pub card_fingerprint: &'a str,
    pub created_at: &'a str,
    pub recorded_at: String,
}

/// Date-partitioned (Hive style, for Athena) and named by transaction: a retried write lands on
/// the same key, so each transaction has one audit event.
pub fn audit_key(created_at: DateTime<Utc>, transaction_id: &str) -> String {
    format!("audit/transactions/{}/{transaction_id}.json", created_at.format("year=%Y/month=%m/day=%d"))
}

/// The issuing country of a BIN from the operator's BIN table (`fraud/bin-countries`, prefix →
/// ISO 3166-1 alpha-2): the longest matching prefix wins; unknown BINs have no country.
pub fn issuing_country<'a>(bin: &str, table: &'a BTreeMap<String, String>) -> Option<&'a str> {
    table
        .iter()
        .filter(|(prefix, _)| bin.starts_with(prefix.as_str()))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, c)| c.as_str())
}

fn pattern_ok(value: &str, len: std::ops::RangeInclusive<usize>, allowed: fn(char) -> bool) -> bool {
    len.contains(&value.chars().count()) && value.chars().all(allowed)
}

/// The rules of the request schema (schemas.rs) that deserialising does not enforce and the
/// card/amount validation does not cover. API Gateway's validator enforces the schema too; the
/// functions do not rely on it being in front of them.
pub fn schema_problems(req: &PaymentRequest) -> Vec<FieldError> {
    let mut out = Vec::new();
    let mut bad = |field: &'static str, message: &str| {
        out.push(FieldError { field, code: "invalid_value", message: message.to_string() })
    };
    if !pattern_ok(&req.merchant_id, 1..=64, |_| true) {
        bad("merchant_id", "must be 1 to 64 characters");
    }
    if let Some(c) = &req.customer_id {
        if !pattern_ok(c, 1..=64, |_| true) {
            bad("customer_id", "must be 1 to 64 characters");
        }
    }
    if !pattern_ok(&req.currency, 3..=3, |c| c.is_ascii_uppercase()) {
        bad("currency", "must be three capital letters (ISO 4217)");
    }
    if let Some(c) = &req.ip_country {
        if !pattern_ok(c, 2..=2, |c| c.is_ascii_uppercase()) {
            bad("ip_country", "must be two capital letters (ISO 3166-1 alpha-2)");
        }
    }
    if req.description.as_ref().is_some_and(|d| d.chars().count() > 255) {
        bad("description", "must be at most 255 characters");
    }
    if !pattern_ok(&req.card.number, 12..=23, |c| c.is_ascii_digit() || c == ' ') {
        bad("card.number", "must be 12 to 23 digits and spaces");
    }
    if !pattern_ok(&req.card.cvv, 3..=4, |c| c.is_ascii_digit()) {
        bad("card.cvv", "must be 3 or 4 digits");
    }
    if req.amount < 1 {
        bad("amount", "must be an integer of at least 1 (minor units)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Card;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn idempotency_keys_are_one_to_255_printable_characters() {
        assert!(check_idempotency_key(Some("order-42")).is_ok());
        assert!(check_idempotency_key(Some(&"k".repeat(255))).is_ok());
        assert_eq!(check_idempotency_key(None).unwrap_err().code, "missing_idempotency_key");
        for bad in ["", &"k".repeat(256), "tab\there", "é"] {
            assert_eq!(check_idempotency_key(Some(bad)).unwrap_err().code, "invalid_idempotency_key", "{bad:?}");
        }
    }

    #[test]
    fn a_transaction_id_depends_on_merchant_and_key_only() {
        let a = transaction_id(b"s", "m-1", "k-1");
        assert_eq!(a, transaction_id(b"s", "m-1", "k-1"));
        assert_ne!(a, transaction_id(b"s", "m-2", "k-1"));
        assert_ne!(a, transaction_id(b"s", "m-1", "k-2"));
        assert_ne!(transaction_id(b"s", "ab", "c"), transaction_id(b"s", "a", "bc"));
        assert_eq!(a.len(), 4 + 32);
    }

    #[test]
    fn the_request_digest_ignores_key_order_but_not_values() {
        let a = json!({"amount": 1, "currency": "USD"});
        let b: Value = serde_json::from_str(r#"{ "currency": "USD",  "amount": 1 }"#).unwrap();
        assert_eq!(request_digest(b"s", &a), request_digest(b"s", &b));
        assert_ne!(request_digest(b"s", &a), request_digest(b"s", &json!({"amount": 2, "currency": "USD"})));
    }

    #[test]
    fn audit_keys_are_partitioned_by_date() {
        let t = Utc.with_ymd_and_hms(2026, 3, 7, 23, 59, 0).unwrap();
        assert_eq!(audit_key(t, "txn_1"), "audit/transactions/year=2026/month=03/day=07/txn_1.json");
    }

    #[test]
    fn the_longest_bin_prefix_names_the_issuing_country() {
        let table: BTreeMap<String, String> = [("4", "US"), ("4000", "GB"), ("400012", "FR")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(issuing_country("400012", &table), Some("FR"));
        assert_eq!(issuing_country("400099", &table), Some("GB"));
        assert_eq!(issuing_country("424242", &table), Some("US"));
        assert_eq!(issuing_country("510510", &table), None);
    }

    #[test]
    fn schema_rules_name_each_field_they_refuse() {
        let req = PaymentRequest {
            merchant_id: String::new(),
            customer_id: Some("c".repeat(65)),
            amount: 0,
            currency: "usd".into(),
            card: Card { number: "4242-4242".into(), exp_month: 1, exp_year: 2030, cvv: "12".into() },
            ip_country: Some("USA".into()),
            description: Some("d".repeat(256)),
        };
        let fields: Vec<_> = schema_problems(&req).iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "merchant_id",
                "customer_id",
                "currency",
                "ip_country",
                "description",
                "card.number",
                "card.cvv",
                "amount"
            ]
        );
    }
}
