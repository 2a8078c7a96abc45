//! POST /validate: the card, expiry, CVV, currency and amount rules of payments-core, with the
//! card's brand, last four digits and keyed fingerprint. Never the number, never the CVV.

use lambda_http::{run, service_fn, Body, Error, Request, Response};
use payments_runtime::http::{invalid_request, json_response, parse_payment, request_id, unavailable};
use payments_runtime::rules::{limits, FINGERPRINT_SECRET};
use payments_runtime::{Config, FnError, PaymentRequest};

async fn validate(req: &PaymentRequest) -> Result<serde_json::Value, FnError> {
    let config = Config::shared().await?;
    let params = config.params().await?;
    let key = config.secret(FINGERPRINT_SECRET).await?;
    let v = payments_core::validate(req, chrono::Utc::now().date_naive(), key.expose().as_bytes(), &limits(&params)?);
    serde_json::to_value(&v).map_err(|_| FnError::Config("response".into()))
}

async fn handle(request: Request) -> Result<Response<Body>, Error> {
    let rid = request_id(&request);
    let req = match parse_payment(request.body()) {
        Ok((_, req)) => req,
        Err(details) => return Ok(invalid_request("the body does not match the PaymentRequest schema", details, &rid)),
    };
    Ok(match validate(&req).await {
        Ok(body) => json_response(200, &body),
        Err(e) => {
            tracing::error!(request_id = %rid, error = %e, "validate failed");
            unavailable(&rid)
        }
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    payments_runtime::init_logging();
    run(service_fn(handle)).await
}
