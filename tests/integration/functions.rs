//! The payment functions as built binaries, driven through the Lambda Runtime API (lambda.rs)
//! against the emulator (stack made by `tapctl up`) and a real PostgreSQL (postgres.rs) standing
//! in for Aurora: Parameter Store's `db/*` values are pointed at it, and the master user is made
//! with the password Secrets Manager holds. Assertions read back what the table, the bucket, the
//! topic's subscriber and the database hold.
//!
//! process signs in as its own login (`payments_process`, IAM database authentication: see
//! postgres.rs for what the harness does not verify of the token) and, when the schema is not
//! ready for it, invokes the migrator (rotate-secret, the one function that reads the master
//! secret) through a fake Lambda `Invoke` endpoint (lambda.rs: `InvokeEndpoint`) that runs the
//! rotate-secret binary.

use super::harness::Account;
use super::lambda::{Function, InvokeEndpoint};
use super::postgres::Postgres;
use aws_sdk_dynamodb::types::AttributeValue;
use payments_runtime::db::{self, Credentials, Endpoint};
use payments_runtime::SecretValue;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;

pub const BUCKET: &str = "payments-audit-123456789012-us-east-1-qa";
const TABLE: &str = "transactions-qa";
/// The migrator's function name (tapctl's `resources/migrator-function`) and process's own alias
/// ARN (what API Gateway invokes: the blue colour).
pub const MIGRATOR: &str = "payment-rotate-secret-qa";
pub const PROCESS_BLUE: &str = "arn:aws:lambda:us-east-1:123456789012:function:payment-process-qa:blue";
pub const LOGIN: &str = "payments_process";

pub struct Payments {
    pub acct: Account,
    pub pg: Postgres,
    /// Lambda's Invoke for the migrator, started with the first process container.
    migrator: std::sync::OnceLock<InvokeEndpoint>,
}

pub fn card(number: &str, cvv: &str) -> Value {
    json!({ "number": number, "exp_month": 12, "exp_year": 2031, "cvv": cvv })
}

pub fn payment(merchant: &str, amount: i64, card: Value) -> String {
    json!({ "merchant_id": merchant, "amount": amount, "currency": "USD", "card": card }).to_string()
}

impl Payments {
    /// The stack on the emulator, PostgreSQL with the master user, the functions' `db/*`
    /// parameters pointing at it. `schema`: apply the migrations and add the test merchants.
    pub fn new(schema: bool) -> Payments {
        let acct = Account::new();
        acct.ok(&["up", "--suffix", "qa"]);
        let pg = Postgres::start();
        let p = Payments { acct, pg, migrator: std::sync::OnceLock::new() };
        let creds = p.master();
        // Aurora's master user is not a superuser: it may create roles and databases
        // (rds_superuser), and owns the database it made.
        p.pg.psql(
            "postgres",
            &format!("CREATE ROLE {} LOGIN CREATEROLE CREATEDB PASSWORD '{}'", creds.username, creds.password),
        );
        p.pg.psql("postgres", &format!("ALTER DATABASE payments OWNER TO {}", creds.username));
        for (name, value) in [
            ("db/writer-endpoint", "127.0.0.1".to_string()),
            ("db/reader-endpoint", "127.0.0.1".to_string()),
            ("db/port", p.pg.port.to_string()),
            ("db/ca-bundle-path", p.pg.ca.display().to_string()),
            // What tapctl writes (params.rs), set here too so the test states what process reads.
            ("db/process-login", LOGIN.to_string()),
            ("resources/migrator-function", MIGRATOR.to_string()),
        ] {
            p.put_param(name, &value);
        }
        if schema {
            p.acct.block_on(async {
                let client = db::connect(&p.endpoint(), &creds, &db::tls(&p.pg.ca).unwrap()).await.unwrap();
                db::migrate(&client).await.unwrap();
                // Let the connection's task run to its end, so the server sees it closed.
                drop(client);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            });
            p.seed();
        }
        p
    }

    /// The test merchants and customers (the schema must exist).
    pub fn seed(&self) {
        self.pg.psql(
            "payments",
            "INSERT INTO merchants (merchant_id, name, status) VALUES
               ('m-1', 'Corner Shop', 'active'), ('m-2', 'Second Shop', 'active'),
               ('m-suspended', 'Closed Shop', 'suspended');
             INSERT INTO customers (customer_id, merchant_id, status) VALUES
               ('c-1', 'm-1', 'active'), ('c-blocked', 'm-1', 'blocked');",
        );
    }

    pub fn put_param(&self, name: &str, value: &str) {
        self.acct.block_on(async {
            self.acct
                .ssm
                .put_parameter()
                .name(format!("/payments/qa/{name}"))
                .value(value)
                .overwrite(true)
                .send()
                .await
                .unwrap();
        });
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint { host: "127.0.0.1".into(), port: self.pg.port, dbname: "payments".into() }
    }

    pub fn secret_string(&self, id: &str) -> String {
        self.acct.block_on(async {
            let v = self.acct.secrets.get_secret_value().secret_id(id).send().await.unwrap();
            v.secret_string().unwrap().to_string()
        })
    }

    /// The master credentials as Secrets Manager holds them (AWSCURRENT).
    pub fn master(&self) -> Credentials {
        Credentials::from_secret(&SecretValue::new(self.secret_string("payments/qa/db-master"))).unwrap()
    }

    /// Containers of a function. process's Lambda client goes to the fake Invoke endpoint of the
    /// migrator (its other clients to the emulator), and it is invoked through its blue alias.
    pub fn start(&self, function: &str, containers: usize) -> Function {
        let mut env =
            vec![("PAYMENTS_CONFIG_PREFIX", "/payments/qa"), ("AWS_ENDPOINT_URL", self.acct.proxy.url.as_str())];
        if function == "process" {
            env.push(("AWS_ENDPOINT_URL_LAMBDA", self.migrator().url.as_str()));
        }
        let f = Function::start(function, containers, &env);
        if function == "process" {
            f.set_invoked_arn(PROCESS_BLUE);
        }
        f
    }

