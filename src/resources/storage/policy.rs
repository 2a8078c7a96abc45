//! The bucket policies: every bucket refuses requests without TLS or with TLS older than 1.2
//! (PCI DSS 4.2.1); the trail bucket lets the stack's trail, and only it, deliver; the access-log
//! bucket lets S3's log delivery write the records of the audit and trail buckets, each under its
//! own prefix.

use crate::names::Names;
use serde_json::{json, Value};

pub const CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";
pub const LOG_DELIVERY: &str = "logging.s3.amazonaws.com";

pub fn arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// A policy document of these statements.
pub fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// Deny anything not over TLS, and TLS older than 1.2.
pub fn tls_only(bucket: &str) -> Vec<Value> {
    let resources = json!([arn(bucket), format!("{}/*", arn(bucket))]);
    vec![
        json!({
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": { "Bool": { "aws:SecureTransport": "false" } }
        }),
        json!({
            "Sid": "DenyTlsOlderThan12",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": { "NumericLessThan": { "s3:TlsVersion": "1.2" } }
        }),
    ]
}

/// CloudTrail's documented bucket policy (CloudTrail User Guide, "Amazon S3 bucket policy for
/// CloudTrail"), each statement scoped to the stack's trail by `aws:SourceArn` so that no other
/// trail, of this account or another, can deliver here (the confused-deputy guard). CloudTrail
/// still sends `x-amz-acl: bucket-owner-full-control` with every object, which a bucket with
/// ACLs off (bucket owner enforced) accepts, so the documented condition stays.
pub fn cloudtrail(names: &Names) -> Vec<Value> {
    let bucket = names.trail_bucket();
    let trail = names.trail_arn();
    vec![
        json!({
            "Sid": "AWSCloudTrailAclCheck",
            "Effect": "Allow",
            "Principal": { "Service": CLOUDTRAIL },
            "Action": "s3:GetBucketAcl",
            "Resource": arn(&bucket),
            "Condition": { "StringEquals": { "aws:SourceArn": trail } }
        }),
        json!({
            "Sid": "AWSCloudTrailWrite",
            "Effect": "Allow",
            "Principal": { "Service": CLOUDTRAIL },
            "Action": "s3:PutObject",
            "Resource": format!("{}/AWSLogs/{}/*", arn(&bucket), names.account),
            "Condition": {
                "StringEquals": { "s3:x-amz-acl": "bucket-owner-full-control", "aws:SourceArn": trail }
            }
        }),
    ]
}

/// S3 server access log delivery from `sources` (bucket, target prefix) into `target`, as the
/// S3 User Guide documents it for a target with ACLs off ("Permissions for log delivery"): the
/// logging service principal may put objects under the source's prefix only, for that source
/// bucket (`aws:SourceArn`) of this account (`aws:SourceAccount`).
pub fn log_delivery(target: &str, account: &str, sources: &[(String, &str)]) -> Vec<Value> {
    sources
        .iter()
        .map(|(source, prefix)| {
            json!({
                "Sid": format!("S3ServerAccessLogs{}", sid_part(prefix)),
                "Effect": "Allow",
                "Principal": { "Service": LOG_DELIVERY },
                "Action": "s3:PutObject",
                "Resource": format!("{}/{prefix}*", arn(target)),
                "Condition": {
                    "ArnLike": { "aws:SourceArn": arn(source) },
                    "StringEquals": { "aws:SourceAccount": account }
                }
            })
        })
        .collect()
}

/// `audit-bucket/` → `AuditBucket`: a Sid is alphanumeric.
fn sid_part(prefix: &str) -> String {
    prefix
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trail_may_deliver_only_under_its_account_and_only_as_itself() {
        let names = Names::new("qa", "eu-west-1", Some("123456789012"));
        let s = cloudtrail(&names);
        let trail = "arn:aws:cloudtrail:eu-west-1:123456789012:trail/payments-trail-qa";
        assert_eq!(s[0]["Action"], "s3:GetBucketAcl");
        assert_eq!(s[0]["Resource"], "arn:aws:s3:::payments-trail-123456789012-eu-west-1-qa");
        assert_eq!(s[0]["Condition"]["StringEquals"]["aws:SourceArn"], trail);
        assert_eq!(s[1]["Resource"], "arn:aws:s3:::payments-trail-123456789012-eu-west-1-qa/AWSLogs/123456789012/*");
        assert_eq!(s[1]["Condition"]["StringEquals"]["aws:SourceArn"], trail);
        assert_eq!(s[1]["Condition"]["StringEquals"]["s3:x-amz-acl"], "bucket-owner-full-control");
    }

    #[test]
    fn log_delivery_is_one_statement_per_source_under_its_prefix() {
        let s = log_delivery("logs", "123456789012", &[("audit".into(), "audit-bucket/"), ("t".into(), "trail/")]);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["Sid"], "S3ServerAccessLogsAuditBucket");
        assert_eq!(s[0]["Resource"], "arn:aws:s3:::logs/audit-bucket/*");
        assert_eq!(s[0]["Condition"]["ArnLike"]["aws:SourceArn"], "arn:aws:s3:::audit");
        assert_eq!(s[1]["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012");
    }
}
