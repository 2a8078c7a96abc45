//! `secrets.policies`: a resource policy on each of the stack's secrets that refuses
//! `secretsmanager:GetSecretValue` to every principal but the roles that need the secret (PCI DSS
//! 3.6.1, 7.2.1-7.2.2, 8.6.2): IAM alone lets any principal whose policy allows the action read
//! the master password, an account administrator's included.
//!
//! - One explicit Deny with `StringNotEquals aws:PrincipalArn` (the roles' ARNs, which
//!   `aws:PrincipalArn` carries for a role session), not an Allow: Secrets Manager evaluates the
//!   resource policy together with IAM, so an Allow here would widen nothing and restrict nothing.
//!   A Deny of one action only: tapctl (the operator) still manages the secret — Describe, Put/
//!   DeleteResourcePolicy, UpdateSecret, TagResource, RotateSecret, DeleteSecret.
//! - db-master: the rotate-secret function's role (it rotates the secret and runs the
//!   migrations), plus the roles `iam.db-connect` lists in `transitional_master_readers` (old
//!   process code still reading the master during a blue/green move). card-fingerprint-key: the
//!   roles of the functions whose IAM policy reads it (`readers`). Both: `--break-glass-role-arn`.
//! - tapctl itself reads the master credential once, when `database.cluster` creates the cluster
//!   (CreateDBCluster takes the password). This node goes after it; a cluster made again later
//!   (deleted out of band) needs `up` run as the break-glass role.
//! - PutResourcePolicy with BlockPublicPolicy: Secrets Manager checks (Zelkova) that the policy
//!   grants no broad access; a Deny-only policy never does.
//! - Lives apart from the secrets: the roles it names are made after the secrets (their policies
//!   name the secrets' ARNs), so the secret's own node cannot hold it without a cycle. It goes
//!   with the secret: `destroy` deletes nothing here (removing the policy first would leave the
//!   secret open for the rest of a destroy that may fail).

use super::{Kind, CARD_FINGERPRINT_KEY, DB_MASTER};
use crate::aws::{AwsResultExt, NotFoundExt};
use crate::resources::retry::catalogue;
use crate::resources::{
    canonical, listed, policy_difference, After, Change, Ctx, Drift, Input, Outputs, Resource, ResourceError, Result,
};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub struct SecretPolicies;

pub const ID: &str = "secrets.policies";
/// The node whose output `transitional_master_readers` lists the roles of old process code that
/// still reads the master credential while a blue/green move finishes.
pub const DB_CONNECT: &str = crate::resources::iam::db_connect::ID;
pub const TRANSITIONAL_MASTER_READERS: &str = "transitional_master_readers";
/// The one statement of each policy.
pub const SID: &str = "GetSecretValueOnlyByTheRolesThatNeedIt";

const KINDS: [Kind; 2] = [Kind::DbMaster, Kind::CardFingerprintKey];

/// The functions whose roles read the secret, as their IAM policies do (`iam::policy`; a unit
/// test keeps the two in step).
pub fn readers(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::DbMaster => &["rotate-secret"],
        Kind::CardFingerprintKey => &["validate", "fraud-check", "process"],
    }
}

fn secret_name(ctx: &Ctx, kind: Kind) -> String {
    match kind {
        Kind::DbMaster => ctx.names.db_secret(),
        Kind::CardFingerprintKey => ctx.names.fingerprint_secret(),
    }
}

fn node_of(kind: Kind) -> &'static str {
    match kind {
        Kind::DbMaster => DB_MASTER,
        Kind::CardFingerprintKey => CARD_FINGERPRINT_KEY,
    }
}

pub struct Observed {
    /// Each secret that exists, by name, with its resource policy (None: it has none).
    pub policies: Vec<(Kind, String, Option<Value>)>,
}

/// The policy of a secret: GetSecretValue refused to every principal whose ARN is not one of
/// `allowed`.
pub fn document(allowed: &BTreeSet<String>) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": SID,
            "Effect": "Deny",
            "Principal": { "AWS": "*" },
            "Action": "secretsmanager:GetSecretValue",
            // In a secret's resource policy "*" is the secret itself.
            "Resource": "*",
            "Condition": { "StringNotEquals": { "aws:PrincipalArn": allowed.iter().collect::<Vec<_>>() } }
        }]
    })
}

