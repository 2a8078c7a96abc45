//! The transaction record in DynamoDB (`pk = TXN#<id>`, `sk = TXN`) and the idempotency protocol
//! on it. The id is derived from (merchant, Idempotency-Key), so of many concurrent requests with
//! one key exactly one conditional put succeeds; the others find the record and either replay its
//! stored response, wait briefly for it, take over a failed or abandoned attempt, or get a 409
//! when the body differs. Every write after the claim is conditioned on the attempt number, so a
//! slow, superseded attempt cannot overwrite the outcome of the one that took over.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use payments_runtime::FnError;
use std::collections::HashMap;

/// How long a claim is held before another request may take the transaction over (an attempt
/// that crashed or timed out leaves its record pending; Lambda's timeout is shorter than this).
pub const LEASE_SECONDS: i64 = 30;

pub struct Claim {
    pub attempt: i64,
    pub created_at: String,
}

pub enum Existing {
    /// Finished before: its stored status code and body.
    Done { code: u16, body: String },
    /// Another body under the same key.
    Conflict,
    /// Another attempt holds a live lease.
    InProgress,
    /// Failed or abandoned: this request took it over.
    TakenOver(Claim),
}

pub struct NewRecord<'a> {
    pub transaction_id: &'a str,
    pub merchant_id: &'a str,
    pub idempotency_key: &'a str,
    pub digest: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    pub brand: &'a str,
    pub last4: &'a str,
    pub fingerprint: &'a str,
    pub created_at: &'a str,
    pub request_id: &'a str,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn key(transaction_id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(&format!("TXN#{transaction_id}"))), ("sk".to_string(), s("TXN"))])
}

fn now_epoch() -> i64 {
    chrono::Utc::now().timestamp()
}

