//! rotate-secret's four steps as Secrets Manager invokes them (through the Runtime API; moto's
//! own rotation cannot invoke a function: testing.md), against the emulator's Secrets Manager and
//! a real PostgreSQL. Single-user rotation: afterwards only the new password logs in.

use super::functions::Payments;
use payments_runtime::db::{self, Credentials};
use payments_runtime::SecretValue;
use serde_json::json;

const SECRET: &str = "payments/qa/db-master";
const TOKEN: &str = "7a0c31f5-6c1e-4d8e-9a57-2f1b8c3d4e5f";

fn step(f: &super::lambda::Function, arn: &str, step: &str) -> Result<serde_json::Value, serde_json::Value> {
    f.invoke(&json!({ "SecretId": arn, "ClientRequestToken": TOKEN, "Step": step }))
}

fn arn(p: &Payments) -> String {
    p.acct.block_on(async {
        p.acct.secrets.describe_secret().secret_id(SECRET).send().await.unwrap().arn().unwrap().to_string()
    })
}

fn pending(p: &Payments) -> Credentials {
    let v = p.acct.block_on(async {
        let out = p
            .acct
            .secrets
            .get_secret_value()
            .secret_id(SECRET)
            .version_id(TOKEN)
            .version_stage("AWSPENDING")
            .send()
            .await
            .unwrap();
        out.secret_string().unwrap().to_string()
    });
    Credentials::from_secret(&SecretValue::new(v)).unwrap()
}

fn logs_in(p: &Payments, creds: &Credentials) -> bool {
    p.acct.block_on(async {
        let tls = db::tls(&p.pg.ca).unwrap();
        match db::connect(&p.endpoint(), creds, &tls).await {
            Ok(c) => c.query_one("SELECT 1", &[]).await.is_ok(),
            Err(e) => {
                eprintln!("login refused: {e}");
                false
            }
        }
    })
}

fn current_version(p: &Payments) -> String {
    p.acct.block_on(async {
        let d = p.acct.secrets.describe_secret().secret_id(SECRET).send().await.unwrap();
        d.version_ids_to_stages()
            .unwrap()
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
            .map(|(v, _)| v.clone())
            .unwrap()
    })
}

#[test]
fn rotate_secret_runs_the_four_steps_and_afterwards_only_the_new_password_logs_in() {
    let p = Payments::new(false);
    let f = p.start("rotate-secret", 1);
    let arn = arn(&p);
    let old = p.master();
    assert!(logs_in(&p, &old));

    step(&f, &arn, "createSecret").unwrap();
    let new = pending(&p);
    assert_eq!(new.username, old.username);
    assert_ne!(new.password, old.password);
    step(&f, &arn, "createSecret").unwrap();
    assert_eq!(pending(&p).password, new.password, "a repeated createSecret keeps the pending value");
    assert!(!logs_in(&p, &new), "the database does not know the pending password before setSecret");

    for s in ["setSecret", "setSecret", "testSecret", "finishSecret", "finishSecret"] {
        step(&f, &arn, s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    assert_eq!(current_version(&p), TOKEN);
    let current = p.master();
    assert_eq!(current.password, new.password, "AWSCURRENT holds the new password");
    assert!(logs_in(&p, &current), "the new credentials work");
    assert!(!logs_in(&p, &old), "the old password no longer logs in");
    // The password went to the server as a SCRAM verifier: the statement log never holds it.
    let log = p.pg.server_log();
    assert!(log.contains("ALTER ROLE"), "the harness logs statements");
    assert!(!log.contains(&new.password));
    assert!(!f.output().contains(&new.password) && !f.output().contains(&old.password));
}

#[test]
fn a_failed_set_secret_leaves_awscurrent_working_and_a_retry_completes() {
    let p = Payments::new(false);
    let f = p.start("rotate-secret", 1);
    let arn = arn(&p);
    let old = p.master();
    let before = current_version(&p);
    step(&f, &arn, "createSecret").unwrap();

    p.pg.stop_server();
    let err = step(&f, &arn, "setSecret").expect_err("setSecret cannot succeed without the database");
    assert!(!err.to_string().contains(&pending(&p).password), "the error names no secret: {err}");
    p.pg.start_server();

    assert_eq!(current_version(&p), before, "AWSCURRENT did not move");
    assert!(logs_in(&p, &p.master()) && p.master().password == old.password, "AWSCURRENT still logs in");
    assert!(!logs_in(&p, &pending(&p)));
    let err = step(&f, &arn, "testSecret").expect_err("the pending password does not work yet");
    assert!(err.to_string().contains("database"), "{err}");

    for s in ["setSecret", "testSecret", "finishSecret"] {
        step(&f, &arn, s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    assert!(logs_in(&p, &p.master()) && !logs_in(&p, &old));
}

/// rotate-secret is also the migrator: `{"action":"migrate"}` signs in as the master and applies
/// what the database lacks, answering the version and what it applied; it still works in the
/// window of a rotation where the database knows only the pending password.
#[test]
fn the_migrator_applies_the_missing_migrations_as_the_master_even_mid_rotation() {
    let p = Payments::new(false);
    let f = p.start("rotate-secret", 1);
    let migrate = json!({ "action": "migrate" });
    assert_eq!(f.invoke(&migrate).unwrap(), json!({ "schema_version": 3, "applied": [1, 2, 3] }));
    assert_eq!(p.schema_versions(), "1,2,3");
    assert_eq!(f.invoke(&migrate).unwrap(), json!({ "schema_version": 3, "applied": [] }));
    let err = f.invoke(&json!({ "action": "drop" })).expect_err("an unknown action fails");
    assert!(err.to_string().contains("unknown action"), "{err}");

    // Between setSecret and finishSecret AWSCURRENT no longer signs in.
    let arn = arn(&p);
    step(&f, &arn, "createSecret").unwrap();
    step(&f, &arn, "setSecret").unwrap();
    assert!(!logs_in(&p, &p.master()), "AWSCURRENT is refused in the window");
    assert_eq!(f.invoke(&migrate).unwrap(), json!({ "schema_version": 3, "applied": [] }));
    step(&f, &arn, "finishSecret").unwrap();
    assert_eq!(f.invoke(&migrate).unwrap(), json!({ "schema_version": 3, "applied": [] }));
    let log = f.output();
    assert!(!log.contains(&p.master().password), "the master password is in no log line");
}
