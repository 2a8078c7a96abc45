//! The named waits and retries: one small vocabulary for every "not yet" AWS answers
//! (terraform-provider-aws' `internal/tfresource/retry.go` is the model).
//!
//! - [`Ctx::retry_while_propagating`]: calls an operation again while AWS answers one of the
//!   answers a [`Propagation`] of the catalogue below names — a change made moments ago that the
//!   service has not seen yet. Any other answer ends the call at once.
//! - [`Ctx::until_ready`]: polls until a resource is usable; each resource maps AWS's states to a
//!   [`Readiness`] with an exhaustive match, where a state it does not know is not ready.
//! - [`Ctx::until_gone`]: polls until a deleted resource has disappeared.
//!
//! All three are bounded, show what they wait for on the node's progress line, and give the
//! node's walker slot to other nodes between polls (`engine::walk::parked`). A resource that is
//! absent although it existed is not "propagating": `until_ready` reports it after the
//! read-after-create window, and no catalogue entry retries a not-found answer of the resource
//! itself — only of one a dependency or this node has just made.

use super::{Ctx, ResourceError, Result};
use crate::aws::AwsError;
use crate::engine::wait::{self, Poll, WaitError, WaitPolicy};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How an AWS error code is recognised.
#[derive(Debug, Clone, Copy)]
pub enum Code {
    Is(&'static str),
    /// EC2's `InvalidVpcID.NotFound`, `InvalidGroup.NotFound`…: any code with this ending.
    EndsWith(&'static str),
}

/// One answer AWS gives while a change has not propagated: an error code, and a substring of its
/// message when the code alone also covers real failures.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub code: Code,
    pub message: Option<&'static str>,
}

impl Answer {
    pub const fn code(code: &'static str) -> Answer {
        Answer { code: Code::Is(code), message: None }
    }
    pub const fn says(code: &'static str, message: &'static str) -> Answer {
        Answer { code: Code::Is(code), message: Some(message) }
    }

    pub fn matches(&self, e: &AwsError) -> bool {
        let code = e.code.as_deref().unwrap_or_default();
        let code_matches = match self.code {
            Code::Is(c) => code == c,
            Code::EndsWith(suffix) => code.ends_with(suffix),
        };
        code_matches && self.message.is_none_or(|m| e.message.contains(m))
    }
}

/// The "not yet" answers of some operations, what AWS is propagating meanwhile, and how long it
/// may take before the answer is believed.
#[derive(Debug, Clone, Copy)]
pub struct Propagation {
    pub waiting_for: &'static str,
    pub answers: &'static [Answer],
    pub limit: Duration,
}

impl Propagation {
    pub fn matches(&self, e: &AwsError) -> bool {
        self.answers.iter().any(|a| a.matches(e))
    }
}

const IAM_PROPAGATION: Duration = Duration::from_secs(2 * 60);
const EC2_PROPAGATION: Duration = Duration::from_secs(5 * 60);
const LAMBDA_PROPAGATION: Duration = Duration::from_secs(15 * 60);

/// The catalogue: every propagation answer tapctl retries, with where it is documented. The
/// bounds are terraform-provider-aws' (docs/aws-propagation-catalogue.md has each source).
pub mod catalogue {
    use super::*;

    /// Lambda CreateFunction and UpdateFunctionConfiguration right after the execution role, its
    /// policy or the key were made: the role is not yet assumable or not yet allowed to create the
    /// VPC interfaces, the key not yet usable for a grant; EC2 throttles the interface creation.
    /// Lambda's troubleshooting guide ("The role defined for the function cannot be assumed"),
    /// terraform `lambda/function.go::retryFunctionOp` (15 min).
    pub const LAMBDA_FUNCTION: Propagation = Propagation {
        waiting_for: "IAM, KMS and EC2 to propagate the function's role, key and network access to Lambda",
        answers: &[
            Answer::says("InvalidParameterValueException", "cannot be assumed by Lambda"),
            Answer::says("InvalidParameterValueException", "execution role does not have permissions"),
            Answer::says("InvalidParameterValueException", "KMS key is invalid for CreateGrant"),
            Answer::says("InvalidParameterValueException", "throttled by EC2"),
            // A function still Pending, or an earlier update still applying.
            Answer::says("ResourceConflictException", "in progress"),
        ],
        limit: LAMBDA_PROPAGATION,
    };