/// The principals a policy still lets read the secret: those its Deny of GetSecretValue
/// excepts by `aws:PrincipalArn`. None when no statement denies GetSecretValue to everyone else.
pub fn excepted(doc: &Value) -> Option<BTreeSet<String>> {
    let statements: Vec<&Value> = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        Value::Null => vec![],
        one => vec![one],
    };
    statements.into_iter().find_map(|s| {
        let c = &canonical(&json!({ "Statement": [s] }))[0];
        let denies = c["Effect"] == "Deny"
            && c["Principal"]["AWS"] == json!(["*"])
            && c["Action"].as_array().is_some_and(|a| {
                a.iter().any(|x| matches!(x.as_str(), Some("secretsmanager:getsecretvalue" | "secretsmanager:*" | "*")))
            });
        let conditions = c["Condition"].as_object()?;
        // Only the one condition: any other would narrow the Deny.
        if !denies || conditions.len() != 1 {
            return None;
        }
        let keys = conditions.get("StringNotEquals")?.as_object()?;
        if keys.len() != 1 {
            return None;
        }
        let arns = keys.get("aws:principalarn")?.as_array()?;
        Some(arns.iter().filter_map(Value::as_str).map(str::to_string).collect())
    })
}

/// The roles that may read `kind`'s secret.
fn allowed(ctx: &Ctx, kind: Kind) -> Result<BTreeSet<String>> {
    let roles = ctx.input_value(crate::resources::iam::ID, "role_arns")?;
    let mut arns = BTreeSet::new();
    for f in readers(kind) {
        let arn = roles[*f].as_str().ok_or_else(|| {
            ResourceError::new("MissingInput", format!("{} did not provide the role of {f}", crate::resources::iam::ID))
        })?;
        arns.insert(arn.to_string());
    }
    if kind == Kind::DbMaster {
        arns.extend(transitional_master_readers(ctx)?);
    }
    arns.extend(ctx.config.break_glass_role_arn.clone());
    Ok(arns)
}

/// The roles of old code still reading the master during a blue/green move (`iam.db-connect`).
fn transitional_master_readers(ctx: &Ctx) -> Result<Vec<String>> {
    ctx.input_list(DB_CONNECT, TRANSITIONAL_MASTER_READERS)
}

/// The wanted policy in words: who may read.
fn wanted_words(allowed: &BTreeSet<String>) -> String {
    format!("GetSecretValue refused to all but {}", listed(allowed))
}

/// How the policy `have` (None: there is none) differs from the one that lets exactly `allowed`
/// read, in words.
pub fn drift(secret: &str, have: Option<&Value>, allowed: &BTreeSet<String>) -> Option<Drift> {
    let field = format!("secret {secret} resource policy");
    let want = document(allowed);
    let Some(have) = have else {
        return Some(Drift::new(field, "none (any principal IAM allows reads it)", wanted_words(allowed)));
    };
    if canonical(have) == canonical(&want) {
        return None;
    }
    let mut parts = Vec::new();
    match excepted(have) {
        None => parts.push("does not refuse GetSecretValue to other principals".to_string()),
        Some(now) => {
            let extra: Vec<&String> = now.difference(allowed).collect();
            if !extra.is_empty() {
                parts.push(format!("also lets {} read", listed(extra)));
            }
            let lacking: Vec<&String> = allowed.difference(&now).collect();
            if !lacking.is_empty() {
                parts.push(format!("does not let {} read", listed(lacking)));
            }
        }
    }
    let actions = policy_difference(have, &want);
    if actions != "differs" {
        parts.push(actions);
    } else if parts.is_empty() {
        parts.push("other statements or conditions".to_string());
    }
    Some(Drift::new(field, parts.join("; "), wanted_words(allowed)))
}

const READS: &[Input] = &[
    Input { node: DB_MASTER, key: "secret_arn" },
    Input { node: CARD_FINGERPRINT_KEY, key: "secret_arn" },
    Input { node: crate::resources::iam::ID, key: "role_arns" },
    Input { node: DB_CONNECT, key: TRANSITIONAL_MASTER_READERS },
];

#[async_trait]
impl Resource for SecretPolicies {
    type Observed = Observed;

