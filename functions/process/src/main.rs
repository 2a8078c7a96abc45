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
//!
//! The database: process signs in as its own login (`db/process-login`, `payments_process`) with
//! an IAM auth token it signs itself; it never reads the master secret. The login can read
//! merchants and customers and append to the ledger, nothing more (migration 3). The schema is
//! the migrator's business (rotate-secret, the one function that reads the master credential):
//! when a container first needs the database and finds its login refused or the schema older
//! than its code, it invokes the migrator of its own colour and checks again.

mod record;

use chrono::Utc;
use lambda_http::{run, service_fn, Body, Error, Request, RequestExt, Response};
use payments_core::migrations::LATEST;
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
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// The PostgreSQL login process signs in as (written by tapctl: `payments_process`).
const LOGIN: &str = "db/process-login";
/// The function that migrates the schema as the master user (rotate-secret).
const MIGRATOR: &str = "resources/migrator-function";
const TOPIC: &str = "resources/alerts-topic-arn";
const BUCKET: &str = "resources/audit-bucket";

/// What a container keeps between invocations: configuration and, once needed, connections.
struct State {
    config: Config,
    tls: OnceCell<tokio_postgres_rustls::MakeRustlsConnect>,
    reader: Connection,
    writer: Connection,
    ready: OnceCell<()>,
    /// The alias (colour) this container was last invoked through: its migrator is the one of
    /// the same colour, so blue code migrates with blue's migrations.
    alias: std::sync::Mutex<Option<String>>,
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
                ready: OnceCell::new(),
                alias: std::sync::Mutex::new(None),
            })
        })
        .await
}

#[derive(Clone, Copy)]
enum Role {
    Reader,
    Writer,
}

/// The alias of an invoked function ARN (`…:function:payment-process-qa:blue`): none when the
/// function was invoked unqualified, as `$LATEST` or by version number (no colour to follow).
fn alias_of(invoked_arn: &str) -> Option<String> {
    let qualifier = invoked_arn.split(':').nth(7)?;
    let is_version = qualifier.bytes().all(|b| b.is_ascii_digit());
    (!qualifier.is_empty() && !is_version && qualifier != "$LATEST").then(|| qualifier.to_string())
}

/// What says the schema is not ready for this code's login yet, rather than broken: the login
/// refused (not made yet: `28000`/`28P01`), not allowed to connect or read (`42501`), no
/// migrations table (`42P01`).
fn needs_migration(err: &FnError) -> bool {
    db::is_auth_failure(err)
        || matches!(err, FnError::Db { detail, .. }
            if detail.ends_with(SqlState::INSUFFICIENT_PRIVILEGE.code()) || detail.ends_with(SqlState::UNDEFINED_TABLE.code()))
}

impl State {
    /// A connection to the reader or writer. The container's first use of the database checks
    /// that the schema is ready for this code (and has it migrated when not) first.
    async fn db(&self, role: Role) -> Result<Arc<Client>, FnError> {
        self.ready.get_or_try_init(|| self.prepare()).await?;
        self.connect(role).await
    }

    /// Signs in on the writer and compares the schema's version with the one this code embeds;
    /// when the login is refused or the schema is behind, invokes the migrator synchronously and
    /// checks once more. Concurrent containers may all invoke it: it migrates under a lock.
    async fn prepare(&self) -> Result<(), FnError> {
        let Some(reason) = self.not_ready().await? else { return Ok(()) };
        tracing::info!(reason = %reason, "the database is not ready for this code: asking the migrator");
        self.migrate().await?;
        match self.not_ready().await? {
            None => Ok(()),
            Some(reason) => Err(FnError::Config(format!("the database is not ready after the migrator ran: {reason}"))),
        }
    }

    /// Why the database is not ready for this code, or None when it is.
    async fn not_ready(&self) -> Result<Option<String>, FnError> {
        let version = match self.connect(Role::Writer).await {
            Ok(client) => db::schema_version(&client).await.map_err(|e| FnError::db("schema version", &e)),
            Err(e) => Err(e),
        };
        match version {
            Ok(v) if v >= LATEST => Ok(None),
            Ok(v) => Ok(Some(format!("schema version {v}, this code needs {LATEST}"))),
            Err(e) if needs_migration(&e) => {
                self.writer.reset().await;
                Ok(Some(e.to_string()))
            }
            Err(e) => {
                self.writer.reset().await;
                Err(e)
            }
        }
    }

    /// `{"action":"migrate"}` to the migrator of this container's colour; its answer is
    /// `{"schema_version", "applied"}`. What it failed with stays in its own log.
    async fn migrate(&self) -> Result<(), FnError> {
        let params = self.config.params().await?;
        let function = params.get(MIGRATOR)?;
        let qualifier = self.alias.lock().ok().and_then(|a| a.clone());
        let out = Clients::get()
            .await
            .lambda()
            .invoke()
            .function_name(function)
            .set_qualifier(qualifier.clone())
            .payload(aws_sdk_lambda::primitives::Blob::new(br#"{"action":"migrate"}"#.to_vec()))
            .send()
            .await
            .map_err(|e| FnError::aws("lambda:Invoke", e))?;
        let called = format!("{function}{}", qualifier.as_deref().map(|q| format!(":{q}")).unwrap_or_default());
        if out.function_error().is_some() {
            return Err(FnError::Config(format!("the migrator {called} failed (see its log)")));
        }
        let answer: serde_json::Value = out
            .payload()
            .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
            .ok_or_else(|| FnError::Config(format!("the migrator {called} answered no JSON")))?;
        tracing::info!(migrator = %called, schema_version = %answer["schema_version"], applied = %answer["applied"],
            "the migrator brought the schema up to date");
        Ok(())
    }

    /// The kept connection, or a new one signed in as this function's login with a fresh IAM
    /// auth token (valid 15 minutes for signing in; the connection itself lives on).
    async fn connect(&self, role: Role) -> Result<Arc<Client>, FnError> {
        let conn = match role {
            Role::Reader => &self.reader,
            Role::Writer => &self.writer,
        };
        if let Some(client) = conn.open().await {
            return Ok(client);
        }
        let params = self.config.params().await?;
        let settings = Settings::from_params(&params)?;
        let tls = self.tls.get_or_try_init(|| async { db::tls(&settings.ca_bundle) }).await?;
        let endpoint = match role {
            Role::Reader => &settings.reader,
            Role::Writer => &settings.writer,
        };
        let login = params.get(LOGIN)?;
        let token = db::iam::token(Clients::get().await.sdk(), &endpoint.host, endpoint.port, login).await?;
        let creds = Credentials { username: login.to_string(), password: token.expose().to_string() };
        conn.get(endpoint, &creds, tls).await
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
    let invoked_arn = request.lambda_context_ref().map(|c| c.invoked_function_arn.clone());
    let prepared = async {
        let state = state().await?;
        if let (Some(arn), Ok(mut alias)) = (invoked_arn.as_deref(), state.alias.lock()) {
            *alias = alias_of(arn);
        }
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