    /// Lambda's configuration, code and publish calls while an earlier change is still being
    /// applied ("An update is in progress for resource"): Lambda's function-states guide,
    /// terraform `retryFunctionOp` / PublishVersion.
    pub const LAMBDA_UPDATE_IN_PROGRESS: Propagation = Propagation {
        waiting_for: "Lambda to finish the function's previous update",
        answers: &[Answer::says("ResourceConflictException", "in progress")],
        limit: LAMBDA_PROPAGATION,
    };

    /// An EC2 call naming a VPC, subnet, security group, route table, NAT or internet gateway,
    /// network ACL or address made moments ago: EC2's API is eventually consistent
    /// (ec2/latest/devguide/eventual-consistency.html: "InvalidGroup.NotFound … retry").
    /// terraform `RetryWhenNewResourceNotFound` and `tags.go::createTags` (5 min).
    pub const EC2_NEW_RESOURCE: Propagation = Propagation {
        waiting_for: "EC2 to propagate a resource created moments ago",
        answers: &[Answer { code: Code::EndsWith(".NotFound"), message: None }],
        limit: EC2_PROPAGATION,
    };

    /// DynamoDB UpdateContinuousBackups on a table created moments ago ("Backups are being
    /// enabled for the table"): API_UpdateContinuousBackups, terraform `table.go::updatePITR`.
    pub const DYNAMODB_BACKUPS: Propagation = Propagation {
        waiting_for: "DynamoDB to enable backups on the new table",
        answers: &[Answer::code("ContinuousBackupsUnavailableException")],
        limit: Duration::from_secs(20 * 60),
    };

    /// Secrets Manager RotateSecret right after the rotation function's permission was added
    /// ("Secrets Manager cannot invoke the specified Lambda function"), or its role made:
    /// terraform `secretsmanager/secret_rotation.go` (2 min).
    pub const SECRETS_ROTATION: Propagation = Propagation {
        waiting_for: "Lambda to propagate the permission letting Secrets Manager invoke the rotation function",
        answers: &[
            Answer::says("AccessDeniedException", "cannot invoke the specified Lambda function"),
            Answer::says("InvalidRequestException", "unable to assume role"),
        ],
        limit: IAM_PROPAGATION,
    };

    /// CloudWatch Logs CreateLogGroup / AssociateKmsKey with a key created moments ago: the key
    /// or its policy statement for the Logs service is not yet visible to Logs ("The specified KMS
    /// key does not exist or is not allowed to be used"; encrypt-log-data-kms.html: the key's
    /// association "can take up to five minutes"). terraform does not retry it; tapctl does,
    /// because its key and log groups are made in the same run.
    pub const LOGS_NEW_KEY: Propagation = Propagation {
        waiting_for: "KMS to propagate the new key's policy to CloudWatch Logs",
        answers: &[
            Answer::says("AccessDeniedException", "KMS key"),
            Answer::says("InvalidParameterException", "KMS Key Id could not be found"),
        ],
        limit: Duration::from_secs(5 * 60),
    };

    /// API Gateway UpdateAccount right after the CloudWatch role was made ("The role ARN does not
    /// have required permissions set to API Gateway"; set-up-logging.html), terraform
    /// `apigateway/account.go` (2 min).
    pub const APIGATEWAY_ACCOUNT_ROLE: Propagation = Propagation {
        waiting_for: "IAM to propagate the logging role to API Gateway",
        answers: &[
            Answer::says("BadRequestException", "does not have required permissions"),
            Answer::says("BadRequestException", "could not successfully write to CloudWatch Logs"),
        ],
        limit: IAM_PROPAGATION,
    };

    /// API Gateway CreateBasePathMapping right after the custom domain (or the stage) was made:
    /// "BadRequestException: Invalid domain name identifier specified" / "Invalid stage identifier
    /// specified" until the new domain has propagated. terraform
    /// `apigateway/base_path_mapping.go` retries every BadRequestException for 30 s; only these
    /// two answers are retried here, so a real refusal (a certificate of another region) ends at once.
    pub const APIGATEWAY_NEW_DOMAIN: Propagation = Propagation {
        waiting_for: "API Gateway to propagate the new custom domain",
        answers: &[
            Answer::says("BadRequestException", "Invalid domain name identifier"),
            Answer::says("BadRequestException", "Invalid stage identifier"),
        ],
        limit: Duration::from_secs(60),
    };

