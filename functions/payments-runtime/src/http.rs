//! JSON responses of the API contract and request parsing that never echoes what it was sent:
//! serde's messages can quote the offending value (a card number in the wrong field), so a bad
//! body is described by the path of the field and the kind of problem only.

use lambda_http::{Body, Request, RequestExt, Response};
use payments_core::validate::FieldError;
use payments_core::PaymentRequest;
use serde_json::{json, Value};

pub fn json_response(status: u16, body: &Value) -> Response<Body> {
    text_response(status, body.to_string())
}

pub fn text_response(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        // Responses carry payment outcomes: never cached by a proxy.
        .header("cache-control", "no-store")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// `{ "error": { "code", "message", "details", "request_id" } }`.
pub fn error_response(status: u16, code: &str, message: &str, details: Vec<Value>, request_id: &str) -> Response<Body> {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message, "details": details, "request_id": request_id } }),
    )
}

pub fn invalid_request(message: &str, details: Vec<Value>, request_id: &str) -> Response<Body> {
    error_response(400, "invalid_request", message, details, request_id)
}

/// 503 for a dependency that failed (retry later, same Idempotency-Key), without internal detail.
pub fn unavailable(request_id: &str) -> Response<Body> {
    error_response(
        503,
        "service_unavailable",
        "the payment could not be completed; retry with the same Idempotency-Key",
        vec![],
        request_id,
    )
}

pub fn internal_error(request_id: &str) -> Response<Body> {
    error_response(500, "internal_error", "internal error", vec![], request_id)
}

pub fn field_errors(errors: &[FieldError]) -> Vec<Value> {
    errors.iter().map(|e| json!({ "field": e.field, "code": e.code, "message": e.message })).collect()
}

/// The Lambda request id (also in the function's log lines), for support without detail.
pub fn request_id(req: &Request) -> String {
    req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_else(|| "unknown".into())
}

pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A path segment safe to show: long digit runs (a card number used as a key) are hidden.
fn safe_segment(segment: &str) -> String {
    let digits = segment.chars().filter(char::is_ascii_digit).count();
    if digits >= 6 || segment.len() > 64 {
        "<redacted>".into()
    } else {
        segment.into()
    }
}

/// The body as JSON and as the request type, or the details of a 400.
pub fn parse_payment(body: &[u8]) -> Result<(Value, PaymentRequest), Vec<Value>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![json!({ "field": "", "problem": "malformed_json", "line": e.line(), "column": e.column() })]
    })?;
    let parsed: Result<PaymentRequest, _> = serde_path_to_error::deserialize(&value);
    match parsed {
        Ok(req) => {
            let problems = payments_core::process::schema_problems(&req);
            if problems.is_empty() {
                Ok((value, req))
            } else {
                Err(field_errors(&problems))
            }
        }
        Err(e) => {
            let mut path: Vec<String> = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => Some(safe_segment(key)),
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    _ => None,
                })
                .collect();
            let message = e.inner().to_string();
            let problem = if let Some(rest) = message.strip_prefix("missing field `") {
                path.push(safe_segment(rest.split('`').next().unwrap_or_default()));
                "missing_field"
            } else if message.starts_with("unknown field") {
                "unknown_field"
            } else {
                "wrong_type_or_value"
            };
            Err(vec![json!({ "field": path.join("."), "problem": problem })])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_body_is_described_without_repeating_its_values() {
        let body = br#"{"merchant_id":"m","amount":5,"currency":"USD",
            "card":{"number":"4242424242424242","exp_month":"4242424242424242","exp_year":2030,"cvv":"123"}}"#;
        let details = parse_payment(body).unwrap_err();
        let text = serde_json::to_string(&details).unwrap();
        assert!(!text.contains("4242424242424242"), "{text}");
        assert_eq!(details[0]["field"], "card.exp_month");
        assert_eq!(details[0]["problem"], "wrong_type_or_value");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let missing = parse_payment(br#"{"amount":5,"currency":"USD","card":{"number":"4242424242424242","exp_month":1,"exp_year":2030,"cvv":"123"}}"#).unwrap_err();
        assert_eq!(
            (missing[0]["field"].as_str(), missing[0]["problem"].as_str()),
            (Some("merchant_id"), Some("missing_field"))
        );
        let unknown = parse_payment(br#"{"merchant_id":"m","amount":5,"currency":"USD","4111111111111111":1,"card":{"number":"4242424242424242","exp_month":1,"exp_year":2030,"cvv":"123"}}"#).unwrap_err();
        assert_eq!(unknown[0]["problem"], "unknown_field");
        assert!(!unknown[0].to_string().contains("4111111111111111"));
        let malformed = parse_payment(b"{\"merchant_id\": ").unwrap_err();
        assert_eq!(malformed[0]["problem"], "malformed_json");
    }
}
