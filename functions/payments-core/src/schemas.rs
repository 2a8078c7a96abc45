//! The JSON Schemas of the API's bodies: the single source of truth, uploaded by tapctl as API
//! Gateway models (draft-04, which API Gateway speaks).

use serde_json::{json, Value};

/// The request body of /validate, /fraud-check and /process.
pub fn payment_request() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "PaymentRequest",
        "type": "object",
        "additionalProperties": false,
        "required": ["merchant_id", "amount", "currency", "card"],
        "properties": {
            "merchant_id": { "type": "string", "minLength": 1, "maxLength": 64 },
            "customer_id": { "type": "string", "minLength": 1, "maxLength": 64 },
            "amount": { "type": "integer", "minimum": 1 },
            "currency": { "type": "string", "pattern": "^[A-Z]{3}$" },
            "card": {
                "type": "object",
                "additionalProperties": false,
                "required": ["number", "exp_month", "exp_year", "cvv"],
                "properties": {
                    "number": { "type": "string", "pattern": "^[0-9 ]{12,23}$" },
                    "exp_month": { "type": "integer", "minimum": 1, "maximum": 12 },
                    "exp_year": { "type": "integer", "minimum": 1000, "maximum": 9999 },
                    "cvv": { "type": "string", "pattern": "^[0-9]{3,4}$" }
                }
            },
            "ip_country": { "type": "string", "pattern": "^[A-Z]{2}$" },
            "description": { "type": "string", "maxLength": 255 }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_schema_requires_what_the_contract_requires() {
        let s = payment_request();
        assert_eq!(s["required"], json!(["merchant_id", "amount", "currency", "card"]));
        assert_eq!(s["properties"]["card"]["required"], json!(["number", "exp_month", "exp_year", "cvv"]));
        assert_eq!(s["properties"]["amount"]["type"], "integer", "amounts are minor units, never floats");
        assert_eq!(s["additionalProperties"], false);
    }

    #[test]
    fn the_schema_matches_the_types_the_functions_deserialise() {
        // A body the schema describes is one the functions accept, and the other way round.
        let body = json!({
            "merchant_id": "m-1", "amount": 1250, "currency": "USD",
            "card": { "number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2030, "cvv": "123" },
            "ip_country": "US"
        });
        let parsed: crate::PaymentRequest = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.amount, 1250);
        let extra = json!({ "merchant_id": "m", "amount": 1, "currency": "USD", "surprise": 1,
            "card": { "number": "4242424242424242", "exp_month": 1, "exp_year": 2030, "cvv": "123" } });
        assert!(
            serde_json::from_value::<crate::PaymentRequest>(extra).is_err(),
            "unknown fields are refused, as in the schema"
        );
    }
}