    /// API Gateway DeleteDomainName: a quota of one call every 30 seconds per account (API
    /// Gateway quotas, "DeleteDomainName"), answered TooManyRequestsException — also when other
    /// stacks of the account delete theirs. terraform `apigateway/domain_name.go` leaves it to the
    /// SDK's throttling retries, which give up after seconds.
    pub const APIGATEWAY_DOMAIN_DELETE: Propagation = Propagation {
        waiting_for: "API Gateway's one-per-30-seconds quota on deleting custom domains",
        answers: &[Answer::code("TooManyRequestsException")],
        limit: Duration::from_secs(5 * 60),
    };

    /// API Gateway stage logging right after the account's CloudWatch role was set ("CloudWatch
    /// Logs role ARN must be set in account settings to enable logging"): the account setting is
    /// eventually consistent. terraform does not retry it (catalogue finding 4).
    pub const APIGATEWAY_STAGE_LOGGING: Propagation = Propagation {
        waiting_for: "API Gateway to propagate the account's CloudWatch role to the stage",
        answers: &[Answer::says("BadRequestException", "CloudWatch Logs role ARN must be set")],
        limit: IAM_PROPAGATION,
    };

    /// AssociateWebACL right after the web ACL or the API stage was made: WAF "couldn't retrieve
    /// the resource that you requested. Retry your request." (WAFUnavailableEntityException).
    /// terraform `wafv2/web_acl_association.go` retries it for 10 minutes (issues #17527, #29080:
    /// 5 were not always enough). For the WAF node of the PCI DSS issue, which associates the ACL
    /// with the stage `api.rest` makes.
    pub const WAFV2_ASSOCIATION: Propagation = Propagation {
        waiting_for: "WAF to see the new web ACL and API stage",
        answers: &[Answer::code("WAFUnavailableEntityException")],
        limit: Duration::from_secs(10 * 60),
    };

    /// CreateFlowLogs right after the flow logs' delivery role was made: EC2 cannot yet assume it
    /// ("Unable to assume given IAM role"). terraform `ec2/vpc_flow_log.go` retries exactly this
    /// answer (InvalidParameter + message) for `iamPropagationTimeout` (2 min). The same role not
    /// yet usable *after* a create shows as the flow log's DeliverLogsStatus FAILED ("Access
    /// error"), which AWS keeps retrying itself; `network.flow-logs` reports it, never waits on it.
    pub const FLOW_LOGS_ROLE: Propagation = Propagation {
        waiting_for: "IAM to propagate the flow logs' delivery role to VPC Flow Logs",
        answers: &[Answer::says("InvalidParameter", "Unable to assume given IAM role")],
        limit: IAM_PROPAGATION,
    };

    /// CloudTrail CreateTrail / UpdateTrail right after what CloudTrail checks when it accepts a
    /// trail was made or changed in the same run:
    /// - the role it assumes to write into the log group: "Access denied. Check the trust
    ///   relationships for your role." (InvalidCloudWatchLogsRoleArnException) or "Access denied.
    ///   Verify in IAM that the role has adequate permissions."
    ///   (InvalidCloudWatchLogsLogGroupArnException). terraform `cloudtrail/trail.go` retries
    ///   exactly these two ("Access denied.") for its `propagationTimeout`, 2 min
    ///   (`cloudtrail/consts.go`);
    /// - the trail bucket's policy (InsufficientS3BucketPolicyException, "Incorrect S3 bucket
    ///   policy is detected for bucket") and the key policy's CloudTrail statement
    ///   (InsufficientEncryptionPolicyException, "Insufficient permissions to access S3 bucket …
    ///   or KMS key …"): S3 bucket configuration and KMS key policies are eventually consistent
    ///   (S3 user guide, "Amazon S3 data consistency model"; KMS developer guide, "Key policy
    ///   changes … eventual consistency"). terraform does not retry these (its users write the
    ///   policy in the same apply and re-run); tapctl does, because `storage.trail-bucket` and
    ///   `kms.key` write them in the same run. After 2 minutes a policy is wrong, not late, and
    ///   the error names which.
    pub const CLOUDTRAIL_DELIVERY: Propagation = Propagation {
        waiting_for: "IAM, S3 and KMS to propagate the trail's role, bucket policy and key policy to CloudTrail",
        answers: &[
            Answer::says("InvalidCloudWatchLogsRoleArnException", "Access denied."),
            Answer::says("InvalidCloudWatchLogsLogGroupArnException", "Access denied."),
            Answer::code("InsufficientS3BucketPolicyException"),
            Answer::code("InsufficientEncryptionPolicyException"),
        ],
        limit: IAM_PROPAGATION,
    };

