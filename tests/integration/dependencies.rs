//! Each function links only the AWS SDK clients its code uses (issue: the fast loop). A function
//! is packaged by a cargo build of that function alone (`tapctl build`), so what `cargo tree`
//! resolves for it is what its bootstrap is linked from: payments-runtime's features, turned on
//! by each function's manifest, decide which clients are in it.

use std::collections::BTreeSet;
use std::process::Command;

/// The clients aws-config itself needs for the credential chain (AssumeRole, web identity), in
/// every function whatever its code does.
const CREDENTIALS: &[&str] = &["aws-sdk-sts"];

/// What each function's code calls: configuration (Parameter Store, Secrets Manager) for all,
/// the transactions table for the fraud rules, the audit bucket and the alerts topic for process,
/// and Lambda for process, which invokes the migrator when the schema is behind its code.
pub const USES: [(&str, &[&str]); 4] = [
    ("validate", &["aws-sdk-secretsmanager", "aws-sdk-ssm"]),
    ("fraud-check", &["aws-sdk-dynamodb", "aws-sdk-secretsmanager", "aws-sdk-ssm"]),
    (
        "process",
        &["aws-sdk-dynamodb", "aws-sdk-lambda", "aws-sdk-s3", "aws-sdk-secretsmanager", "aws-sdk-sns", "aws-sdk-ssm"],
    ),
    ("rotate-secret", &["aws-sdk-secretsmanager", "aws-sdk-ssm"]),
];

/// A string only a client's own code holds, so its presence in a bootstrap means the client was
/// linked: DynamoDB's JSON target prefix, SSM's, Secrets Manager's service name, S3's express
/// auth scheme, SNS's query API version, Lambda's REST path.
pub const SIGNATURES: [(&str, &str); 6] = [
    ("aws-sdk-dynamodb", "DynamoDB_20120810"),
    ("aws-sdk-ssm", "AmazonSSM"),
    ("aws-sdk-secretsmanager", "secretsmanager"),
    ("aws-sdk-s3", "s3express"),
    ("aws-sdk-sns", "2010-03-31"),
    ("aws-sdk-lambda", "/2015-03-31/functions/"),
];

/// Which SDK clients a built bootstrap links, by their signatures.
pub fn linked_clients(bootstrap: &[u8]) -> BTreeSet<&'static str> {
    SIGNATURES
        .iter()
        .filter(|(_, marker)| bootstrap.windows(marker.len()).any(|w| w == marker.as_bytes()))
        .map(|(client, _)| *client)
        .collect()
}

/// The packages in the normal (linked) dependency tree of one binary crate, for Lambda's target.
fn linked_packages(function: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .args(["--target", "x86_64-unknown-linux-gnu", "-p", function])
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "cargo tree -p {function}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn each_function_links_exactly_the_sdk_clients_its_code_uses() {
    for (function, uses) in USES {
        let packages = linked_packages(function);
        let clients: BTreeSet<&str> =
            packages.iter().map(String::as_str).filter(|p| p.starts_with("aws-sdk-")).collect();
        let expected: BTreeSet<&str> = uses.iter().chain(CREDENTIALS).copied().collect();
        assert_eq!(clients, expected, "{function} links other SDK clients than its code uses");
    }
}

#[test]
fn only_the_functions_that_reach_the_database_link_postgres_and_only_api_functions_link_lambda_http() {
    for (function, db, http) in [
        ("validate", false, true),
        ("fraud-check", false, true),
        ("process", true, true),
        ("rotate-secret", true, false),
    ] {
        let packages = linked_packages(function);
        assert_eq!(packages.contains("tokio-postgres"), db, "{function}: tokio-postgres");
        assert_eq!(packages.contains("lambda_http"), http, "{function}: lambda_http");
    }
}
