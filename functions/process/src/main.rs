//! POST /process: takes a card payment exactly once per (merchant, Idempotency-Key).
//!
//! 1. The PENDING record is written first, with a conditional put (record.rs: idempotency).
//! 2. Merchant and customer are read from the Aurora reader (404 unknown, 403 suspended/blocked).
//! 3. The card is validated and the fraud rules decide (approve / review / decline).
//! 4. An approved payment is recorded in the double-entry ledger on the writer, keyed by the
//!    transaction id (a retry inserts nothing).
//! 5. One audit event per transaction goes to S3 (date-partitioned key named by the id).
//! 6. The outcome and the response are stored on the record; replays get that response.
//!
//! Any failure after step 1 marks the attempt `failed`, sends an SNS alert and answers 503: the
//! client retries with the same key, and the retry takes the failed attempt over. Every step is
//! safe to repeat. No card number or CVV goes to the table, the bucket, SNS, a log or a response.

mod record;

use chrono::Utc;
use lambda_http::{run, service_fn, Body, Error, Request, Response};
use payments_core::process::{
    audit_key, check_idempotency_key, request_digest, transaction_id, AuditEvent, CardSummary, ProcessResponse, Status,
    IDEMPOTENCY_HEADER,
};
use payments_core::{CardNumber, Decision, PaymentRequest};
use payments_runtime::db::{self, Connection, Credentials, Settings};
use payments_runtime::http::{
    error_response, field_errors, header, invalid_request, parse_payment, request_id, text_response, unavailable,
};
use payments_runtime::rules::{self, timestamp, FINGERPRINT_SECRET, TABLE};
use payments_runtime::{Clients, Config, FnError};
use record::{Claim, Existing, NewRecord, Outcome};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::OnceCell;
use tokio_postgres::Client;

const DB_SECRET: &str = "resources/db-secret-arn";
const TOPIC: &str = "resources/alerts-topic-arn";
const BUCKET: &str = "resources/audit-bucket";

/// What a container keeps between invocations: configuration and, once needed, connections.
struct State {
    config: Config,
    tls: OnceCell<tokio_postgres_rustls::MakeRustlsConnect>,
    reader: Connection,
    writer: Connection,
    migrated: OnceCell<()>,
}

static STATE: OnceCell<State> = OnceCell::const_new();

async fn state() -> Result<&'static State, FnError> {
    STATE
        .get_or_try_init(|| async {
            let c = Clients::get().await;
            Ok(State {
                config: Config::from_env(c.ssm().clone(), c.secrets().clone())?,
                tls: OnceCell::new(),
                reader: Connection::default(),
                writer: Connection::default(),
                migrated: OnceCell::new(),
            })
        })
        .await
}

#[derive(Clone, Copy)]
enum Role {
    Reader,
    Writer,
}

impl State {
    /// A connection to the reader or writer. The container's first use of the database applies
    /// any missing migrations on the writer first (under an advisory lock: containers may race).
    async fn db(&self, role: Role) -> Result<Arc<Client>, FnError> {
        self.migrated
            .get_or_try_init(|| async { db::migrate(&*self.connect(Role::Writer).await?).await.map(|_| ()) })
            .await?;
        self.connect(role).await
    }

    /// Fresh credentials once if the server refused the cached ones (a rotation happened since
    /// they were read).
    async fn connect(&self, role: Role) -> Result<Arc<Client>, FnError> {
        let params = self.config.params().await?;
        let settings = Settings::from_params(&params)?;
        let tls = self.tls.get_or_try_init(|| async { db::tls(&settings.ca_bundle) }).await?;
        let (conn, endpoint) = match role {
            Role::Reader => (&self.reader, &settings.reader),
            Role::Writer => (&self.writer, &settings.writer),
        };
        let creds = Credentials::from_secret(&*self.config.secret(DB_SECRET).await?)?;
        let client = match conn.get(endpoint, &creds, tls).await {
            Err(e) if db::is_auth_failure(&e) => {
                self.config.invalidate_secret(DB_SECRET).await;
                let creds = Credentials::from_secret(&*self.config.secret(DB_SECRET).await?)?;
                conn.get(endpoint, &creds, tls).await?
            }
            other => other?,
        };
        Ok(client)
    }

