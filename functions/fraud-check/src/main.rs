//! POST /fraud-check: the explainable fraud rules of payments-core, fed with thresholds from
//! Parameter Store and the card's velocity from the transactions table's `by-card` index.

use lambda_http::{run, service_fn, Body, Error, Request, Response};
use payments_core::CardNumber;
use payments_runtime::http::{invalid_request, json_response, parse_payment, request_id, unavailable};
use payments_runtime::rules::{assess, FINGERPRINT_SECRET};
use payments_runtime::{Clients, Config, FnError, PaymentRequest};
use serde_json::json;

async fn check(req: &PaymentRequest, card: &CardNumber) -> Result<serde_json::Value, FnError> {
    let config = Config::shared().await?;
    let params = config.params().await?;
    let key = config.secret(FINGERPRINT_SECRET).await?;
    let fingerprint = card.fingerprint(key.expose().as_bytes());
    let a = assess(Clients::get().await.dynamodb(), &params, req, card, &fingerprint, None).await?;
    Ok(json!({ "decision": a.decision, "score": a.score, "reasons": a.reasons }))
}

async fn handle(request: Request) -> Result<Response<Body>, Error> {
    let rid = request_id(&request);
    let req = match parse_payment(request.body()) {
        Ok((_, req)) => req,
        Err(details) => return Ok(invalid_request("the body does not match the PaymentRequest schema", details, &rid)),
    };
    let Some(card) = CardNumber::parse(&req.card.number) else {
        let details = vec![json!({ "field": "card.number", "problem": "wrong_type_or_value" })];
        return Ok(invalid_request("the card number must be digits (spaces allowed)", details, &rid));
    };
    Ok(match check(&req, &card).await {
        Ok(body) => json_response(200, &body),
        Err(e) => {
            tracing::error!(request_id = %rid, error = %e, "fraud-check failed");
            unavailable(&rid)
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    payments_runtime::init_logging();
    run(service_fn(handle)).await
}