    /// UpdateWebACL while another writer changed the ACL (WAFOptimisticLockException: its lock
    /// token moved on; the caller reads the token again before each retry) or while WAF does not
    /// yet see the ACL (WAFUnavailableEntityException). API_UpdateWebACL; terraform
    /// `wafv2/web_acl.go` retries both for 5 minutes. For `waf.web-acl`.
    pub const WAFV2_WEB_ACL_UPDATE: Propagation = Propagation {
        waiting_for: "WAF to settle the web ACL (another change moved its lock token on)",
        answers: &[Answer::code("WAFOptimisticLockException"), Answer::code("WAFUnavailableEntityException")],
        limit: Duration::from_secs(5 * 60),
    };

    /// DeleteWebACL right after its associations were removed: WAF still sees one for a while
    /// (WAFAssociatedItemException), or the lock token moved on. API_DeleteWebACL ("first
    /// disassociate it from all resources"); terraform `wafv2/web_acl.go` retries for 5 minutes.
    pub const WAFV2_WEB_ACL_DELETE: Propagation = Propagation {
        waiting_for: "WAF to see the web ACL disassociated from every resource",
        answers: &[
            Answer::code("WAFAssociatedItemException"),
            Answer::code("WAFUnavailableEntityException"),
            Answer::code("WAFOptimisticLockException"),
        ],
        limit: Duration::from_secs(5 * 60),
    };

    /// S3 configuration calls (PutPublicAccessBlock, PutBucketEncryption, PutBucketVersioning,
    /// PutObjectLockConfiguration, PutBucketPolicy, PutBucketLogging…) right after CreateBucket:
    /// S3 may not yet see the bucket (NoSuchBucket). Bucket configuration is eventually consistent
    /// (S3 User Guide, "Amazon S3 data consistency model"); terraform retries NoSuchBucket on each
    /// of these calls for `bucketPropagationTimeout`, 2 min (`s3/bucket_*.go`, catalogue §7).
    /// Only on a bucket the same run created: one that was there and is gone is drift.
    pub const S3_NEW_BUCKET: Propagation = Propagation {
        waiting_for: "S3 to propagate a bucket created moments ago",
        answers: &[Answer::code("NoSuchBucket")],
        limit: Duration::from_secs(2 * 60),
    };

    /// CreateBackupSelection right after the backup role was made: "IAM Role arn:aws:iam::…:role/…
    /// cannot be assumed by AWS Backup", or its managed policies are not yet seen ("… is not
    /// authorized to call tag:GetResources"), both InvalidParameterValueException. terraform
    /// `backup/selection.go` retries exactly these two messages for `propagationTimeout` (2 min).
    pub const BACKUP_SELECTION_ROLE: Propagation = Propagation {
        waiting_for: "IAM to propagate the backup role to AWS Backup",
        answers: &[
            Answer::says("InvalidParameterValueException", "cannot be assumed"),
            Answer::says("InvalidParameterValueException", "is not authorized to call"),
        ],
        limit: IAM_PROPAGATION,
    };

    /// DeleteBackupVault right after the vault's last recovery point was deleted: the vault's
    /// count of recovery points lags behind the deletions (DeleteRecoveryPoint is asynchronous:
    /// API_DeleteRecoveryPoint, "the recovery point is DELETING"), and AWS Backup answers
    /// InvalidRequestException "Backup vault cannot be deleted (contains N recovery points)".
    /// Only after `until_gone` saw the vault's list empty; terraform `backup/vault.go` deletes the
    /// recovery points first (force_destroy) and then the vault.
    pub const BACKUP_VAULT_EMPTYING: Propagation = Propagation {
        waiting_for: "AWS Backup to count the vault's deleted recovery points",
        answers: &[Answer::says("InvalidRequestException", "recovery points")],
        limit: Duration::from_secs(5 * 60),
    };