fn is_condition_failure<E: ProvideErrorMetadata>(
    e: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// Writes the PENDING record unless one exists. `Ok(None)`: claimed as attempt 1.
pub async fn claim(ddb: &Client, table: &str, r: &NewRecord<'_>) -> Result<Option<Existing>, FnError> {
    let mut item = key(r.transaction_id);
    for (k, v) in [
        ("transaction_id", s(r.transaction_id)),
        ("merchant_id", s(r.merchant_id)),
        ("idempotency_key", s(r.idempotency_key)),
        ("request_digest", s(r.digest)),
        ("status", s("pending")),
        ("amount", n(r.amount)),
        ("currency", s(r.currency)),
        ("card_brand", s(r.brand)),
        ("card_last4", s(r.last4)),
        ("card_fingerprint", s(r.fingerprint)),
        ("created_at", s(r.created_at)),
        ("updated_at", s(r.created_at)),
        ("request_id", s(r.request_id)),
        ("attempt", n(1)),
        ("lease_until", n(now_epoch() + LEASE_SECONDS)),
    ] {
        item.insert(k.to_string(), v);
    }
    let put = ddb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match put {
        Ok(_) => Ok(None),
        Err(e) if is_condition_failure(&e) => existing(ddb, table, r).await.map(Some),
        Err(e) => Err(FnError::aws("dynamodb:PutItem", e)),
    }
}

async fn read(ddb: &Client, table: &str, transaction_id: &str) -> Result<HashMap<String, AttributeValue>, FnError> {
    let out = ddb
        .get_item()
        .table_name(table)
        .set_key(Some(key(transaction_id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| FnError::aws("dynamodb:GetItem", e))?;
    out.item.ok_or_else(|| FnError::Config("the transaction record vanished".into()))
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}
fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

async fn existing(ddb: &Client, table: &str, r: &NewRecord<'_>) -> Result<Existing, FnError> {
    // A concurrent attempt is usually done within a few hundred milliseconds: wait for it
    // rather than send the client away.
    for _ in 0..50 {
        let item = read(ddb, table, r.transaction_id).await?;
        if get_s(&item, "request_digest") != Some(r.digest) {
            return Ok(Existing::Conflict);
        }
        if let (Some(code), Some(body)) = (get_n(&item, "response_code"), get_s(&item, "response_body")) {
            return Ok(Existing::Done { code: code as u16, body: body.to_string() });
        }
        let attempt = get_n(&item, "attempt").unwrap_or(1);
        let lease_over = get_n(&item, "lease_until").unwrap_or(0) < now_epoch();
        if get_s(&item, "status") == Some("failed") || lease_over {
            if take_over(ddb, table, r.transaction_id, attempt).await? {
                let created_at = get_s(&item, "created_at").unwrap_or(r.created_at).to_string();
                return Ok(Existing::TakenOver(Claim { attempt: attempt + 1, created_at }));
            }
            continue;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(Existing::InProgress)
}

async fn take_over(ddb: &Client, table: &str, transaction_id: &str, seen_attempt: i64) -> Result<bool, FnError> {
    let out = ddb
        .update_item()
        .table_name(table)
        .set_key(Some(key(transaction_id)))
        .update_expression("SET #status = :pending, attempt = :next, lease_until = :lease, updated_at = :now")
        .condition_expression("attempt = :seen AND attribute_not_exists(response_code)")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":pending", s("pending"))
        .expression_attribute_values(":next", n(seen_attempt + 1))
        .expression_attribute_values(":seen", n(seen_attempt))
        .expression_attribute_values(":lease", n(now_epoch() + LEASE_SECONDS))
        .expression_attribute_values(":now", s(&payments_runtime::rules::timestamp(chrono::Utc::now())))
        .send()
        .await;
    match out {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(FnError::aws("dynamodb:UpdateItem", e)),
    }
}

pub struct Outcome<'a> {
    pub status: &'a str,
    pub decision: &'a str,
    pub score: u8,
    pub reasons: &'a [String],
    pub response_code: u16,
    pub response_body: &'a str,
}

/// Records the outcome and the response replays will get, if this attempt still owns the record.
pub async fn finish(
    ddb: &Client,
    table: &str,
    transaction_id: &str,
    attempt: i64,
    o: &Outcome<'_>,
) -> Result<(), FnError> {
    let reasons = if o.reasons.is_empty() {
        AttributeValue::L(vec![])
    } else {
        AttributeValue::L(o.reasons.iter().map(|r| s(r)).collect())
    };
    ddb.update_item()
        .table_name(table)
        .set_key(Some(key(transaction_id)))
        .update_expression(
            "SET #status = :status, decision = :decision, score = :score, reasons = :reasons, \
             response_code = :code, response_body = :body, updated_at = :now REMOVE lease_until",
        )
        .condition_expression("attempt = :attempt")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":status", s(o.status))
        .expression_attribute_values(":decision", s(o.decision))
        .expression_attribute_values(":score", n(o.score as i64))
        .expression_attribute_values(":reasons", reasons)
        .expression_attribute_values(":code", n(o.response_code as i64))
        .expression_attribute_values(":body", s(o.response_body))
        .expression_attribute_values(":now", s(&payments_runtime::rules::timestamp(chrono::Utc::now())))
        .expression_attribute_values(":attempt", n(attempt))
        .send()
        .await
        .map_err(|e| FnError::aws("dynamodb:UpdateItem", e))?;
    Ok(())
}

/// Marks this attempt failed, so a retry with the same key may take it over at once.
pub async fn fail(ddb: &Client, table: &str, transaction_id: &str, attempt: i64) -> Result<(), FnError> {
    ddb.update_item()
        .table_name(table)
        .set_key(Some(key(transaction_id)))
        .update_expression("SET #status = :failed, updated_at = :now REMOVE lease_until")
        .condition_expression("attempt = :attempt AND attribute_not_exists(response_code)")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":failed", s("failed"))
        .expression_attribute_values(":now", s(&payments_runtime::rules::timestamp(chrono::Utc::now())))
        .expression_attribute_values(":attempt", n(attempt))
        .send()
        .await
        .map_err(|e| FnError::aws("dynamodb:UpdateItem", e))?;
    Ok(())
}