    /// Runs a read or write, reconnecting once if the kept connection turned out closed (the
    /// server restarted or failed over since the last invocation).
    async fn query<T, F, Fut>(&self, role: Role, what: &'static str, f: F) -> Result<T, FnError>
    where
        F: Fn(Arc<Client>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let conn = match role {
            Role::Reader => &self.reader,
            Role::Writer => &self.writer,
        };
        match f(self.db(role).await?).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_closed() => {
                conn.reset().await;
                f(self.db(role).await?).await.map_err(|e| FnError::db(what, &e))
            }
            Err(e) => {
                conn.reset().await;
                Err(FnError::db(what, &e))
            }
        }
    }
}

/// A refusal that is the final answer for this key (stored and replayed like a success).
struct Refusal {
    code: u16,
    error: &'static str,
    message: &'static str,
    reason: &'static str,
}

async fn check_parties(state: &State, req: &PaymentRequest) -> Result<Option<Refusal>, FnError> {
    let merchant = req.merchant_id.clone();
    let row = state
        .query(Role::Reader, "read merchant", |c| {
            let merchant = merchant.clone();
            async move { c.query_opt("SELECT status FROM merchants WHERE merchant_id = $1", &[&merchant]).await }
        })
        .await?;
    let refusal = |code, error, message, reason| Some(Refusal { code, error, message, reason });
    match row.map(|r| r.get::<_, String>(0)).as_deref() {
        None => return Ok(refusal(404, "unknown_merchant", "no such merchant", "unknown_merchant")),
        Some("active") => {}
        Some(_) => return Ok(refusal(403, "merchant_suspended", "the merchant is suspended", "merchant_suspended")),
    }
    if let Some(customer) = req.customer_id.clone() {
        let row = state
            .query(Role::Reader, "read customer", |c| {
                let (customer, merchant) = (customer.clone(), merchant.clone());
                async move {
                    c.query_opt(
                        "SELECT status FROM customers WHERE customer_id = $1 AND merchant_id = $2",
                        &[&customer, &merchant],
                    )
                    .await
                }
            })
            .await?;
        match row.map(|r| r.get::<_, String>(0)).as_deref() {
            None => return Ok(refusal(404, "unknown_customer", "no such customer", "unknown_customer")),
            Some("active") => {}
            Some(_) => return Ok(refusal(403, "customer_blocked", "the customer is blocked", "customer_blocked")),
        }
    }
    Ok(None)
}

/// Debit the card settlement account, credit the merchant: one statement, so both entries
/// commit together (and the ledger's deferred trigger checks they balance); a transaction id
/// already in the ledger inserts nothing.
async fn record_in_ledger(state: &State, txn: &str, req: &PaymentRequest) -> Result<u64, FnError> {
    let (txn, merchant, amount, currency) =
        (txn.to_string(), req.merchant_id.clone(), req.amount, req.currency.clone());
    state
        .query(Role::Writer, "ledger insert", |c| {
            let (txn, merchant, currency) = (txn.clone(), merchant.clone(), currency.clone());
            async move {
                c.execute(
                    "WITH t AS (
                        INSERT INTO ledger_transactions (transaction_id, merchant_id, amount_minor, currency)
                        VALUES ($1, $2, $3, $4) ON CONFLICT (transaction_id) DO NOTHING RETURNING transaction_id)
                     INSERT INTO ledger_entries (transaction_id, account, direction, amount_minor, currency)
                     SELECT t.transaction_id, e.account, e.direction, $3, $4
                       FROM t, (VALUES ('card_settlement:' || $4::text, 'debit'),
                                       ('merchant_payable:' || $2::text, 'credit')) AS e(account, direction)",
                    &[&txn, &merchant, &amount, &currency],
                )
                .await
            }
        })
        .await
}