    /// BatchEnableStandards (and any Security Hub call) right after EnableSecurityHub: "Account
    /// … is not subscribed to AWS Security Hub" (InvalidAccessException) while the new
    /// subscription propagates. terraform treats this answer as "no hub" in every Security Hub
    /// finder (`securityhub/*.go`, `errCodeInvalidAccessException`); it does not retry it, its users
    /// order the standards after the account resource. tapctl enables both in one run. For
    /// `account.controls`.
    pub const SECURITYHUB_NEW_HUB: Propagation = Propagation {
        waiting_for: "Security Hub to see the account's new subscription",
        answers: &[Answer::says("InvalidAccessException", "not subscribed to AWS Security Hub")],
        limit: IAM_PROPAGATION,
    };

    /// PutDeliveryChannel right after the bucket's policy, its key or the recorder were made:
    /// InsufficientDeliveryPolicyException ("Insufficient delivery policy to s3 bucket") while S3
    /// and KMS propagate the policy; NoAvailableConfigurationRecorderException while the recorder
    /// put moments before is not yet seen. terraform `configservice/delivery_channel.go` retries the
    /// first for `propagationTimeout` (2 min). For `account.controls`.
    pub const CONFIG_DELIVERY: Propagation = Propagation {
        waiting_for: "S3, KMS and AWS Config to propagate the delivery bucket's policy and the recorder",
        answers: &[
            Answer::code("InsufficientDeliveryPolicyException"),
            Answer::code("NoAvailableConfigurationRecorderException"),
        ],
        limit: IAM_PROPAGATION,
    };

    /// DeleteDeliveryChannel right after StopConfigurationRecorder: "there is a running
    /// configuration recorder" (LastDeliveryChannelDeleteFailedException) until the stop is seen.
    /// terraform `configservice/delivery_channel.go` retries exactly this answer (30 s; one minute
    /// here, the catalogue's floor). For `account.controls`.
    pub const CONFIG_CHANNEL_DELETE: Propagation = Propagation {
        waiting_for: "AWS Config to see its recorder stopped",
        answers: &[Answer::says("LastDeliveryChannelDeleteFailedException", "running configuration recorder")],
        limit: Duration::from_secs(60),
    };

    /// Secrets Manager PutResourcePolicy while a role the policy names is new: "This resource
    /// policy contains an unsupported principal" (MalformedPolicyDocumentException) until IAM has
    /// propagated the role to Secrets Manager. terraform `secretsmanager/secret_policy.go` retries
    /// exactly this message for its `PropagationTimeout`, 2 min (`secretsmanager/consts.go`). For
    /// `secrets.policies`, which runs in the run that made the functions' roles. Any other
    /// malformed-policy answer is a real error.
    pub const SECRETS_POLICY_PRINCIPAL: Propagation = Propagation {
        waiting_for: "IAM to propagate the roles the secret's resource policy names to Secrets Manager",
        answers: &[Answer::says(
            "MalformedPolicyDocumentException",
            "This resource policy contains an unsupported principal",
        )],
        limit: IAM_PROPAGATION,
    };

