//! `tapctl local`: the stack's REST API served as API Gateway serves it, from what the emulated
//! account holds. Its refusals with API Gateway's statuses and bodies (unsigned, badly signed,
//! an invalid body under any Content-Type, a missing invoke permission), a payment request
//! answered by the real validate bootstrap of the version the alias names, and a `shift` seen
//! within seconds; and a release and a rollback under a steady stream of payments that lose and
//! double nothing (issue 17's zero-downtime run, a smaller stream).

use super::functions::{card, payment, random_card, Payments};
use super::harness::{execute_api_headers, packages_dir, released_packages, signed_headers, Account};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `tapctl local`, stopped when dropped.
struct Local {
    child: Child,
    address: String,
}

impl Drop for Local {
    fn drop(&mut self) {
        super::harness::stop(&mut self.child);
    }
}

fn start(acct: &Account) -> Local {
    start_with(acct, &[])
}

fn start_with(acct: &Account, extra: &[&str]) -> Local {
    let mut args = vec!["local", "--suffix", "qa", "--port", "0"];
    args.extend_from_slice(extra);
    let mut child = acct.tapctl(&args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("tapctl local");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the serving line");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Local { child, address }
}

/// One HTTP/1.1 request, with `Host: <address>` unless `headers` name one; (status, headers
/// lower-cased, body).
fn send(address: &str, path: &str, headers: &[(String, String)], body: &str) -> (u16, Vec<(String, String)>, Value) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let mut request = format!("POST {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("host: {address}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    // A refused body may be cut short by the server's answer: what it answered is the point.
    let _ = stream.write_all(request.as_bytes());
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, serde_json::from_str(body).unwrap_or(Value::String(body.to_string())))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The stage read an answer of the API was served from (`x-tapctl-stage-read`): here an unsigned
/// request's, which runs nothing.
fn stage_read(address: &str) -> u64 {
    let (_, h, _) = send(address, "/live/validate", &[], "{}");
    header(&h, "x-tapctl-stage-read").and_then(|r| r.parse().ok()).expect("x-tapctl-stage-read")
}

/// Returns once every answer comes from a stage read that began after this call: if the first
/// answer names read n, read n+1 may have begun before the call, read n+2 did not. The reads
/// are a second apart; the bound is a safety net for a server that stopped reading.
fn await_fresh_read(address: &str) {
    let first = stage_read(address);
    let stop = Instant::now() + Duration::from_secs(300);
    while stage_read(address) < first + 2 {
        assert!(Instant::now() < stop, "the stage was not read again in 300 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_local_api_refuses_as_api_gateway_and_serves_the_colour_the_stage_names() {
    let acct = Account::new();
    acct.ok(&["up", "--suffix", "qa"]);
    let local = start(&acct);
    let a = local.address.as_str();
    let body = payment("m-1", 2500, card("4242 4242 4242 4242", "123"));

    // Unsigned: API Gateway's answer to a request without IAM credentials.
    let (status, _, v) = send(a, "/live/validate", &[("content-type".into(), "application/json".into())], &body);
    assert_eq!((status, v["message"].as_str()), (403, Some("Missing Authentication Token")));
    // Signed with another secret.
    let bad = execute_api_headers(a, "/live/validate", "application/json", &body, "not-the-secret");
    let (status, _, v) = send(a, "/live/validate", &bad, &body);
    assert_eq!(status, 403);
    assert!(v["message"].as_str().unwrap().starts_with("The request signature we calculated does not match"), "{v}");
    // An invalid body under any Content-Type: the model is mapped for every type.
    for content_type in ["application/json", "text/plain"] {
        let invalid = r#"{"merchant_id": "m-1"}"#;
        let (status, _, v) = send(
            a,
            "/live/validate",
            &execute_api_headers(a, "/live/validate", content_type, invalid, "testing"),
            invalid,
        );
        assert_eq!((status, v["message"].as_str()), (400, Some("Invalid request body")), "{content_type}");
    }

    // A valid request: the real validate bootstrap of blue's version answers.
    let (status, h, v) = send(
        a,
        "/live/validate",
        &execute_api_headers(a, "/live/validate", "application/json", &body, "testing"),
        &body,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["valid"].as_bool(), v["last4"].as_str()), (Some(true), Some("4242")));
    assert_eq!(header(&h, "x-tapctl-colour"), Some("blue"));
    let blue_version = acct.block_on(async {
        let alias = acct.lambda.get_alias().function_name("payment-validate-qa").name("blue").send().await.unwrap();
        alias.function_version().unwrap().to_string()
    });
    assert_eq!(header(&h, "x-tapctl-version"), Some(blue_version.as_str()));

    // A shift is served from the first stage read that began after it, without racing a clock:
    // each answer names the read it was served from (x-tapctl-stage-read). Read n+1 may have
    // begun before the shift returned, when the first answer after it came from read n; read
    // n+2 began after. The reads are REFRESH (1 s) apart, so that is "within a second" of a
    // read, and every answer from read n+2 on must be green.
    acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--weight", "100"]);
    let validate = || {
        let (status, h, v) = send(
            a,
            "/live/validate",
            &execute_api_headers(a, "/live/validate", "application/json", &body, "testing"),
            &body,
        );
        assert_eq!(status, 200, "{v}");
        let read: u64 = header(&h, "x-tapctl-stage-read").and_then(|r| r.parse().ok()).expect("x-tapctl-stage-read");
        (read, header(&h, "x-tapctl-colour").map(str::to_string))
    };
    let (after_shift, _) = validate();
    // A safety net for a server that stopped reading, not a measure: reads come every second.
    let stop = Instant::now() + Duration::from_secs(300);
    loop {
        let (read, colour) = validate();
        if read >= after_shift + 2 {
            assert_eq!(colour.as_deref(), Some("green"), "read {read} began after the shift and still served blue");
            break;
        }
        assert!(Instant::now() < stop, "the stage was not read again in 300 s (still read {read})");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The stage serves its deployment's snapshot, not the API as it is now. A deployment made
    // before a method was added does not serve it; one made after does (the method's function
    // may not be invoked from its path: API Gateway's 500).
    let api_id = super::bluegreen::api_id(&acct);
    let deploy_and_serve = |deployment: &str| {
        acct.block_on(async {
            acct.apigateway
                .update_stage()
                .rest_api_id(&api_id)
                .stage_name("live")
                .patch_operations(
                    aws_sdk_apigateway::types::PatchOperation::builder()
                        .op(aws_sdk_apigateway::types::Op::Replace)
                        .path("/deploymentId")
                        .value(deployment)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        });
        await_fresh_read(a);
    };
    let check = |a: &str| {
        let body = "{}";
        send(a, "/live/check", &execute_api_headers(a, "/live/check", "application/json", body, "testing"), body)
    };
    let (before, after) = acct.block_on(async {
        let apigw = &acct.apigateway;
        let before = apigw.create_deployment().rest_api_id(&api_id).send().await.unwrap().id().unwrap().to_string();
        let root = apigw.get_resources().rest_api_id(&api_id).send().await.unwrap();
        let root = root.items().iter().find(|r| r.path() == Some("/")).and_then(|r| r.id()).unwrap().to_string();
        let resource = apigw.create_resource().rest_api_id(&api_id).parent_id(root).path_part("check").send().await;
        let resource = resource.unwrap().id().unwrap().to_string();
        let method = apigw.put_method().rest_api_id(&api_id).resource_id(&resource).http_method("POST");
        method.authorization_type("AWS_IAM").send().await.unwrap();
        let uri = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:payment-validate-qa:${stageVariables.lambdaAlias}/invocations";
        apigw
            .put_integration()
            .rest_api_id(&api_id)
            .resource_id(&resource)
            .http_method("POST")
            .r#type(aws_sdk_apigateway::types::IntegrationType::AwsProxy)
            .integration_http_method("POST")
            .uri(uri)
            .send()
            .await
            .unwrap();
        let after = apigw.create_deployment().rest_api_id(&api_id).send().await.unwrap().id().unwrap().to_string();
        (before, after)
    });
    deploy_and_serve(&before);
    let (status, _, v) = check(a);
    assert_eq!((status, v["message"].as_str()), (403, Some("Missing Authentication Token")), "{v}");
    deploy_and_serve(&after);
    let (status, _, v) = check(a);
    assert_eq!((status, v["message"].as_str()), (500, Some("Internal server error")), "{v}");

    // Only this machine's own names reach it: a name that resolves here but is another's (DNS
    // rebinding from a web page) is refused before anything else.
    let mut rebound = execute_api_headers(a, "/live/validate", "application/json", &body, "testing");
    rebound.retain(|(k, _)| k != "host");
    rebound.push(("host".into(), format!("payments.attacker.example:{}", a.rsplit(':').next().unwrap())));
    let (status, _, v) = send(a, "/live/validate", &rebound, &body);
    assert_eq!((status, v["message"].as_str()), (403, Some("Forbidden")), "{v}");
    // A request a foreign web page makes the operator's browser send is refused the same way,
    // even signed: the page must not reach the functions with the operator's rights.
    let mut from_a_page = execute_api_headers(a, "/live/validate", "application/json", &body, "testing");
    from_a_page.push(("origin".into(), "https://shop.attacker.example".into()));
    let (status, _, v) = send(a, "/live/validate", &from_a_page, &body);
    assert_eq!((status, v["message"].as_str()), (403, Some("Forbidden")), "{v}");
    // API Gateway's payload quota (10 MB): refused with 413 before any authorization.
    let huge = "x".repeat(10 * 1024 * 1024 + 1);
    let (status, _, v) = send(a, "/live/validate", &[("content-type".into(), "application/json".into())], &huge);
    assert_eq!((status, v["message"].as_str()), (413, Some("Request Too Long")), "{v}");
    // The Lambda Invoke it serves to the functions (process → its migrator) checks a Lambda
    // signature too: unsigned, or signed for API Gateway, nothing runs.
    let invoke = "/2015-03-31/functions/payment-validate-qa/invocations";
    let (status, h, _) = send(a, invoke, &[], "{}");
    assert_eq!((status, header(&h, "x-amzn-errortype")), (403, Some("MissingAuthenticationTokenException")));
    let (status, h, _) = send(a, invoke, &execute_api_headers(a, invoke, "application/json", "{}", "testing"), "{}");
    assert_eq!((status, header(&h, "x-amzn-errortype")), (403, Some("IncompleteSignatureException")));

    // Without the alias's invoke permission API Gateway answers 500.
    acct.block_on(async {
        let policy =
            acct.lambda.get_policy().function_name("payment-validate-qa").qualifier("green").send().await.unwrap();
        let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        for s in policy["Statement"].as_array().unwrap() {
            acct.lambda
                .remove_permission()
                .function_name("payment-validate-qa")
                .qualifier("green")
                .statement_id(s["Sid"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        }
    });
    // Aliases are read again in the background every second; the bound is a safety net.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, _, v) = send(
            a,
            "/live/validate",
            &execute_api_headers(a, "/live/validate", "application/json", &body, "testing"),
            &body,
        );
        if status == 500 {
            assert_eq!(v["message"].as_str(), Some("Internal server error"));
            break;
        }
        assert!(Instant::now() < deadline, "a revoked permission was still served after 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }

    // `$LATEST` runs the code it holds now: after an UpdateFunctionCode to code this machine has
    // no package of, the Invoke fails (ServiceException) instead of running the old instances.
    let invoke_latest =
        || send(a, invoke, &signed_headers("lambda", a, invoke, "application/json", "{}", "testing"), "{}");
    let (status, h, _) = invoke_latest();
    assert_eq!((status, header(&h, "x-amz-executed-version")), (200, Some("$LATEST")));
    let elsewhere = released_packages("not-on-this-machine");
    acct.block_on(async {
        let zip = std::fs::read(elsewhere.path().join("validate.zip")).unwrap();
        let code = aws_sdk_lambda::primitives::Blob::new(zip);
        acct.lambda.update_function_code().function_name("payment-validate-qa").zip_file(code).send().await.unwrap();
    });
    let (status, h, v) = invoke_latest();
    assert_eq!((status, header(&h, "x-amzn-errortype")), (500, Some("ServiceException")), "{v}");
}

/// One signed `/process` request as a client sends it, with its Idempotency-Key.
fn pay(address: &str, key: &str, body: &str) -> (u16, Vec<(String, String)>, Value) {
    let mut headers = execute_api_headers(address, "/live/process", "application/json", body, "testing");
    headers.push(("idempotency-key".into(), key.into()));
    send(address, "/live/process", &headers, body)
}

/// What one request of the stream got back.
#[derive(Debug, Clone)]
struct Answer {
    key: String,
    body: String,
    valid_input: bool,
    status: u16,
    /// The payment's outcome in the body: approved, review, declined.
    outcome: Option<String>,
    colour: String,
    version: String,
    transaction: Option<String>,
}

/// Sends one payment and keeps what came back.
fn pay_and_keep(address: &str, key: String, body: String, valid_input: bool) -> Answer {
    let (status, headers, v) = pay(address, &key, &body);
    Answer {
        key,
        body,
        valid_input,
        status,
        outcome: v["status"].as_str().map(str::to_string),
        colour: header(&headers, "x-tapctl-colour").unwrap_or_default().to_string(),
        version: header(&headers, "x-tapctl-version").unwrap_or_default().to_string(),
        transaction: v["transaction_id"].as_str().map(str::to_string),
    }
}

/// A valid payment of merchant m-1 with a card of its own (one card per payment: the fraud
/// check's velocity rules see no card twice).
fn fresh_payment(amount: i64) -> String {
    let number = random_card(&mut rand::rng(), "4", 16);
    payment("m-1", amount, card(&number, "123"))
}

/// Sends payments one after another (a client at a steady pace, about 20 a second) until `stop`:
/// every tenth one with a body API Gateway's model refuses, the rest valid cards of merchant m-1.
fn stream(address: &str, name: &str, stop: &std::sync::atomic::AtomicBool) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) || i < 20 {
        let valid_input = i % 10 != 9;
        let body = if valid_input { fresh_payment(1000 + i) } else { r#"{"merchant_id": "m-1"}"#.to_string() };
        answers.push(pay_and_keep(address, format!("{name}-{i}"), body, valid_input));
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    answers
}

/// Every request got the status its input deserves (201 for a valid payment, API Gateway's 400
/// for a refused body); every payment is in the table once, every approved one in the ledger once.
fn assert_nothing_lost_or_doubled(p: &Payments, answers: &[Answer]) {
    for a in answers {
        let expected = if a.valid_input { 201 } else { 400 };
        assert_eq!(a.status, expected, "{a:?}");
        assert_eq!(
            a.colour.is_empty(),
            !a.valid_input,
            "only a request that passed validation reaches a colour: {a:?}"
        );
    }
    let made: Vec<&str> = answers.iter().filter_map(|a| a.transaction.as_deref()).collect();
    assert_eq!(made.len(), answers.iter().filter(|a| a.valid_input).count());
    let unique: std::collections::BTreeSet<&str> = made.iter().copied().collect();
    assert_eq!(unique.len(), made.len(), "one transaction per Idempotency-Key");
    let approved: Vec<&str> = answers
        .iter()
        .filter(|a| a.outcome.as_deref() == Some("approved"))
        .filter_map(|a| a.transaction.as_deref())
        .collect();
    assert!(!approved.is_empty(), "fresh cards of small amounts are approved: {answers:?}");
    let in_table: std::collections::BTreeMap<String, usize> = p
        .items()
        .iter()
        .filter_map(|i| i.get("transaction_id")?.as_s().ok().cloned())
        .fold(std::collections::BTreeMap::new(), |mut m, t| {
            *m.entry(t).or_default() += 1;
            m
        });
    for t in &made {
        assert_eq!(in_table.get(*t), Some(&1), "{t} once in the table");
    }
    let in_ledger: usize =
        p.pg.psql(
            "payments",
            &format!(
                "SELECT count(*) FROM ledger_transactions WHERE transaction_id IN ({})",
                approved.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(",")
            ),
        )
        .trim()
        .parse()
        .expect("a count");
    assert_eq!(in_ledger, approved.len(), "each approved payment once in the ledger");
}

/// Runs `stream` on its own thread while `during` runs here; returns the stream's answers.
fn under_traffic(address: &str, name: &str, during: impl FnOnce()) -> Vec<Answer> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| stream(address, name, &stop));
        during();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        sender.join().expect("the stream")
    })
}

fn alias_version(acct: &Account, colour: &str) -> String {
    acct.block_on(async {
        let alias = acct.lambda.get_alias().function_name("payment-process-qa").name(colour).send().await.unwrap();
        alias.function_version().unwrap().to_string()
    })
}

#[test]
fn a_release_and_a_rollback_under_a_stream_of_payments_lose_nothing_and_record_nothing_twice() {
    // A database with the master user and nothing else: no schema, no logins yet.
    let p = Payments::new(false);
    // The endpoints Parameter Store names on AWS are not reachable from here: --database is.
    p.put_param("db/writer-endpoint", "payments.cluster-x.us-east-1.rds.amazonaws.com.invalid");
    p.put_param("db/reader-endpoint", "payments.cluster-ro-x.us-east-1.rds.amazonaws.com.invalid");
    let release = released_packages("release-2");
    let database = format!("postgres://127.0.0.1:{}/?sslrootcert={}", p.pg.port, p.pg.ca.display());
    let built = packages_dir().display().to_string();
    let released = release.path().display().to_string();
    let local = start_with(&p.acct, &["--database", &database, "--packages", &built, "--packages", &released]);
    let a = local.address.as_str();
    let blue = alias_version(&p.acct, "blue");

    // The first payment finds no login and no schema: process invokes its colour's migrator
    // (rotate-secret) through Lambda's Invoke, which `tapctl local` serves too, and retries.
    let (status, _, v) = pay(a, "first", &fresh_payment(1000));
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("unknown_merchant")), "{v}");
    assert_eq!(p.schema_versions(), "1,2,3", "the migrator ran, invoked through tapctl local");
    p.seed();

    // A release: up publishes the new code to green (idle), then the traffic moves 10 → 50 → 100.
    let release_run = under_traffic(a, "release", || {
        let up = p.acct.tapctl(&["up", "--suffix", "qa"]).env("TAPCTL_PACKAGES", release.path()).output().unwrap();
        assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
        p.acct.ok(&["shift", "--suffix", "qa", "--to", "green", "--steps", "10,50,100", "--interval", "2s"]);
        // Traffic goes on until a stage read that began after the promotion has served.
        await_fresh_read(a);
    });
    let green = alias_version(&p.acct, "green");
    assert_ne!(green, blue, "up published the release to green");
    assert_nothing_lost_or_doubled(&p, &release_run);
    let served = |answers: &[Answer], colour: &str| answers.iter().filter(|a| a.colour == colour).count();
    // A body the model refuses is answered by API Gateway before any function: no colour.
    let invoked: Vec<&Answer> = release_run.iter().filter(|a| a.valid_input).collect();
    assert_eq!(invoked.first().map(|a| (a.colour.as_str(), a.version.as_str())), Some(("blue", blue.as_str())));
    assert_eq!(invoked.last().map(|a| (a.colour.as_str(), a.version.as_str())), Some(("green", green.as_str())));
    assert!(served(&release_run, "blue") > 0 && served(&release_run, "green") > 0, "{release_run:?}");
    for a in invoked {
        let version = if a.colour == "blue" { &blue } else { &green };
        assert_eq!(&a.version, version, "each colour serves its alias's version: {a:?}");
    }

    // A canary rolled back: 30 % to blue (now idle), then --weight 0.
    p.acct.ok(&["shift", "--suffix", "qa", "--to", "blue", "--weight", "30"]);
    await_fresh_read(a);
    let canary: Vec<Answer> =
        (0..200).map(|i| pay_and_keep(a, format!("canary-{i}"), fresh_payment(5000 + i), true)).collect();
    assert_nothing_lost_or_doubled(&p, &canary);
    // Binomial(200, 0.3): mean 60, standard deviation 6.5; 4.5 deviations either side fail a
    // correct split about once in 150,000 runs.
    let to_blue = served(&canary, "blue");
    assert!((31..=89).contains(&to_blue), "{to_blue} of 200 went to the 30 % canary");
    let rollback_run = under_traffic(a, "rollback", || {
        p.acct.ok(&["shift", "--suffix", "qa", "--to", "blue", "--weight", "0"]);
        await_fresh_read(a);
    });
    assert_nothing_lost_or_doubled(&p, &rollback_run);
    let last_invoked = rollback_run.iter().rfind(|a| a.valid_input);
    assert_eq!(last_invoked.map(|a| a.colour.as_str()), Some("green"), "rolled back to green alone");

    // Replays of the stream's keys answer the recorded payments, recording nothing new.
    let ledger_before = p.pg.psql("payments", "SELECT count(*) FROM ledger_transactions");
    for a in release_run.iter().filter(|a| a.valid_input).take(5) {
        let (status, _, v) = pay(local.address.as_str(), &a.key, &a.body);
        assert_eq!((status, v["transaction_id"].as_str()), (200, a.transaction.as_deref()), "{v}");
    }
    assert_eq!(p.pg.psql("payments", "SELECT count(*) FROM ledger_transactions"), ledger_before);
}