struct Ctx<'a> {
    state: &'a State,
    clients: &'a Clients,
    table: String,
    rid: String,
    txn: String,
    req: &'a PaymentRequest,
    card: CardNumber,
    fingerprint: String,
    claim: Claim,
}

/// Steps 2–6 for a claimed transaction: the response, or the system failure that stopped it.
async fn complete(ctx: &Ctx<'_>) -> Result<(u16, String), FnError> {
    let params = ctx.state.config.params().await?;
    let req = ctx.req;
    let summary = CardSummary { brand: ctx.card.brand(), last4: ctx.card.last4() };
    let (status, decision, score, reasons, code, body) = if let Some(r) = check_parties(ctx.state, req).await? {
        let body = json!({ "error": { "code": r.error, "message": r.message, "details": [],
                           "transaction_id": ctx.txn, "request_id": ctx.rid } });
        (Status::Declined, Decision::Decline, 100, vec![r.reason.to_string()], r.code, body.to_string())
    } else {
        let key = ctx.state.config.secret(FINGERPRINT_SECRET).await?;
        let validation =
            payments_core::validate(req, Utc::now().date_naive(), key.expose().as_bytes(), &rules::limits(&params)?);
        let (decision, score, reasons) = if validation.valid {
            let a = rules::assess(ctx.clients.dynamodb(), &params, req, &ctx.card, &ctx.fingerprint, Some(&ctx.txn))
                .await?;
            (a.decision, a.score, a.reasons)
        } else {
            (Decision::Decline, 100, validation.errors.iter().map(|e| e.code.to_string()).collect())
        };
        let status = Status::of(decision);
        if status == Status::Approved {
            record_in_ledger(ctx.state, &ctx.txn, req).await?;
        }
        let response = ProcessResponse {
            transaction_id: ctx.txn.clone(),
            status,
            decision,
            amount: req.amount,
            currency: req.currency.clone(),
            card: summary.clone(),
            created_at: ctx.claim.created_at.clone(),
            reasons: reasons.clone(),
            errors: validation.errors,
        };
        let body = serde_json::to_string(&response).map_err(|_| FnError::Config("response".into()))?;
        (status, decision, score, reasons, 201, body)
    };
    let event = AuditEvent {
        event: "payment.processed",
        transaction_id: &ctx.txn,
        request_id: &ctx.rid,
        merchant_id: &req.merchant_id,
        status,
        decision,
        score,
        reasons: &reasons,
        amount: req.amount,
        currency: &req.currency,
        card_brand: summary.brand,
        card_last4: &summary.last4,
        card_fingerprint: &ctx.fingerprint,
        created_at: &ctx.claim.created_at,
        recorded_at: timestamp(Utc::now()),
    };
    let created = chrono::DateTime::parse_from_rfc3339(&ctx.claim.created_at)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now());
    ctx.clients
        .s3()
        .put_object()
        .bucket(params.get(BUCKET)?)
        .key(audit_key(created, &ctx.txn))
        .content_type("application/json")
        .body(serde_json::to_vec(&event).map_err(|_| FnError::Config("audit event".into()))?.into())
        .send()
        .await
        .map_err(|e| FnError::aws("s3:PutObject", e))?;
    let decision_str =
        serde_json::to_value(decision).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    record::finish(
        ctx.clients.dynamodb(),
        &ctx.table,
        &ctx.txn,
        ctx.claim.attempt,
        &Outcome {
            status: status.as_str(),
            decision: &decision_str,
            score,
            reasons: &reasons,
            response_code: code,
            response_body: &body,
        },
    )
    .await?;
    Ok((code, body))
}

/// An SNS alert for a failed transaction or a system error: ids and the error kind only.
async fn alert(clients: &Clients, config: &Config, subject: &str, detail: serde_json::Value) {
    let Ok(params) = config.params().await else { return };
    let Ok(topic) = params.get(TOPIC) else { return };
    let sent = clients.sns().publish().topic_arn(topic).subject(subject).message(detail.to_string()).send().await;
    if let Err(e) = sent {
        tracing::error!(error = %FnError::aws("sns:Publish", e), "could not send the alert");
    }
}