    /// Every entry, for the catalogue's own tests and the harness.
    pub const ALL: &[&Propagation] = &[
        &SECRETS_POLICY_PRINCIPAL,
        &S3_NEW_BUCKET,
        &SECURITYHUB_NEW_HUB,
        &CONFIG_DELIVERY,
        &CONFIG_CHANNEL_DELETE,
        &LAMBDA_FUNCTION,
        &LAMBDA_UPDATE_IN_PROGRESS,
        &EC2_NEW_RESOURCE,
        &DYNAMODB_BACKUPS,
        &SECRETS_ROTATION,
        &LOGS_NEW_KEY,
        &APIGATEWAY_ACCOUNT_ROLE,
        &APIGATEWAY_STAGE_LOGGING,
        &APIGATEWAY_NEW_DOMAIN,
        &APIGATEWAY_DOMAIN_DELETE,
        &WAFV2_ASSOCIATION,
        &WAFV2_WEB_ACL_UPDATE,
        &WAFV2_WEB_ACL_DELETE,
        &CLOUDTRAIL_DELIVERY,
        &FLOW_LOGS_ROLE,
        &BACKUP_SELECTION_ROLE,
        &BACKUP_VAULT_EMPTYING,
    ];
}

/// What one poll of a resource's state says. Each resource's matcher is exhaustive: a state it
/// does not know is `Pending` (shown, and bounded), never `Ready`.
#[derive(Debug)]
pub enum Readiness<T> {
    Ready(T),
    Pending(String),
    /// AWS says the resource failed: waiting longer cannot help.
    Failed(String),
    /// Not there. Right after a create that is AWS's read-after-write lag; after that, it was
    /// deleted behind tapctl's back.
    Absent,
}

impl Ctx {
    /// Calls `call` again while it answers one of `p`'s propagation answers, for at most
    /// `p.limit` (and `--max-wait`). `subject` names what is propagating, for the progress line.
    pub async fn retry_while_propagating<T, F, Fut>(&self, p: &Propagation, subject: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, AwsError>>,
    {
        let last: Mutex<Option<AwsError>> = Mutex::new(None);
        let policy = self.waits.bounded(WaitPolicy { limit: p.limit, ..self.waits.propagation });
        let reason = format!("{} ({subject})", p.waiting_for);
        let outcome = wait::until(&self.progress, &reason, policy, || {
            let attempt = call();
            let last = &last;
            async move {
                match attempt.await {
                    Ok(v) => Ok(Poll::Ready(v)),
                    Err(e) if p.matches(&e) => {
                        let seen = format!("{} answered {}", e.operation, e.code.as_deref().unwrap_or("an error"));
                        *last.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
                        Ok(Poll::NotYet(seen))
                    }
                    Err(e) => Err(ResourceError::from(e)),
                }
            }
        })
        .await;
        match outcome {
            Ok(v) => Ok(v),
            Err(WaitError::Check(e)) => Err(e),
            Err(WaitError::TimedOut { waited, .. }) => {
                let e = last.into_inner().unwrap_or_else(|x| x.into_inner());
                let (code, message) = match e {
                    Some(e) => (e.code.unwrap_or_default(), format!("{}: {}", e.operation, e.message)),
                    None => ("WaitTimeout".to_string(), reason.clone()),
                };
                Err(ResourceError::new(
                    &code,
                    format!("{message} (still so after {}s of waiting for {})", waited.as_secs(), p.waiting_for),
                )
                .with_hint("if AWS was only slow, re-run the same command: it resumes where it stopped"))
            }
        }
    }

    /// Polls `poll` until the resource is ready; a failed state ends the wait at once, and so
    /// does an absent resource once the read-after-create window
    /// (`waits.eventual_consistency`) has passed.
    pub async fn until_ready<T, F, Fut>(&self, what: &str, policy: WaitPolicy, mut poll: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Readiness<T>>>,
    {
        let started = Instant::now();
        let visible_within = self.waits.eventual_consistency.limit;
        let reason = format!("{what} to be ready");
        Ok(wait::until(&self.progress, &reason, self.waits.bounded(policy), || {
            let polled = poll();
            async move {
                match polled.await? {
                    Readiness::Ready(v) => Ok(Poll::Ready(v)),
                    Readiness::Pending(state) => Ok(Poll::NotYet(state)),
                    Readiness::Failed(why) => {
                        Err(ResourceError::new("ResourceFailed", format!("AWS reports {what} as failed: {why}")))
                    }
                    Readiness::Absent if started.elapsed() < visible_within => {
                        Ok(Poll::NotYet("not visible yet".into()))
                    }
                    Readiness::Absent => Err(ResourceError::new(
                        "NotFound",
                        format!("{what} is absent: it was deleted while tapctl waited for it"),
                    )
                    .with_hint("re-run the same command: it creates what is missing")),
                }
            }
        })
        .await?)
    }

    /// Polls `poll` (Some(state) while the resource still exists) until it is gone.
    pub async fn until_gone<F, Fut>(&self, what: &str, policy: WaitPolicy, mut poll: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<String>>>,
    {
        Ok(wait::until(&self.progress, &format!("{what} to be gone"), self.waits.bounded(policy), || {
            let polled = poll();
            async move { Ok(polled.await?.map_or(Poll::Ready(()), Poll::NotYet)) }
        })
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::catalogue::*;
    use super::*;

    fn err(code: &str, message: &str) -> AwsError {
        AwsError {
            operation: "lambda:CreateFunction".into(),
            code: Some(code.into()),
            message: message.into(),
            transient: false,
        }
    }

    #[test]
    fn the_lambda_answers_match_aws_messages_and_nothing_broader() {
        for documented in [
            "The role defined for the function cannot be assumed by Lambda.",
            "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
            "Lambda was unable to configure access to your environment variables because the KMS key is invalid \
             for CreateGrant. Please check your KMS key settings.",
            "Your request has been throttled by EC2, please make sure you have enough API rate limit.",
        ] {
            assert!(LAMBDA_FUNCTION.matches(&err("InvalidParameterValueException", documented)), "{documented}");
        }
        // The same code for a real mistake is not retried.
        assert!(!LAMBDA_FUNCTION.matches(&err("InvalidParameterValueException", "Unzipped size must be smaller")));
        assert!(!LAMBDA_FUNCTION.matches(&err("AccessDeniedException", "cannot be assumed by Lambda")));
    }

    #[test]
    fn ec2_retries_any_not_found_of_a_new_resource_but_no_other_code() {
        for code in ["InvalidGroup.NotFound", "InvalidSubnetID.NotFound", "InvalidRouteTableID.NotFound"] {
            assert!(EC2_NEW_RESOURCE.matches(&err(code, "does not exist")), "{code}");
        }
        assert!(!EC2_NEW_RESOURCE.matches(&err("InvalidParameterValue", "does not exist")));
        assert!(!EC2_NEW_RESOURCE.matches(&err("DependencyViolation", "has dependencies")));
    }

    #[test]
    fn waf_association_retries_only_the_unavailable_entity_answer() {
        assert!(
            WAFV2_ASSOCIATION.matches(&err("WAFUnavailableEntityException", "AWS WAF couldn't retrieve the resource"))
        );
        assert!(!WAFV2_ASSOCIATION.matches(&err("WAFNonexistentItemException", "not found")));
        assert!(!WAFV2_ASSOCIATION.matches(&err("WAFInvalidParameterException", "bad ARN")));
    }

    #[test]
    fn backup_retries_only_the_role_and_vault_count_answers() {
        let role = "IAM Role arn:aws:iam::123456789012:role/payments-backup-qa cannot be assumed by AWS Backup";
        assert!(BACKUP_SELECTION_ROLE.matches(&err("InvalidParameterValueException", role)));
        let policies = "IAM Role arn:aws:iam::1:role/r is not authorized to call tag:GetResources";
        assert!(BACKUP_SELECTION_ROLE.matches(&err("InvalidParameterValueException", policies)));
        assert!(!BACKUP_SELECTION_ROLE.matches(&err("InvalidParameterValueException", "Invalid ARN")));
        let count = "Backup vault cannot be deleted (contains 2 recovery points)";
        assert!(BACKUP_VAULT_EMPTYING.matches(&err("InvalidRequestException", count)));
        assert!(!BACKUP_VAULT_EMPTYING.matches(&err("AccessDeniedException", count)));
    }

    #[test]
    fn a_secret_policy_naming_a_new_role_is_retried_and_no_other_malformed_policy() {
        let code = "MalformedPolicyDocumentException";
        assert!(SECRETS_POLICY_PRINCIPAL.matches(&err(code, "This resource policy contains an unsupported principal.")));
        assert!(!SECRETS_POLICY_PRINCIPAL.matches(&err(code, "This resource policy contains a syntax error.")));
        assert!(!SECRETS_POLICY_PRINCIPAL.matches(&err("AccessDeniedException", "contains an unsupported principal")));
    }

    #[test]
    fn every_catalogue_entry_names_what_it_waits_for_and_is_bounded() {
        for p in ALL {
            assert!(!p.answers.is_empty() && !p.waiting_for.is_empty());
            assert!(p.limit >= Duration::from_secs(60) && p.limit <= Duration::from_secs(20 * 60), "{p:?}");
        }
    }
}