    fn id(&self) -> &'static str {
        ID
    }
    fn reads(&self) -> &'static [Input] {
        READS
    }
    fn after(&self) -> &'static [After] {
        &[After {
            node: crate::resources::database::cluster::ID,
            why: "tapctl reads the master password as the operator to create the cluster; the Deny goes on after",
        }]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<Observed>> {
        let sm = &ctx.clients.secrets;
        let found = futures::future::try_join_all(KINDS.map(|kind| async move {
            let name = secret_name(ctx, kind);
            let out = sm
                .get_resource_policy()
                .secret_id(&name)
                .send()
                .await
                .aws("secretsmanager:GetResourcePolicy")
                .ok_if_not_found()?;
            Ok::<_, ResourceError>(out.map(|o| {
                // A policy that is not JSON compares as a string: it differs.
                let policy =
                    o.resource_policy().map(|p| serde_json::from_str(p).unwrap_or_else(|_| Value::String(p.into())));
                (kind, name, policy)
            }))
        }))
        .await?;
        let policies: Vec<_> = found.into_iter().flatten().collect();
        // The policies are this node: with none on either secret it is absent (a first `up`
        // creates it, it does not adopt it); one secret without its policy is drift.
        Ok(policies.iter().any(|(_, _, p)| p.is_some()).then_some(Observed { policies }))
    }

    fn diff(&self, ctx: &Ctx, o: &Observed) -> Result<Change> {
        let mut d = Vec::new();
        for kind in KINDS {
            let name = secret_name(ctx, kind);
            let allowed = allowed(ctx, kind)?;
            match o.policies.iter().find(|(k, _, _)| *k == kind) {
                None => d.push(Drift::missing(format!("secret {name}"), format!("made by {}", node_of(kind)))),
                Some((_, _, have)) => d.extend(drift(&name, have.as_ref(), &allowed)),
            }
        }
        Ok(Change::from_drifts(d))
    }

    fn outputs(&self, _ctx: &Ctx, o: &Observed) -> Outputs {
        let readers: serde_json::Map<String, Value> = o
            .policies
            .iter()
            .map(|(_, name, p)| {
                let who = p.as_ref().and_then(excepted).unwrap_or_default();
                (name.clone(), json!(who))
            })
            .collect();
        Outputs::from([("secret_readers".into(), Value::Object(readers))])
    }

    async fn apply(&self, ctx: &Ctx, observed: Option<Observed>) -> Result<Outputs> {
        let sm = &ctx.clients.secrets;
        let mut readers = serde_json::Map::new();
        for kind in KINDS {
            let name = secret_name(ctx, kind);
            let arn = ctx.input(node_of(kind), "secret_arn")?;
            let allowed = allowed(ctx, kind)?;
            let have = observed.as_ref().and_then(|o| o.policies.iter().find(|(k, _, _)| *k == kind));
            if let Some(drift) = drift(&name, have.and_then(|(_, _, p)| p.as_ref()), &allowed) {
                ctx.progress.step(&format!("setting the resource policy of secret {name}: {}", drift.wanted));
                let policy = document(&allowed).to_string();
                ctx.retry_while_propagating(&catalogue::SECRETS_POLICY_PRINCIPAL, &format!("secret {name}"), || {
                    let call = sm
                        .put_resource_policy()
                        .secret_id(&arn)
                        .resource_policy(&policy)
                        // Secrets Manager refuses a policy that grants broad access (Zelkova).
                        .block_public_policy(true)
                        .send();
                    async move { call.await.aws("secretsmanager:PutResourcePolicy") }
                })
                .await?;
            }
            readers.insert(name, json!(allowed));
        }
        Ok(Outputs::from([("secret_readers".into(), Value::Object(readers))]))
    }

    async fn delete(&self, ctx: &Ctx, _o: Observed) -> Result<()> {
        // The policy goes with its secret (DeleteSecret); removing it first would leave the
        // secret readable by any principal IAM allows for the rest of the destroy.
        ctx.progress.step("the secrets' resource policies go with the secrets");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::testing::{assert_plain, ctx};

    const ROTATE: &str = "arn:aws:iam::123456789012:role/payment-rotate-secret-role-qa";
    const BREAK_GLASS: &str = "arn:aws:iam::123456789012:role/break-glass";

    fn set(arns: &[&str]) -> BTreeSet<String> {
        arns.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_policy_denies_reading_to_all_but_the_named_roles_and_compares_as_aws_returns_it() {
        let allowed = set(&[ROTATE]);
        let doc = document(&allowed);
        assert_eq!(excepted(&doc), Some(allowed.clone()));
        assert_eq!(drift("s", Some(&doc), &allowed), None);
        // AWS answers one value as a string, "*" bare, and the keys in another case: the same.
        let as_aws = json!({ "Version": "2012-10-17", "Statement": { "Effect": "Deny", "Principal": "*",
            "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            "Condition": { "StringNotEquals": { "aws:principalArn": ROTATE } } } });
        assert_eq!(drift("s", Some(&as_aws), &allowed), None);
        assert_eq!(excepted(&as_aws), Some(allowed));
    }

    #[test]
    fn drift_names_who_else_reads_who_cannot_and_a_missing_or_weakened_policy() {
        let allowed = set(&[ROTATE, BREAK_GLASS]);
        let missing = drift("payments/qa/db-master", None, &allowed).unwrap();
        assert_eq!(
            missing.to_string(),
            format!(
                "secret payments/qa/db-master resource policy: none (any principal IAM allows reads it) → \
                 GetSecretValue refused to all but {BREAK_GLASS}, {ROTATE}"
            )
        );
        let intruder = "arn:aws:iam::123456789012:role/intruder";
        let widened = document(&set(&[ROTATE, intruder]));
        let d = drift("s", Some(&widened), &allowed).unwrap();
        assert_eq!(d.current, format!("also lets {intruder} read; does not let {BREAK_GLASS} read"));
        let allow_all = json!({ "Statement": [{ "Effect": "Allow", "Principal": "*", "Action": "secretsmanager:*", "Resource": "*" }] });
        let d = drift("s", Some(&allow_all), &allowed).unwrap();
        assert!(d.current.starts_with("does not refuse GetSecretValue to other principals"), "{d}");
        assert!(d.current.contains("also allows secretsmanager:*"), "{d}");
        let mut narrowed = document(&allowed);
        narrowed["Statement"][0]["Condition"]["Bool"] = json!({ "aws:SecureTransport": "false" });
        let d = drift("s", Some(&narrowed), &allowed).unwrap();
        assert!(d.current.contains("does not refuse GetSecretValue"), "a Deny under another condition: {d}");
        assert_plain(&[&missing, &d]);
    }

    #[test]
    fn the_readers_are_the_functions_whose_iam_policy_reads_the_secret() {
        const IAM_READS: &[Input] = &[
            Input { node: "kms.key", key: "key_arn" },
            Input { node: "tables.transactions", key: "table_arn" },
            Input { node: "storage.audit-bucket", key: "bucket_arn" },
            Input { node: "alerts.topic", key: "topic_arn" },
            Input { node: DB_MASTER, key: "secret_arn" },
            Input { node: CARD_FINGERPRINT_KEY, key: "secret_arn" },
        ];
        let (db, fp) = ("arn:aws:secretsmanager:us-east-1:1:secret:db", "arn:aws:secretsmanager:us-east-1:1:secret:fp");
        let c = ctx(
            crate::resources::iam::ID,
            IAM_READS,
            &[
                ("kms.key", "key_arn", json!("arn:aws:kms:us-east-1:1:key/k")),
                ("tables.transactions", "table_arn", json!("arn:aws:dynamodb:us-east-1:1:table/t")),
                ("storage.audit-bucket", "bucket_arn", json!("arn:aws:s3:::b")),
                ("alerts.topic", "topic_arn", json!("arn:aws:sns:us-east-1:1:t")),
                (DB_MASTER, "secret_arn", json!(db)),
                (CARD_FINGERPRINT_KEY, "secret_arn", json!(fp)),
            ],
        );
        let reads = |f: &str, secret: &str| {
            let p = crate::resources::iam::policy(&c, f).unwrap();
            p["Statement"].as_array().unwrap().iter().any(|s| {
                s["Effect"] == "Allow"
                    && s["Action"].as_array().unwrap().iter().any(|a| a == "secretsmanager:GetSecretValue")
                    && s["Resource"].as_array().is_some_and(|r| r.iter().any(|r| r == secret))
            })
        };
        for f in crate::names::FUNCTIONS {
            assert_eq!(reads(f, fp), readers(Kind::CardFingerprintKey).contains(&f), "{f} and the card key");
        }
        assert!(reads("rotate-secret", db), "rotate-secret reads the master");
    }

    #[test]
    fn the_break_glass_role_is_excepted_only_when_given() {
        let roles = json!({ "validate": "arn:aws:iam::1:role/v", "fraud-check": "arn:aws:iam::1:role/f",
                            "process": "arn:aws:iam::1:role/p", "rotate-secret": ROTATE });
        let mut c = ctx(
            ID,
            READS,
            &[(crate::resources::iam::ID, "role_arns", roles), (DB_CONNECT, TRANSITIONAL_MASTER_READERS, json!([]))],
        );
        assert_eq!(allowed(&c, Kind::DbMaster).unwrap(), set(&[ROTATE]));
        assert_eq!(
            allowed(&c, Kind::CardFingerprintKey).unwrap(),
            set(&["arn:aws:iam::1:role/v", "arn:aws:iam::1:role/f", "arn:aws:iam::1:role/p"])
        );
        let mut config = (*c.config).clone();
        config.break_glass_role_arn = Some(BREAK_GLASS.into());
        c.config = std::sync::Arc::new(config);
        assert_eq!(allowed(&c, Kind::DbMaster).unwrap(), set(&[ROTATE, BREAK_GLASS]));
        assert!(allowed(&c, Kind::CardFingerprintKey).unwrap().contains(BREAK_GLASS));
        // Old process code still reading the master during a move reads it, and only it.
        let old_process = "arn:aws:iam::123456789012:role/payment-process-qa";
        c.inputs.get_mut(DB_CONNECT).unwrap().insert(TRANSITIONAL_MASTER_READERS.into(), json!([old_process]));
        assert_eq!(allowed(&c, Kind::DbMaster).unwrap(), set(&[ROTATE, BREAK_GLASS, old_process]));
        assert!(!allowed(&c, Kind::CardFingerprintKey).unwrap().contains(old_process));
    }
}