async fn handle(request: Request) -> Result<Response<Body>, Error> {
    let rid = request_id(&request);
    let idempotency_key = match check_idempotency_key(header(&request, IDEMPOTENCY_HEADER)) {
        Ok(k) => k.to_string(),
        Err(e) => return Ok(invalid_request(&e.message, field_errors(std::slice::from_ref(&e)), &rid)),
    };
    let (body, req) = match parse_payment(request.body()) {
        Ok(p) => p,
        Err(details) => return Ok(invalid_request("the body does not match the PaymentRequest schema", details, &rid)),
    };
    // The schema checks allow only digits and spaces here, so it parses.
    let Some(card) = CardNumber::parse(&req.card.number) else {
        return Ok(invalid_request("the card number must be digits", vec![], &rid));
    };
    let clients = Clients::get().await;
    let prepared = async {
        let state = state().await?;
        let params = state.config.params().await?;
        let key = state.config.secret(FINGERPRINT_SECRET).await?;
        Ok::<_, FnError>((state, params.get(TABLE)?.to_string(), key))
    }
    .await;
    let (state, table, key) = match prepared {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(request_id = %rid, error = %e, "configuration unavailable");
            return Ok(unavailable(&rid));
        }
    };
    let secret = key.expose().as_bytes();
    let txn = transaction_id(secret, &req.merchant_id, &idempotency_key);
    let fingerprint = card.fingerprint(secret);
    let created_at = timestamp(Utc::now());
    let digest = request_digest(secret, &body);
    let new = NewRecord {
        transaction_id: &txn,
        merchant_id: &req.merchant_id,
        idempotency_key: &idempotency_key,
        digest: &digest,
        amount: req.amount,
        currency: &req.currency,
        brand: card.brand().as_str(),
        last4: &card.last4(),
        fingerprint: &fingerprint,
        created_at: &created_at,
        request_id: &rid,
    };
    let claim = match record::claim(clients.dynamodb(), &table, &new).await {
        Ok(None) => Claim { attempt: 1, created_at: created_at.clone() },
        Ok(Some(Existing::TakenOver(c))) => c,
        Ok(Some(Existing::Done { code, body })) => {
            tracing::info!(request_id = %rid, transaction_id = %txn, "replayed");
            return Ok(text_response(if code == 201 { 200 } else { code }, body));
        }
        Ok(Some(Existing::Conflict)) => {
            let message = "this Idempotency-Key was used with another request body";
            return Ok(error_response(409, "idempotency_key_reused", message, vec![], &rid));
        }
        Ok(Some(Existing::InProgress)) => {
            let message = "a request with this Idempotency-Key is in progress; retry shortly";
            return Ok(error_response(409, "request_in_progress", message, vec![], &rid));
        }
        Err(e) => {
            tracing::error!(request_id = %rid, error = %e, "could not record the transaction");
            alert(clients, &state.config, "payments: system error", json!({"request_id": rid, "error": e.to_string()}))
                .await;
            return Ok(unavailable(&rid));
        }
    };
    let attempt = claim.attempt;
    let ctx = Ctx { state, clients, table, rid: rid.clone(), txn: txn.clone(), req: &req, card, fingerprint, claim };
    match complete(&ctx).await {
        Ok((code, body)) => {
            tracing::info!(request_id = %rid, transaction_id = %txn, code, "processed");
            Ok(text_response(code, body))
        }
        Err(e) => {
            tracing::error!(request_id = %rid, transaction_id = %txn, error = %e, "transaction failed");
            if let Err(mark) = record::fail(clients.dynamodb(), &ctx.table, &txn, attempt).await {
                tracing::error!(request_id = %rid, error = %mark, "could not mark the transaction failed");
            }
            let detail = json!({ "transaction_id": txn, "merchant_id": req.merchant_id, "status": "failed",
                                 "request_id": rid, "error": e.to_string() });
            alert(clients, &state.config, "payments: transaction failed", detail).await;
            Ok(unavailable(&rid))
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    payments_runtime::init_logging();
    run(service_fn(handle)).await
}