    /// The fake Invoke endpoint running the rotate-secret binary as the migrator.
    pub fn migrator(&self) -> &InvokeEndpoint {
        self.migrator.get_or_init(|| InvokeEndpoint::start(MIGRATOR, self.start("rotate-secret", 1)))
    }

    /// Every item of the transactions table.
    pub fn items(&self) -> Vec<HashMap<String, AttributeValue>> {
        self.acct.block_on(async {
            let mut out = Vec::new();
            let mut pages = self.acct.dynamodb.scan().table_name(TABLE).into_paginator().send();
            while let Some(p) = pages.next().await {
                out.extend(p.unwrap().items().to_vec());
            }
            out
        })
    }

    pub fn item(&self, transaction_id: &str) -> HashMap<String, AttributeValue> {
        self.items()
            .into_iter()
            .find(|i| i.get("transaction_id").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(transaction_id))
            .unwrap_or_else(|| panic!("no record of {transaction_id}"))
    }

    /// Every audit object: key -> body.
    pub fn audit_objects(&self) -> Vec<(String, String)> {
        self.acct.block_on(async {
            let mut out = Vec::new();
            let mut pages = self.acct.s3.list_objects_v2().bucket(BUCKET).into_paginator().send();
            while let Some(p) = pages.next().await {
                for o in p.unwrap().contents() {
                    let key = o.key().unwrap().to_string();
                    let body = self.acct.s3.get_object().bucket(BUCKET).key(&key).send().await.unwrap();
                    let bytes = body.body.collect().await.unwrap().into_bytes();
                    out.push((key, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
            out
        })
    }

    /// Who the database says inserted a ledger transaction (migration 3's `recorded_by`).
    pub fn recorded_by(&self, transaction_id: &str) -> String {
        self.pg.psql(
            "payments",
            &format!("SELECT recorded_by FROM ledger_transactions WHERE transaction_id = '{transaction_id}'"),
        )
    }

    pub fn schema_versions(&self) -> String {
        self.pg.psql("payments", "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
    }

    /// Every table of the schema with its owner.
    pub fn owners(&self) -> String {
        self.pg.psql(
            "payments",
            "SELECT string_agg(tablename || ':' || tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
        )
    }

    pub fn ledger_entries(&self, transaction_id: &str) -> String {
        self.pg.psql(
            "payments",
            &format!(
                "SELECT string_agg(direction || ' ' || account || ' ' || amount_minor, ', ' ORDER BY direction)
                   FROM ledger_entries WHERE transaction_id = '{transaction_id}'"
            ),
        )
    }
}

fn s<'a>(item: &'a HashMap<String, AttributeValue>, k: &str) -> &'a str {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("")
}

/// A random card number of a brand's prefix and length with a valid check digit.
pub fn random_card(rng: &mut impl Rng, prefix: &str, len: usize) -> String {
    let mut digits: Vec<u32> = prefix.chars().map(|c| c.to_digit(10).unwrap()).collect();
    while digits.len() < len - 1 {
        digits.push(rng.random_range(0..10));
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| char::from_digit(*d, 10).unwrap()).collect()
}

#[test]
fn validate_answers_valid_and_invalid_requests_through_the_runtime_api() {
    let p = Payments::new(false);
    let f = p.start("validate", 1);
    let (code, v) = f.post("validate", &payment("m-1", 2500, card("4242 4242 4242 4242", "123")), &[]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["valid"].as_bool(), v["brand"].as_str(), v["last4"].as_str()),
        (Some(true), Some("visa"), Some("4242"))
    );
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(v["errors"], json!([]));

    let (_, v) = f.post("validate", &payment("m-1", 2500, card("4242424242424241", "123")), &[]);
    assert_eq!((v["valid"].as_bool(), v["errors"][0]["code"].as_str()), (Some(false), Some("luhn_failed")));
    let expired = json!({ "number": "5555555555554444", "exp_month": 1, "exp_year": 2020, "cvv": "123" });
    let (_, v) = f.post("validate", &payment("m-1", 2500, expired), &[]);
    assert_eq!(v["errors"][0]["code"], "expired");
    let (_, v) = f.post("validate", &payment("m-1", 2500, card("378282246310005", "123")), &[]);
    assert_eq!((v["brand"].as_str(), v["errors"][0]["code"].as_str()), (Some("amex"), Some("invalid_cvv")));
    let (_, v) = f.post("validate", &payment("m-1", 99_000_000, card("4242424242424242", "123")), &[]);
    assert_eq!(v["errors"][0]["code"], "amount_over_limit");

    let (code, v) = f.post("validate", "{\"merchant_id\": ", &[]);
    assert_eq!((code, v["error"]["code"].as_str()), (400, Some("invalid_request")));
    let wrong = r#"{"merchant_id":"m-1","amount":"12.50","currency":"USD","card":{"number":"4242424242424242","exp_month":12,"exp_year":2031,"cvv":"123"}}"#;
    let (code, v) = f.post("validate", wrong, &[]);
    assert_eq!((code, v["error"]["details"][0]["field"].as_str()), (400, Some("amount")));
    assert!(!v.to_string().contains("4242424242424242"));
    assert!(!f.output().contains("4242424242424242"), "the number reached the function's output");
}

#[test]
fn fraud_check_decides_with_thresholds_from_parameter_store_and_velocity_from_the_table() {
    let p = Payments::new(false);
    let f = p.start("fraud-check", 1);
    let visa = || card("4000056655665556", "123");
    let (code, a) = f.post("fraud-check", &payment("m-1", 2500, visa()), &[]);
    assert_eq!((code, a["decision"].as_str(), a["score"].as_u64()), (200, Some("approve"), Some(0)), "{a}");
    let (_, a) = f.post("fraud-check", &payment("m-1", 150_000, visa()), &[]);
    assert_eq!(
        (a["decision"].as_str(), a["reasons"][0].as_str()),
        (Some("review"), Some("amount_over_review_threshold"))
    );
    let (_, a) = f.post("fraud-check", &payment("m-1", 600_000, visa()), &[]);
    assert_eq!(a["decision"], "decline");

    // Ten earlier transactions of this card in the table's by-card index: velocity.
    let v = p.start("validate", 1);
    let (_, fp) = v.post("validate", &payment("m-1", 2500, visa()), &[]);
    let fingerprint = fp["fingerprint"].as_str().unwrap().to_string();
    p.acct.block_on(async {
        let now = chrono::Utc::now();
        for i in 0..10 {
            let at = (now - chrono::Duration::minutes(i + 1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let item = HashMap::from([
                ("pk".to_string(), AttributeValue::S(format!("TXN#txn_old{i}"))),
                ("sk".to_string(), AttributeValue::S("TXN".into())),
                ("transaction_id".to_string(), AttributeValue::S(format!("txn_old{i}"))),
                ("card_fingerprint".to_string(), AttributeValue::S(fingerprint.clone())),
                ("created_at".to_string(), AttributeValue::S(at)),
                ("amount".to_string(), AttributeValue::N("1000".into())),
            ]);
            p.acct.dynamodb.put_item().table_name(TABLE).set_item(Some(item)).send().await.unwrap();
        }
    });
    let (_, a) = f.post("fraud-check", &payment("m-1", 2500, visa()), &[]);
    assert_eq!((a["decision"].as_str(), a["reasons"][0].as_str()), (Some("review"), Some("velocity_count_exceeded")));

    // Thresholds and the BIN table come from Parameter Store (a new container reads them).
    p.put_param("fraud/velocity-max-count", "50");
    p.put_param("fraud/blocked-bins", "[\"510510\"]");
    p.put_param("fraud/bin-countries", "{\"400005\": \"GB\"}");
    let fresh = p.start("fraud-check", 1);
    let mut body: Value = serde_json::from_str(&payment("m-1", 2500, visa())).unwrap();
    body["ip_country"] = json!("US");
    let (_, a) = fresh.post("fraud-check", &body.to_string(), &[]);
    assert_eq!(a["reasons"], json!(["ip_country_mismatch"]), "{a}");
    let (_, a) = fresh.post("fraud-check", &payment("m-1", 2500, card("5105105105105100", "123")), &[]);
    assert_eq!((a["decision"].as_str(), a["reasons"][0].as_str()), (Some("decline"), Some("blocked_bin")));
}

fn process_post(f: &Function, key: &str, body: &str) -> (u16, Value) {
    f.post("process", body, &[("Idempotency-Key", key)])
}

#[test]
fn process_approves_reviews_and_declines_recording_each_where_it_belongs() {
    let p = Payments::new(true);
    let f = p.start("process", 1);
    let visa = || card("4242424242424242", "123");

    let (code, r) = process_post(&f, "order-1", &payment("m-1", 2500, visa()));
    assert_eq!(code, 201, "{r}");
    assert_eq!((r["status"].as_str(), r["decision"].as_str()), (Some("approved"), Some("approve")));
    assert_eq!(r["card"], json!({ "brand": "visa", "last4": "4242" }));
    let txn = r["transaction_id"].as_str().unwrap().to_string();
    let item = p.item(&txn);
    assert_eq!((s(&item, "status"), s(&item, "merchant_id"), s(&item, "card_last4")), ("approved", "m-1", "4242"));
    assert_eq!(p.ledger_entries(&txn), "credit merchant_payable:m-1 2500, debit card_settlement:USD 2500");
    // Written under process's own login, as the database saw it; its connections are that login's.
    assert_eq!(p.recorded_by(&txn), LOGIN);
    assert_eq!(
        p.pg.psql(
            "postgres",
            "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE application_name = 'payments'"
        ),
        LOGIN
    );
    assert_eq!(p.migrator().invocations(), vec![], "the schema was current: no migration asked for");
    let audits = p.audit_objects();
    let (key, event) = audits.iter().find(|(k, _)| k.ends_with(&format!("/{txn}.json"))).expect("audit event");
    assert!(key.starts_with("audit/transactions/year="), "{key}");
    let event: Value = serde_json::from_str(event).unwrap();
    assert_eq!((event["status"].as_str(), event["card_last4"].as_str()), (Some("approved"), Some("4242")));

    // Replays: the original response with 200, nothing recorded again; another body: 409.
    let (code, again) = process_post(&f, "order-1", &payment("m-1", 2500, visa()));
    assert_eq!((code, &again), (200, &r));
    assert_eq!(p.audit_objects().len(), 1);
    assert_eq!(p.pg.psql("payments", "SELECT count(*) FROM ledger_entries"), "2");
    let (code, conflict) = process_post(&f, "order-1", &payment("m-1", 2600, visa()));
    assert_eq!((code, conflict["error"]["code"].as_str()), (409, Some("idempotency_key_reused")));

    let (code, r) = process_post(&f, "order-2", &payment("m-1", 150_000, visa()));
    assert_eq!((code, r["status"].as_str()), (201, Some("review")));
    assert_eq!(p.ledger_entries(r["transaction_id"].as_str().unwrap()), "", "a payment under review is not booked");
    let (_, r) = process_post(&f, "order-3", &payment("m-1", 600_000, visa()));
    assert_eq!(
        (r["status"].as_str(), r["reasons"][0].as_str()),
        (Some("declined"), Some("amount_over_decline_threshold"))
    );
    let (_, r) = process_post(&f, "order-4", &payment("m-1", 2500, card("4242424242424241", "123")));
    assert_eq!((r["status"].as_str(), r["errors"][0]["code"].as_str()), (Some("declined"), Some("luhn_failed")));
    assert_eq!(s(&p.item(r["transaction_id"].as_str().unwrap()), "status"), "declined");

    // Parties: unknown merchant 404, suspended merchant and blocked customer 403.
    let (code, r) = process_post(&f, "order-5", &payment("m-nobody", 2500, visa()));
    assert_eq!((code, r["error"]["code"].as_str()), (404, Some("unknown_merchant")));
    let (code, _) = process_post(&f, "order-6", &payment("m-suspended", 2500, visa()));
    assert_eq!(code, 403);
    let mut blocked: Value = serde_json::from_str(&payment("m-1", 2500, visa())).unwrap();
    blocked["customer_id"] = json!("c-blocked");
    let (code, r) = process_post(&f, "order-7", &blocked.to_string());
    assert_eq!((code, r["error"]["code"].as_str()), (403, Some("customer_blocked")));
    let (code, _) = process_post(&f, "order-7", &blocked.to_string());
    assert_eq!(code, 403, "a refusal is replayed as it was");

    // The header is required; a broken body is a 400 that repeats nothing.
    let (code, r) = f.post("process", &payment("m-1", 2500, visa()), &[]);
    assert_eq!((code, r["error"]["details"][0]["code"].as_str()), (400, Some("missing_idempotency_key")));
    let (code, _) = process_post(&f, "order-8", "[1, 2");
    assert_eq!(code, 400);
    assert_eq!(p.pg.psql("payments", "SELECT count(*) FROM ledger_transactions"), "1");
}

/// The ledger pair exactly as process writes it (functions/process: record_in_ledger), with values.
fn ledger_pair(txn: &str, merchant: &str, amount: i64) -> String {
    format!(
        "WITH t AS (
            INSERT INTO ledger_transactions (transaction_id, merchant_id, amount_minor, currency)
            VALUES ('{txn}', '{merchant}', {amount}, 'USD') ON CONFLICT (transaction_id) DO NOTHING RETURNING transaction_id)
         INSERT INTO ledger_entries (transaction_id, account, direction, amount_minor, currency)
         SELECT t.transaction_id, e.account, e.direction, {amount}, 'USD'
           FROM t, (VALUES ('card_settlement:USD', 'debit'), ('merchant_payable:{merchant}', 'credit')) AS e(account, direction)"
    )
}

#[test]
fn process_has_a_fresh_database_migrated_by_its_own_colours_migrator_then_works_under_its_login() {
    let p = Payments::new(false);
    let f = p.start("process", 1);
    let (endpoint, master) = (p.endpoint(), p.master());
    let (code, r) = process_post(&f, "k-1", &payment("m-1", 2500, card("4242424242424242", "123")));
    assert_eq!((code, r["error"]["code"].as_str()), (404, Some("unknown_merchant")), "{r}");
    assert_eq!(p.schema_versions(), "1,2,3");
    // Its login was refused (it did not exist yet): process asked the migrator of its own colour,
    // once, synchronously, and then signed in as its login.
    assert_eq!(
        p.migrator().invocations(),
        vec![super::lambda::Invocation {
            function: MIGRATOR.into(),
            qualifier: Some("blue".into()),
            payload: json!({ "action": "migrate" })
        }]
    );
    assert_eq!(
        p.pg.psql(
            "postgres",
            "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE usename = 'payments_process'"
        ),
        LOGIN
    );
    let owner = "payments_migrator";
    assert_eq!(
        p.owners(),
        format!("customers:{owner},ledger_entries:{owner},ledger_transactions:{owner},merchants:{owner},schema_migrations:{owner}")
    );
    p.pg.psql("payments", "INSERT INTO merchants (merchant_id, name) VALUES ('m-1', 'Corner Shop')");
    let (code, r) = process_post(&f, "k-2", &payment("m-1", 2500, card("4242424242424242", "123")));
    assert_eq!((code, r["status"].as_str()), (201, Some("approved")), "{r}");
    assert_eq!(p.recorded_by(r["transaction_id"].as_str().unwrap()), LOGIN);
    // A new container finds the schema current: it asks nobody.
    let second = p.start("process", 1);
    let (code, _) = process_post(&second, "k-3", &payment("m-1", 2600, card("4242424242424242", "123")));
    assert_eq!(code, 201);
    assert_eq!(p.migrator().invocations().len(), 1);

    // Concurrent migrators (the master under the advisory lock) apply nothing twice; an
    // unbalanced ledger write cannot commit.
    p.acct.block_on(async {
        let tls = db::tls(&p.pg.ca).unwrap();
        let clients = futures::future::join_all((0..4).map(|_| db::connect(&endpoint, &master, &tls))).await;
        let clients: Vec<_> = clients.into_iter().map(Result::unwrap).collect();
        let applied = futures::future::join_all(clients.iter().map(db::migrate)).await;
        assert!(applied.into_iter().all(|a| a.unwrap().is_empty()));
    });
    p.pg.psql("payments", "INSERT INTO merchants (merchant_id, name) VALUES ('m-x', 'x')");
    let half = p.pg.psql(
        "payments",
        "DO $$ BEGIN
           INSERT INTO ledger_transactions (transaction_id, merchant_id, amount_minor, currency) VALUES ('t-1', 'm-x', 5, 'USD');
           INSERT INTO ledger_entries (transaction_id, account, direction, amount_minor, currency)
             VALUES ('t-1', 'a', 'debit', 5, 'USD');
           SET CONSTRAINTS ALL IMMEDIATE;
         EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'refused'; END $$;
         SELECT count(*) FROM ledger_entries WHERE transaction_id = 't-1'",
    );
    assert_eq!(half, "0");
}

/// A stack made before the logins: its database was migrated to version 2 by the old flow (old
/// process code, as the master, with the migrations it embedded). New process code moves it to 3
/// through the migrator and works under its login, while the old code — still running as the
/// master in the other colour during the shift — keeps running every statement it ran.
#[test]
fn a_database_of_the_old_flow_moves_to_the_logins_while_old_code_as_the_master_keeps_working() {
    let p = Payments::new(false);
    let (endpoint, master) = (p.endpoint(), p.master());
    let tls = db::tls(&p.pg.ca).unwrap();
    let old = p.acct.block_on(async {
        let old = db::connect(&endpoint, &master, &tls).await.unwrap();
        assert_eq!(db::apply(&old, &payments_core::migrations::MIGRATIONS[..2]).await.unwrap(), vec![1, 2]);
        old
    });
    p.pg.psql("payments", "INSERT INTO merchants (merchant_id, name) VALUES ('m-1', 'Corner Shop')");
    let old_statements = |client: &tokio_postgres::Client, txn: &str| {
        p.acct.block_on(async {
            let status = client.query_one("SELECT status FROM merchants WHERE merchant_id = $1", &[&"m-1"]).await;
            assert_eq!(status.unwrap().get::<_, String>(0), "active");
            client.batch_execute(&ledger_pair(txn, "m-1", 900)).await.unwrap();
            // The old code's own first-use migration: nothing it knows is missing.
            assert_eq!(
                db::apply(client, &payments_core::migrations::MIGRATIONS[..2]).await.unwrap(),
                Vec::<i32>::new()
            );
        })
    };
    old_statements(&old, "txn-old-before");
    assert_eq!(p.schema_versions(), "1,2");

    let f = p.start("process", 1);
    let (code, r) = process_post(&f, "k-new", &payment("m-1", 2500, card("4242424242424242", "123")));
    assert_eq!((code, r["status"].as_str()), (201, Some("approved")), "{r}");
    assert_eq!(p.schema_versions(), "1,2,3");
    assert_eq!(p.migrator().invocations().len(), 1, "the schema was behind: one migration asked for");
    let new_txn = r["transaction_id"].as_str().unwrap();
    assert_eq!(p.recorded_by(new_txn), LOGIN);
    assert_eq!(p.ledger_entries(new_txn), "credit merchant_payable:m-1 2500, debit card_settlement:USD 2500");

    // The old code's connection, open across the migration, and a new one it opens afterwards.
    old_statements(&old, "txn-old-during");
    let reopened = p.acct.block_on(async { db::connect(&endpoint, &master, &tls).await.unwrap() });
    old_statements(&reopened, "txn-old-after");
    for txn in ["txn-old-before", "txn-old-during", "txn-old-after"] {
        assert_eq!(p.recorded_by(txn), master.username, "{txn}");
        assert_eq!(p.ledger_entries(txn), "credit merchant_payable:m-1 900, debit card_settlement:USD 900");
    }
}

#[test]
fn process_answers_a_clear_503_when_the_migrator_cannot_be_asked_and_works_once_it_can() {
    let p = Payments::new(false);
    p.put_param("resources/migrator-function", "payment-nothing-qa");
    let f = p.start("process", 1);
    let (code, r) = process_post(&f, "k-1", &payment("m-1", 2500, card("4242424242424242", "123")));
    assert_eq!((code, r["error"]["code"].as_str()), (503, Some("service_unavailable")), "{r}");
    let text = r.to_string();
    assert!(!text.contains("SQLSTATE") && !text.contains("lambda") && !text.contains(&p.master().password), "{r}");
    assert!(f.output().contains("lambda:Invoke failed: ResourceNotFoundException"), "{}", f.output());
    assert_eq!(p.pg.psql("payments", "SELECT to_regclass('schema_migrations') IS NULL"), "t", "nothing was migrated");

    // The parameter repaired, a new container (configuration is cached per container) migrates.
    p.put_param("resources/migrator-function", MIGRATOR);
    let g = p.start("process", 1);
    let (code, r) = process_post(&g, "k-1", &payment("m-1", 2500, card("4242424242424242", "123")));
    assert_eq!((code, r["error"]["code"].as_str()), (404, Some("unknown_merchant")), "{r}");
    assert_eq!(p.schema_versions(), "1,2,3");
}

/// The expected outcome of a statement: allowed, or refused with this SQLSTATE.
type Expect = Result<(), &'static str>;
const ALLOWED: Expect = Ok(());
/// insufficient_privilege
const DENIED: Expect = Err("42501");

/// Runs each statement on its own (autocommit) and lists every one whose outcome differs.
async fn mismatches(client: &tokio_postgres::Client, who: &str, table: &[(String, Expect)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (sql, expected) in table {
        let got = match client.batch_execute(sql).await {
            Ok(()) => Ok(()),
            Err(e) => Err(e.code().map(|c| c.code().to_string()).unwrap_or_else(|| format!("no SQLSTATE: {e}"))),
        };
        if got.as_ref().map(|_| ()).map_err(String::as_str) != *expected {
            wrong.push(format!("{who}: {sql:?}: expected {expected:?}, the server answered {got:?}"));
        }
    }
    wrong
}

#[test]
fn each_login_may_run_exactly_the_statements_its_table_allows() {
    let p = Payments::new(true);
    let (endpoint, master) = (p.endpoint(), p.master());
    let sql = |s: &str| s.to_string();
    let process: Vec<(String, Expect)> = vec![
        // What process's code runs.
        (sql("SELECT status FROM merchants WHERE merchant_id = 'm-1'"), ALLOWED),
        (sql("SELECT status FROM customers WHERE customer_id = 'c-1' AND merchant_id = 'm-1'"), ALLOWED),
        (ledger_pair("txn-table-1", "m-1", 700), ALLOWED),
        (ledger_pair("txn-table-1", "m-1", 700), ALLOWED), // a retry inserts nothing
        (sql("SELECT coalesce(max(version), 0) FROM schema_migrations"), ALLOWED),
        // Nothing more: no other column, no change of the ledger, no DDL, no catalogue secrets.
        (sql("SELECT name FROM merchants"), DENIED),
        (sql("SELECT * FROM ledger_entries"), DENIED),
        (sql("SELECT amount_minor FROM ledger_transactions"), DENIED),
        (sql("INSERT INTO merchants (merchant_id, name) VALUES ('m-evil', 'x')"), DENIED),
        (sql("UPDATE merchants SET status = 'active'"), DENIED),
        (
            sql("INSERT INTO ledger_transactions (transaction_id, merchant_id, amount_minor, currency, recorded_by)
                 VALUES ('txn-forged', 'm-1', 1, 'USD', 'payments_migrator')"),
            DENIED,
        ),
        (sql("UPDATE ledger_entries SET amount_minor = 1"), DENIED),
        (sql("UPDATE ledger_transactions SET amount_minor = 1"), DENIED),
        (sql("DELETE FROM ledger_entries"), DENIED),
        (sql("DELETE FROM ledger_transactions"), DENIED),
        (sql("TRUNCATE ledger_entries"), DENIED),
        (sql("TRUNCATE ledger_transactions CASCADE"), DENIED),
        (sql("DROP TABLE ledger_entries"), DENIED),
        (sql("DROP TABLE ledger_transactions CASCADE"), DENIED),
        (sql("ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only"), DENIED),
        (sql("ALTER TABLE ledger_transactions ADD COLUMN note text"), DENIED),
        (sql("CREATE TABLE skim (pan text)"), DENIED),
        (sql("CREATE TEMP TABLE skim (pan text)"), DENIED),
        (sql("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'"), DENIED),
        (sql("CREATE ROLE intruder LOGIN"), DENIED),
        (sql("SET ROLE payments_migrator"), DENIED),
        (sql("SELECT rolname, rolpassword FROM pg_authid"), DENIED),
        (sql("DELETE FROM schema_migrations"), DENIED),
        (sql("INSERT INTO schema_migrations (version, name, checksum) VALUES (99, 'x', 'x')"), DENIED),
    ];
    let migrator: Vec<(String, Expect)> = vec![
        // The owner role, taken by the master as the migrator does: DDL on the schema.
        (sql("SET ROLE payments_migrator"), ALLOWED),
        (sql("CREATE TABLE drill (id int PRIMARY KEY)"), ALLOWED),
        (sql("ALTER TABLE drill ADD COLUMN note text"), ALLOWED),
        (sql("CREATE INDEX drill_note ON drill (note)"), ALLOWED),
        (sql("ALTER TABLE ledger_transactions ADD COLUMN IF NOT EXISTS recorded_by text"), ALLOWED),
        (sql("DROP TABLE drill"), ALLOWED),
        // …but it makes no logins and reads no password hashes.
        (sql("CREATE ROLE intruder LOGIN"), DENIED),
        (sql("SELECT rolname, rolpassword FROM pg_authid"), DENIED),
        (sql("RESET ROLE"), ALLOWED),
        // The master itself: old code's statements still run; the ledger stays append-only
        // (its trigger raises: P0001) even for it.
        (sql("SELECT status FROM merchants WHERE merchant_id = 'm-1'"), ALLOWED),
        (ledger_pair("txn-table-master", "m-1", 800), ALLOWED),
        (sql("UPDATE ledger_entries SET amount_minor = 1"), Err("P0001")),
        (sql("DELETE FROM ledger_transactions"), Err("P0001")),
    ];
    let wrong = p.acct.block_on(async {
        let tls = db::tls(&p.pg.ca).unwrap();
        // Any token: the harness does not verify it (postgres.rs).
        let login = Credentials { username: LOGIN.into(), password: "an-iam-token".into() };
        let as_process = db::connect(&endpoint, &login, &tls).await.unwrap();
        let as_master = db::connect(&endpoint, &master, &tls).await.unwrap();
        let mut wrong = mismatches(&as_process, LOGIN, &process).await;
        wrong.extend(mismatches(&as_master, "payments_migrator (SET ROLE by the master)", &migrator).await);
        // Nobody signs in as the owner role.
        let owner = Credentials { username: "payments_migrator".into(), password: master.password.clone() };
        match db::connect(&endpoint, &owner, &tls).await {
            Err(e) if db::is_auth_failure(&e) => {}
            Err(e) => wrong.push(format!("signing in as payments_migrator: {e}")),
            Ok(_) => wrong.push("payments_migrator signed in".into()),
        }
        wrong
    });
    assert!(wrong.is_empty(), "{} statements had another outcome:\n{}", wrong.len(), wrong.join("\n"));
    // The allowed writes are there, each recorded as its writer; the refused ones changed nothing.
    assert_eq!(p.recorded_by("txn-table-1"), LOGIN);
    assert_eq!(p.recorded_by("txn-table-master"), master.username);
    assert_eq!(p.ledger_entries("txn-table-1"), "credit merchant_payable:m-1 700, debit card_settlement:USD 700");
    assert_eq!(p.pg.psql("payments", "SELECT count(*) FROM ledger_entries"), "4");
    assert_eq!(p.pg.psql("payments", "SELECT count(*) FROM merchants WHERE merchant_id = 'm-evil'"), "0");
    assert_eq!(p.schema_versions(), "1,2,3");
}

#[test]
fn the_database_refuses_connections_without_tls_and_with_an_untrusted_ca() {
    let p = Payments::new(false);
    let (creds, endpoint) = (p.master(), p.endpoint());
    p.acct.block_on(async {
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(p.pg.port).dbname("payments").user(&creds.username).password(&creds.password);
        let plain = config.connect(tokio_postgres::NoTls).await;
        assert!(plain.is_err(), "a plaintext connection was accepted");
        // A CA bundle that did not sign the server's certificate: the TLS handshake fails.
        let other = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("openssl")
            .current_dir(other.path())
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-keyout", "k.pem", "-out", "ca.pem", "-days", "1", "-subj", "/CN=someone else"])
            .output()
            .unwrap();
        assert!(status.status.success());
        let wrong = db::tls(&other.path().join("ca.pem")).unwrap();
        assert!(db::connect(&endpoint, &creds, &wrong).await.is_err());
        let right = db::tls(&p.pg.ca).unwrap();
        let c = db::connect(&endpoint, &creds, &right).await.unwrap();
        let row = c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
        assert!(row.get::<_, bool>(0), "the verified connection is encrypted");
    });
}

#[test]
fn fifty_concurrent_requests_with_one_key_record_one_transaction_and_one_ledger_pair() {
    let p = Payments::new(true);
    let f = p.start("process", 10);
    let body = payment("m-1", 4200, card("5555555555554444", "321"));
    let outcomes: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50).map(|_| scope.spawn(|| process_post(&f, "same-key", &body))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = outcomes.iter().filter(|(c, _)| *c == 201).count();
    assert_eq!(created, 1, "{:?}", outcomes.iter().map(|o| o.0).collect::<Vec<_>>());
    let txn = outcomes.iter().find(|(c, _)| *c == 201).unwrap().1["transaction_id"].as_str().unwrap().to_string();
    for (code, r) in &outcomes {
        match code {
            201 | 200 => assert_eq!(r["transaction_id"].as_str(), Some(txn.as_str())),
            409 => assert_eq!(r["error"]["code"], "request_in_progress"),
            other => panic!("unexpected {other}: {r}"),
        }
    }
    let records = p.items().into_iter().filter(|i| s(i, "merchant_id") == "m-1").count();
    assert_eq!(records, 1);
    assert_eq!(p.ledger_entries(&txn), "credit merchant_payable:m-1 4200, debit card_settlement:USD 4200");
    assert_eq!(p.pg.psql("payments", "SELECT count(*) FROM ledger_entries"), "2");
    assert_eq!(p.audit_objects().len(), 1);
}

#[test]
fn a_database_outage_fails_the_payment_alerts_and_the_retry_with_the_same_key_completes() {
    let p = Payments::new(true);
    let sqs = aws_sdk_sqs::Client::new(&p.acct.via_proxy());
    let queue_url = p.acct.block_on(async {
        let q = sqs.create_queue().queue_name("alerts-reader").send().await.unwrap();
        let url = q.queue_url().unwrap().to_string();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn = attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        let topic = p.acct.sns.list_topics().send().await.unwrap().topics()[0].topic_arn().unwrap().to_string();
        p.acct.sns.subscribe().topic_arn(topic).protocol("sqs").endpoint(arn).send().await.unwrap();
        url
    });
    let f = p.start("process", 1);
    let visa = || card("4111111111111111", "737");
    let (code, _) = process_post(&f, "warm", &payment("m-1", 1500, visa()));
    assert_eq!(code, 201, "the container holds open connections now");

    p.pg.stop_server();
    let (code, r) = process_post(&f, "during-outage", &payment("m-2", 1800, visa()));
    assert_eq!((code, r["error"]["code"].as_str()), (503, Some("service_unavailable")), "{r}");
    assert!(r["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(!r.to_string().contains("SQLSTATE") && !r.to_string().contains("connection"), "no internal detail: {r}");
    let failed: Vec<_> = p.items().into_iter().filter(|i| s(i, "merchant_id") == "m-2").collect();
    assert_eq!((failed.len(), s(&failed[0], "status")), (1, "failed"));
    let txn = s(&failed[0], "transaction_id").to_string();
    let messages = p.acct.block_on(async {
        let out = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
        out.messages().iter().map(|m| m.body().unwrap_or_default().to_string()).collect::<Vec<_>>()
    });
    assert!(messages.iter().any(|m| m.contains(&txn) && m.contains("failed")), "{messages:?}");
    assert!(messages.iter().all(|m| !m.contains("4111111111111111")));

    p.pg.start_server();
    let (code, r) = process_post(&f, "during-outage", &payment("m-2", 1800, visa()));
    assert_eq!((code, r["status"].as_str(), r["transaction_id"].as_str()), (201, Some("approved"), Some(txn.as_str())));
    assert_eq!(s(&p.item(&txn), "status"), "approved");
    assert_eq!(p.ledger_entries(&txn), "credit merchant_payable:m-2 1800, debit card_settlement:USD 1800");
}

#[test]
fn a_thousand_random_cards_leave_no_number_or_cvv_in_outputs_records_objects_or_responses() {
    let p = Payments::new(true);
    let process = p.start("process", 4);
    let validate = p.start("validate", 1);
    let fraud = p.start("fraud-check", 1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261125);
    let brands =
        [("4", 16, 3), ("51", 16, 3), ("2221", 16, 3), ("34", 15, 4), ("37", 15, 4), ("6011", 16, 3), ("3528", 16, 3)];
    let requests: Vec<(String, String, String)> = (0..1000)
        .map(|i| {
            let (prefix, len, cvv_len) = brands[i % brands.len()];
            let number = random_card(&mut rng, prefix, len);
            let cvv: String = (0..cvv_len).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect();
            let body = payment("m-1", rng.random_range(100..90_000), card(&number, &cvv));
            (number, cvv, body)
        })
        .collect();
    let responses: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<_> = requests
            .chunks(250)
            .enumerate()
            .map(|(c, chunk)| {
                let (process, validate, fraud) = (&process, &validate, &fraud);
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for (i, (_, _, body)) in chunk.iter().enumerate() {
                        let (code, r) = process_post(process, &format!("leak-{c}-{i}"), body);
                        assert_eq!(code, 201, "{r}");
                        out.push(r.to_string());
                        if i % 10 == 0 {
                            out.push(validate.post("validate", body, &[]).1.to_string());
                            out.push(fraud.post("fraud-check", body, &[]).1.to_string());
                        }
                    }
                    out
                })
            })
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let items = p.items();
    assert_eq!(items.len(), 1000);
    let objects = p.audit_objects();
    assert_eq!(objects.len(), 1000);
    let outputs = [process.output(), validate.output(), fraud.output()].join("\n");
    assert!(outputs.lines().count() > 1000, "the functions logged each request");

    // Card numbers: nowhere, as any substring.
    let item_text: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    let object_text: Vec<String> = objects.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let texts = [
        ("responses", responses.join("\n")),
        ("items", item_text.join("\n")),
        ("objects", object_text.join("\n")),
        ("output", outputs.clone()),
    ];
    let numbers: std::collections::HashSet<&str> = requests.iter().map(|(n, _, _)| n.as_str()).collect();
    for (name, text) in &texts {
        // A field named cvv, as JSON or as JSON inside a string (random ids can hold "cvv").
        let lower = text.to_lowercase();
        if let Some(at) = lower.find("\"cvv\"").or_else(|| lower.find("\\\"cvv\\\"")) {
            panic!("{name} name a CVV: …{}…", &text[at.saturating_sub(120)..(at + 40).min(text.len())]);
        }
        assert_eq!(card_number_within(text, &numbers), None, "{name} hold a card number");
    }
    // CVVs: three or four digits occur by chance inside ids, amounts and timestamps, so every
    // string value (JSON values, table attributes, log fields) is compared whole — except the
    // last four digits of the card, which can equal a four-digit CVV by chance.
    let cvvs: std::collections::HashSet<&str> = requests.iter().map(|(_, c, _)| c.as_str()).collect();
    let mut values: Vec<(String, String)> = Vec::new();
    for text in responses
        .iter()
        .chain(objects.iter().map(|(_, v)| v))
        .chain(outputs.lines().map(String::from).collect::<Vec<_>>().iter())
    {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            string_values("", &v, &mut values);
        }
    }
    for item in &items {
        for (k, v) in item {
            match v {
                AttributeValue::S(s) => values.push((k.clone(), s.clone())),
                AttributeValue::L(l) => {
                    values.extend(l.iter().filter_map(|x| x.as_s().ok()).map(|s| (k.clone(), s.clone())))
                }
                _ => {}
            }
        }
    }
    assert!(values.len() > 20_000, "{} values compared", values.len());
    let hits: Vec<_> = values.iter().filter(|(k, v)| !k.contains("last4") && cvvs.contains(v.as_str())).collect();
    assert!(hits.is_empty(), "CVVs found: {hits:?}");
}

/// The first of `numbers` (all digits) found anywhere in `text`, as any substring. A number can
/// only occur inside a run of digits, so each run is cut into windows of the numbers' lengths and
/// looked up: one pass over the text instead of one search per number (1,000 searches of
/// megabytes of text in an unoptimised test binary took a minute).
fn card_number_within<'a>(text: &str, numbers: &std::collections::HashSet<&'a str>) -> Option<&'a str> {
    let lengths: std::collections::BTreeSet<usize> = numbers.iter().map(|n| n.len()).collect();
    let shortest = lengths.first().copied().unwrap_or(usize::MAX);
    text.split(|c: char| !c.is_ascii_digit()).filter(|run| run.len() >= shortest).find_map(|run| {
        lengths.iter().find_map(|&len| {
            (0..=run.len().saturating_sub(len))
                .find_map(|at| run.get(at..at + len).and_then(|w| numbers.get(w)).copied())
        })
    })
}

#[test]
fn card_number_within_finds_a_number_anywhere_in_a_run_of_digits_and_nothing_else() {
    let numbers: std::collections::HashSet<&str> = ["4111111111111111", "371449635398431"].into();
    assert_eq!(card_number_within("id 4111111111111111.", &numbers), Some("4111111111111111"));
    assert_eq!(card_number_within("x99371449635398431000y", &numbers), Some("371449635398431"));
    assert_eq!(card_number_within("411111111111111 4111-1111-1111-1111 37144963539843", &numbers), None);
    assert_eq!(card_number_within("", &numbers), None);
}

fn string_values(key: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            out.push((key.to_string(), s.clone()));
            // Log lines can hold JSON inside a string field.
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                if inner.is_object() || inner.is_array() {
                    string_values(key, &inner, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| string_values(key, x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| string_values(k, x, out)),
        _ => {}
    }
}

#[test]
fn a_warm_container_reads_its_configuration_once_and_opens_no_database_connection_before_it_needs_one() {
    let p = Payments::new(true);
    let count = |action: &str| p.acct.proxy.calls().iter().filter(|c| c.0.ends_with(action)).count();
    let connections =
        || p.pg.psql("postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'payments'");

    p.acct.proxy.clear();
    let validate = p.start("validate", 1);
    let fraud = p.start("fraud-check", 1);
    let process = p.start("process", 1);
    let mut after_first = (0, 0);
    for i in 0..5 {
        let body = payment("m-1", 1000 + i, card("4242424242424242", "123"));
        assert_eq!(validate.post("validate", &body, &[]).0, 200);
        assert_eq!(fraud.post("fraud-check", &body, &[]).0, 200);
        if i == 0 {
            after_first = (count(":GetParametersByPath"), count(":GetSecretValue"));
        }
    }
    // Each container read its configuration on its first invocation (one paginated read of the
    // parameters, one secret) and not again.
    assert!(after_first.0 >= 2 && after_first.1 == 2, "{after_first:?}");
    assert_eq!((count(":GetParametersByPath"), count(":GetSecretValue")), after_first, "{:?}", p.acct.proxy.calls());
    assert_eq!(connections(), "0", "validate and fraud-check never touch the database");
    let (code, _) = process.post("process", "{", &[("Idempotency-Key", "k-0")]);
    assert_eq!((code, connections().as_str()), (400, "0"), "a refused request opens no connection");

    assert_eq!(process_post(&process, "k-1", &payment("m-1", 2500, card("4242424242424242", "123"))).0, 201);
    assert_eq!(process_post(&process, "k-2", &payment("m-1", 2600, card("4242424242424242", "123"))).0, 201);
    assert_eq!(connections(), "2", "one reader and one writer connection, kept warm");
    // process read one secret, the card-fingerprint key: it signs in to the database with an IAM
    // token it signs itself, never with the master secret.
    assert_eq!(count(":GetSecretValue"), after_first.1 + 1, "{:?}", p.acct.proxy.calls());
}

#[test]
fn every_function_refuses_what_it_cannot_take_with_a_clear_error() {
    let p = Payments::new(false);
    let fraud = p.start("fraud-check", 1);
    let (code, r) = fraud.post("fraud-check", r#"{"merchant_id":"m-1"}"#, &[]);
    assert_eq!((code, r["error"]["code"].as_str()), (400, Some("invalid_request")));
    assert_eq!(
        (r["error"]["details"][0]["field"].as_str(), r["error"]["details"][0]["problem"].as_str()),
        (Some("amount"), Some("missing_field"))
    );
    let rotate = p.start("rotate-secret", 1);
    let err = rotate
        .invoke(&json!({ "SecretId": "payments/qa/db-master", "ClientRequestToken": "t", "Step": "dropTables" }))
        .expect_err("an unknown step fails");
    assert!(err.to_string().contains("unknown rotation step"), "{err}");
    // Without its one variable a function fails its invocations with a clear configuration error.
    let bare = Function::start("validate", 1, &[("AWS_ENDPOINT_URL", &p.acct.proxy.url)]);
    let (code, r) = bare.post("validate", &payment("m-1", 100, card("4242424242424242", "123")), &[]);
    assert_eq!((code, r["error"]["code"].as_str()), (503, Some("service_unavailable")));
    assert!(bare.output().contains("PAYMENTS_CONFIG_PREFIX is not set"), "{}", bare.output());
}
