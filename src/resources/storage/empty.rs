//! Emptying a bucket before it is deleted: every version and delete marker, 1,000 per
//! DeleteObjects call. In a bucket with Object Lock the calls carry
//! `x-amz-bypass-governance-retention: true`, which removes versions under GOVERNANCE retention
//! (the caller needs `s3:BypassGovernanceRetention`). Versions under COMPLIANCE retention cannot
//! be removed by anyone before their retention ends: the bucket is left as it is, with an error
//! that names it and the date the last retention ends.

use crate::aws::AwsResultExt;
use crate::resources::{counted, Ctx, ResourceError, Result};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

/// A version DeleteObjects refused, with why.
struct Refused {
    key: String,
    version: Option<String>,
    code: String,
    message: String,
}

/// One pass over the bucket's versions and delete markers; returns how many were removed and
/// the versions S3 refused to remove.
async fn one_pass(ctx: &Ctx, b: &str, bypass: bool, removed: &mut usize) -> Result<Vec<Refused>> {
    let s3 = &ctx.clients.s3;
    let internal = |e: aws_sdk_s3::error::BuildError| ResourceError::new("Internal", e.to_string());
    let mut refused = Vec::new();
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        // Markers walk past what this pass could not remove instead of listing it again.
        let page = s3
            .list_object_versions()
            .bucket(b)
            .max_keys(1000)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .aws("s3:ListObjectVersions")?;
        let mut batch: Vec<ObjectIdentifier> = Vec::new();
        for (key, version) in page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(page.delete_markers().iter().map(|m| (m.key(), m.version_id())))
        {
            if let Some(key) = key {
                batch.push(
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(version.map(str::to_string))
                        .build()
                        .map_err(internal)?,
                );
            }
        }
        if !batch.is_empty() {
            ctx.progress.step(&format!("emptying {b}: {removed} versions removed"));
            let mut delete = s3
                .delete_objects()
                .bucket(b)
                .delete(Delete::builder().set_objects(Some(batch.clone())).quiet(true).build().map_err(internal)?);
            if bypass {
                delete = delete.bypass_governance_retention(true);
            }
            let out = delete.send().await.aws("s3:DeleteObjects")?;
            for e in out.errors() {
                refused.push(Refused {
                    key: e.key().unwrap_or_default().to_string(),
                    version: e.version_id().map(str::to_string),
                    code: e.code().unwrap_or("Error").to_string(),
                    message: e.message().unwrap_or_default().to_string(),
                });
            }
            *removed += batch.len().saturating_sub(out.errors().len());
        }
        if page.is_truncated() != Some(true) {
            return Ok(refused);
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

/// The retention S3 holds a version under: (mode, retain until), when it has one.
async fn retention(ctx: &Ctx, b: &str, r: &Refused) -> Result<Option<(String, DateTime)>> {
    let head = ctx
        .clients
        .s3
        .head_object()
        .bucket(b)
        .key(&r.key)
        .set_version_id(r.version.clone())
        .send()
        .await
        .aws("s3:HeadObject")?;
    Ok(match (head.object_lock_mode(), head.object_lock_retain_until_date()) {
        (Some(mode), Some(until)) => Some((mode.as_str().to_string(), *until)),
        _ => None,
    })
}

/// Removes every version and delete marker of `b`; the number removed. Fails, leaving the
/// bucket, when S3 refuses to remove a version, naming the retention date when a lock is why.
pub async fn empty(ctx: &Ctx, b: &str, bypass: bool) -> Result<usize> {
    let mut removed = 0usize;
    let refused = one_pass(ctx, b, bypass, &mut removed).await?;
    let Some(first) = refused.first() else { return Ok(removed) };
    // Which of the refused versions a lock holds, and until when (HeadObject reports it).
    let now = DateTime::from(std::time::SystemTime::now());
    let mut locked: Vec<(String, DateTime)> = Vec::new();
    for chunk in refused.chunks(8) {
        let mut heads = Vec::with_capacity(chunk.len());
        for r in chunk {
            heads.push(retention(ctx, b, r));
        }
        for r in futures::future::join_all(heads).await {
            if let Some((mode, until)) = r? {
                if until > now {
                    locked.push((mode, until));
                }
            }
        }
    }
    let Some(last) = locked.iter().map(|(_, until)| *until).max() else {
        return Err(ResourceError::new(
            &first.code,
            format!(
                "s3:DeleteObjects: {} of bucket {b} could not be removed ({}: {})",
                counted(refused.len() as i64, "object version"),
                first.key,
                first.message
            ),
        ));
    };
    let modes: std::collections::BTreeSet<&str> = locked.iter().map(|(m, _)| m.as_str()).collect();
    let until = last.fmt(Format::DateTime).unwrap_or_else(|_| last.secs().to_string());
    let day = until.get(..10).unwrap_or(&until).to_string();
    Err(ResourceError::new(
        "ObjectLocked",
        format!(
            "bucket {b} keeps {} under {} retention until {until}: nothing can remove {} or the bucket before \
             {day}, not even the account's root user ({removed} other versions were removed)",
            counted(locked.len() as i64, "object version"),
            modes.into_iter().collect::<Vec<_>>().join("/"),
            if locked.len() == 1 { "it" } else { "them" },
        ),
    )
    .with_hint(format!(
        "run `tapctl destroy` again after {until}. Until then the bucket stays, and so do what it needs: \
         the KMS key its objects are encrypted with (without it they could not be read) and the bucket \
         its access logs go to; the rest of the stack was destroyed"
    )))
}
