"""The AWS emulator as tapctl's test harness runs it: moto's server, with small documented
extensions that close gaps between moto and AWS which tapctl's tests must see through.
Nothing here changes what tapctl does; it makes the emulator answer more like AWS.

Extensions (each tested in tests/integration/harness_tests.rs):

1. S3 bucket policies see the request context of an SDK talking to AWS. moto evaluates a bucket
   policy without any request context, ignores the Bool and Numeric* operators, and treats a
   statement whose Condition does not hold as a Deny, whatever its Effect. A TLS-only policy
   (Deny when aws:SecureTransport is false) then blocks every upload, which AWS allows over HTTPS.
   Here policies are evaluated with the context of an HTTPS request (aws:SecureTransport = true,
   s3:TlsVersion = 1.3: the SDK negotiates TLS 1.2 or newer), Bool and NumericLessThan are
   implemented, and a statement whose Condition does not hold does not apply (AWS's rule).

2. GetBucketVersioning answers with the root element AWS sends, <VersioningConfiguration>.
   moto 5.2.5 names it <GetBucketVersioningResponse>; boto3 does not mind, the Rust SDK (rightly)
   refuses the document.

3. Deleting an Aurora cluster removes its automated backups unless DeleteAutomatedBackups is
   false — AWS's default. moto keeps an automated snapshot named after the minute, so creating
   the same cluster again (a destroy, then an up) fails with DBClusterSnapshotAlreadyExistsFault.

4. ModifyDBSubnetGroup keeps the group. moto 5.2.5 removes it from its registry while modifying
   it and never puts it back, so the group vanishes after any change of its subnets.

5. GetSecretValue without VersionId or VersionStage returns the AWSCURRENT version, as AWS does.
   moto returns its "default version", which UpdateSecretVersionStage never moves: after a
   rotation's finishSecret step moto kept answering with the old password.

6. API Gateway stages keep canarySettings, as AWS does. moto 5.2.5 drops every
   /canarySettings/... patch of UpdateStage and never returns canarySettings from GetStage, so a
   canary (`tapctl shift`) could not be observed at all. Here UpdateStage applies
   replace /canarySettings/percentTraffic (0.0-100.0, else BadRequestException, as AWS),
   replace /canarySettings/deploymentId, replace /canarySettings/useStageCache,
   replace|remove /canarySettings/stageVariableOverrides/<name> and remove /canarySettings, and
   GetStage returns them. (CreateDeployment's canarySettings are still dropped; tapctl does not
   use them.)

7. Lambda keeps a function's LoggingConfig (LogFormat, LogGroup, log levels), as AWS does.
   moto 5.2.5 ignores it in CreateFunction and UpdateFunctionConfiguration and never returns it,
   so JSON logs to the function's own log group could not be read back. Without one, AWS's
   default is returned: Text format to /aws/lambda/<function name>.

8. UpdateFunctionCode takes the new code's Architectures, as AWS does. moto 5.2.5 ignores it, so
   a function made for x86_64 kept reporting x86_64 after arm64 code was uploaded.

9. FilterLogEvents interleaves the events of all the group's streams in time order, as AWS has
   done since June 2019 (the SDK deprecates the `interleaved` parameter; AWS ignores it). moto
   5.2.5 does so only when asked with interleaved=true, and otherwise returns one stream's events
   after another's, so `tapctl logs` printed a function's instances one after the other instead
   of as they happened. (Tested in tests/integration/logs.rs.)

10. RDS event subscriptions can be changed, as AWS's can: ModifyEventSubscription (SnsTopicArn,
   SourceType, EventCategories, Enabled), AddSourceIdentifierToSubscription and
   RemoveSourceIdentifierFromSubscription, which moto 5.2.5 does not implement; adding a DB
   instance or cluster that does not exist answers SourceNotFound, an unknown subscription
   SubscriptionNotFound, as AWS. CreateEventSubscription without Enabled makes an enabled
   subscription (AWS's default; moto's was disabled).

11. CloudWatch Logs metric filters are kept as AWS keeps them: PutMetricFilter creates the filter
   or replaces the one of the same name on the same group (moto 5.2.5 appends a second filter of
   that name, so a repaired pattern left the old one beside it), and DeleteLogGroup deletes the
   group's metric filters with it (moto kept them, matching a group that no longer exists).

12. A VPC's default security group holds the rules AWS gives it: an allow-all ingress rule from the
   group itself beside the allow-all egress rule. moto 5.2.5 makes it with the egress rule only, so
   a stack that never removed the ingress rule could not be told from one that did.

13. S3 Object Lock can be turned on for an existing bucket, as AWS has allowed since November 2023
   (PutObjectLockConfiguration with ObjectLockEnabled=Enabled on a bucket whose versioning is
   Enabled; S3 User Guide, "Enable Object Lock on an existing S3 bucket"). moto 5.2.5 refuses it
   for any bucket that holds an object ("InvalidBucket: Bucket needs to be empty"), so a stack made
   before its audit bucket was locked could not be locked in place. Versioning is still required
   (InvalidBucketState otherwise, as on AWS and moto).

14. WAFv2 web ACLs and their associations behave as AWS's: ListResourcesForWebACL (absent from
   moto 5.2.5) answers the ARNs of the resources of the asked ResourceType the ACL guards
   (APPLICATION_LOAD_BALANCER when none is asked, as AWS), each once; DeleteWebACL of an ACL that
   still guards a resource answers WAFAssociatedItemException (moto deleted it and left the
   association dangling; API_DeleteWebACL: "first disassociate it from all resources"); and a
   CreateWebACL of a name that exists answers AWS's code, WAFDuplicateItemException (moto:
   WafV2DuplicateItem).

15. PutBucketLogging reads the target bucket's policy as AWS does, whatever else it holds. moto 5.2.5
   looks for the log delivery grant assuming every statement's Principal is an object, and fails
   with an internal error (HTTP 500) on `"Principal": "*"`, which a TLS-only Deny statement has;
   here such statements are passed over (they grant nothing), and the check is moto's own.

Speed (no change to any answer): moto looks up which service a request is for by listing its own
package folder (twice per request) and trying ~200 URL patterns; both are computed once per host here.
A DynamoDB query on an index sorts the whole table with DynamoType comparisons before keeping the
items of the asked partition (O(n log n) per query: a test of 1,000 payments, each with a velocity
query, spent a third of moto's CPU there); here only the partition's items are sorted, in the same
order, so the answer is the same (tested with the 1,000-payment test's own queries and in
harness_tests.rs).

Usage: python server.py -H 127.0.0.1 -p PORT   (the same arguments as moto_server)
       python server.py --zygote               (the test harness: a warm server per test, below)

The zygote. Most of a fresh moto's CPU in a test went into warming up, not into answering:
importing moto, parsing botocore's service models, building a Flask app per service and loading
IAM's ~1,300 AWS managed policies (py-spy: over half of moto's samples for an up and a destroy).
In `--zygote` mode this process does that once, by answering one read per service, then forks a
server per line "HOST PORT" read on stdin and answers the child's pid. Each test still gets its
own process with no state of another test's (the fork copies only what the reads made: the
defaults AWS has in a new account), and dies with the zygote, which dies when the harness closes
its stdin.
"""

import json
import os
import random
import signal
import threading
import sys

from moto.iam import policy_conditions
from moto.iam import access_control
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3 import models as s3_models

# What an SDK request to AWS looks like to a bucket policy.
HTTPS_REQUEST_CONTEXT = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.3"}


def _bool_equals(expected, actual):
    values = expected if isinstance(expected, list) else [expected]
    return any(str(v).lower() == str(actual).lower() for v in values)


def _numeric_less_than(expected, actual):
    values = expected if isinstance(expected, list) else [expected]
    return any(float(actual) < float(v) for v in values)


policy_conditions.CONDITION_OPERATIONS.setdefault("Bool", _bool_equals)
policy_conditions.CONDITION_OPERATIONS.setdefault("NumericLessThan", _numeric_less_than)


def _get_permission(self, action, resource):
    if self.policy is None:
        return PermissionResult.NEUTRAL
    policy = IAMPolicy(self.policy.decode())
    return policy.is_action_permitted(action, resource, incoming_condition_values=HTTPS_REQUEST_CONTEXT)


s3_models.FakeBucket.get_permission = _get_permission

_statement_is_action_permitted = access_control.IAMPolicyStatement.is_action_permitted


def _statement_applies(self, action, resource="*", principal=None, incoming_condition_values=None):
    # AWS: a statement whose Condition does not hold does not apply (neither allows nor denies).
    if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
        return PermissionResult.NEUTRAL
    return _statement_is_action_permitted(self, action, resource, principal, incoming_condition_values)


access_control.IAMPolicyStatement.is_action_permitted = _statement_applies

from moto.s3 import responses as s3_responses


def _get_bucket_versioning(self):
    status = self.backend.get_bucket_versioning(self.bucket_name)
    inner = f"<Status>{status}</Status>" if status else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</VersioningConfiguration>'
    )
    return 200, {"Content-Type": "application/xml"}, body


s3_responses.S3Response.get_bucket_versioning = _get_bucket_versioning

from moto.rds import responses as rds_responses

_delete_db_cluster = rds_responses.RDSResponse.delete_db_cluster


def _delete_db_cluster_and_its_automated_backups(self):
    cluster_id = self.params.get("DBClusterIdentifier")
    keep = str(self.params.get("DeleteAutomatedBackups", "true")).lower() == "false"
    result = _delete_db_cluster(self)
    if not keep:
        snapshots = self.backend.cluster_snapshots
        for snapshot_id, snapshot in list(snapshots.items()):
            if snapshot.snapshot_type == "automated" and snapshot.cluster.db_cluster_identifier == cluster_id:
                del snapshots[snapshot_id]
    return result


rds_responses.RDSResponse.delete_db_cluster = _delete_db_cluster_and_its_automated_backups

from moto.rds import models as rds_models

_modify_db_subnet_group = rds_models.RDSBackend.modify_db_subnet_group


def _modify_db_subnet_group_and_keep_it(self, subnet_name, description, subnets):
    group = _modify_db_subnet_group(self, subnet_name, description, subnets)
    self.subnet_groups[subnet_name] = group
    return group


rds_models.RDSBackend.modify_db_subnet_group = _modify_db_subnet_group_and_keep_it

from moto.secretsmanager import models as secretsmanager_models

_get_secret_value = secretsmanager_models.SecretsManagerBackend.get_secret_value


def _get_secret_value_current_by_default(self, secret_id, version_id, version_stage):
    if not version_id and not version_stage:
        version_stage = "AWSCURRENT"
    return _get_secret_value(self, secret_id, version_id, version_stage)


secretsmanager_models.SecretsManagerBackend.get_secret_value = _get_secret_value_current_by_default

from moto.apigateway import models as apigateway_models
from moto.apigateway.exceptions import BadRequestException

_stage_apply_operations = apigateway_models.Stage.apply_operations
_stage_to_json = apigateway_models.Stage.to_json


def _apply_canary_operation(stage, op):
    path, kind = op["path"], op["op"]
    if path == "/canarySettings" and kind == "remove":
        stage.canary_settings = None
        return
    canary = getattr(stage, "canary_settings", None) or {}
    field = path[len("/canarySettings/"):]
    if field.startswith("stageVariableOverrides/"):
        name = field[len("stageVariableOverrides/"):]
        overrides = canary.setdefault("stageVariableOverrides", {})
        if kind == "remove":
            overrides.pop(name, None)
        else:
            overrides[name] = op["value"]
    elif field == "percentTraffic" and kind == "replace":
        percent = float(op["value"])
        if not 0.0 <= percent <= 100.0:
            raise BadRequestException("Canary percentTraffic must be between 0.0 and 100.0")
        canary["percentTraffic"] = percent
    elif field == "deploymentId" and kind == "replace":
        canary["deploymentId"] = op["value"]
    elif field == "useStageCache" and kind == "replace":
        canary["useStageCache"] = str(op["value"]).lower() == "true"
    else:
        raise BadRequestException(f"Invalid patch path {path}")
    stage.canary_settings = canary


def _stage_apply_operations_with_canary(self, patch_operations):
    rest = []
    for op in patch_operations:
        if op["path"].startswith("/canarySettings"):
            _apply_canary_operation(self, op)
        else:
            rest.append(op)
    return _stage_apply_operations(self, rest)


def _stage_to_json_with_canary(self):
    out = _stage_to_json(self)
    canary = getattr(self, "canary_settings", None)
    if canary is not None:
        out["canarySettings"] = {"percentTraffic": 0.0, "useStageCache": False, **canary}
    return out


apigateway_models.Stage.apply_operations = _stage_apply_operations_with_canary
apigateway_models.Stage.to_json = _stage_to_json_with_canary

from moto.awslambda import models as lambda_models

_lambda_init = lambda_models.LambdaFunction.__init__
_lambda_get_configuration = lambda_models.LambdaFunction.get_configuration
_lambda_update_configuration = lambda_models.LambdaFunction.update_configuration


def _lambda_init_with_logging(self, account_id, spec, region, version=1):
    _lambda_init(self, account_id, spec, region, version)
    self.logging_config = spec.get("LoggingConfig")


def _lambda_get_configuration_with_logging(self, on_create=False):
    config = _lambda_get_configuration(self, on_create)
    default = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{self.function_name}"}
    config["LoggingConfig"] = {**default, **(getattr(self, "logging_config", None) or {})}
    return config


def _lambda_update_configuration_with_logging(self, config_updates):
    if "LoggingConfig" in config_updates:
        self.logging_config = config_updates["LoggingConfig"]
    return _lambda_update_configuration(self, config_updates)


_lambda_update_function_code = lambda_models.LambdaFunction.update_function_code


def _lambda_update_function_code_with_architectures(self, updated_spec):
    # AWS: UpdateFunctionCode takes Architectures (the new code's); moto ignores it, and a
    # function would keep running arm64 code as x86_64.
    if "Architectures" in updated_spec:
        self.architectures = updated_spec["Architectures"]
    return _lambda_update_function_code(self, updated_spec)


lambda_models.LambdaFunction.update_function_code = _lambda_update_function_code_with_architectures
lambda_models.LambdaFunction.__init__ = _lambda_init_with_logging
lambda_models.LambdaFunction.get_configuration = _lambda_get_configuration_with_logging
lambda_models.LambdaFunction.update_configuration = _lambda_update_configuration_with_logging


from moto.logs import models as logs_models

_log_group_filter_log_events = logs_models.LogGroup.filter_log_events


def _log_group_filter_log_events_interleaved(
    self, log_group_name, log_stream_names, start_time, end_time, limit, next_token, filter_pattern, interleaved
):
    # AWS ignores the parameter and always interleaves (a stable sort: ties keep stream order).
    return _log_group_filter_log_events(
        self, log_group_name, log_stream_names, start_time, end_time, limit, next_token, filter_pattern, True
    )


logs_models.LogGroup.filter_log_events = _log_group_filter_log_events_interleaved


from moto.logs.metric_filters import MetricFilters as _MetricFilters

_add_metric_filter = _MetricFilters.add_filter


def _add_or_replace_metric_filter(self, filter_name, filter_pattern, log_group_name, metric_transformations):
    # AWS: a filter is identified by its group and name; putting it again replaces it.
    self.metric_filters = [
        f for f in self.metric_filters if not (f["filterName"] == filter_name and f["logGroupName"] == log_group_name)
    ]
    return _add_metric_filter(self, filter_name, filter_pattern, log_group_name, metric_transformations)


_MetricFilters.add_filter = _add_or_replace_metric_filter

_delete_log_group = logs_models.LogsBackend.delete_log_group


def _delete_log_group_and_its_metric_filters(self, log_group_name):
    _delete_log_group(self, log_group_name)
    self.filters.metric_filters = [f for f in self.filters.metric_filters if f["logGroupName"] != log_group_name]


logs_models.LogsBackend.delete_log_group = _delete_log_group_and_its_metric_filters


# Extension 10: RDS event subscriptions can be changed.
from moto.rds import models as rds_models
from moto.rds import responses as rds_responses
from moto.rds.exceptions import RDSClientError, SubscriptionNotFoundError
from moto.core.responses import ActionResult

_event_subscription_init = rds_models.EventSubscription.__init__


def _event_subscription_init_enabled_by_default(self, backend, subscription_name, **kwargs):
    _event_subscription_init(self, backend, subscription_name, **kwargs)
    if kwargs.get("enabled") is None:
        self.enabled = True


rds_models.EventSubscription.__init__ = _event_subscription_init_enabled_by_default


def _subscription(backend, name):
    if name not in backend.event_subscriptions:
        raise SubscriptionNotFoundError(name)
    return backend.event_subscriptions[name]


def _modify_event_subscription(self):
    sub = _subscription(self.backend, self.params.get("subscription_name"))
    for key, attr in (("sns_topic_arn", "sns_topic_arn"), ("source_type", "source_type"), ("enabled", "enabled")):
        if self.params.get(key) is not None:
            setattr(sub, attr, self.params[key])
    if self.params.get("event_categories") is not None:
        sub.event_categories = list(self.params["event_categories"])
    return ActionResult({"EventSubscription": sub})


def _source_exists(backend, source_type, source_id):
    if source_type == "db-instance":
        return source_id in backend.databases
    if source_type == "db-cluster":
        return source_id in backend.clusters
    return True


def _add_source_identifier_to_subscription(self):
    sub = _subscription(self.backend, self.params.get("subscription_name"))
    source_id = self.params.get("source_identifier")
    if not _source_exists(self.backend, sub.source_type, source_id):
        raise RDSClientError("SourceNotFound", f"Could not find source {source_id}")
    if source_id not in sub.source_ids:
        sub.source_ids = list(sub.source_ids) + [source_id]
    return ActionResult({"EventSubscription": sub})


def _remove_source_identifier_from_subscription(self):
    sub = _subscription(self.backend, self.params.get("subscription_name"))
    source_id = self.params.get("source_identifier")
    if source_id not in sub.source_ids:
        raise RDSClientError("SourceNotFound", f"Could not find source {source_id} in subscription")
    sub.source_ids = [s for s in sub.source_ids if s != source_id]
    return ActionResult({"EventSubscription": sub})


rds_responses.RDSResponse.modify_event_subscription = _modify_event_subscription
rds_responses.RDSResponse.add_source_identifier_to_subscription = _add_source_identifier_to_subscription
rds_responses.RDSResponse.remove_source_identifier_from_subscription = _remove_source_identifier_from_subscription



import json as _json

from moto.wafv2 import exceptions as wafv2_exceptions
from moto.wafv2 import models as wafv2_models
from moto.wafv2 import responses as wafv2_responses


class WAFAssociatedItemException(wafv2_exceptions.WAFv2ClientError):
    def __init__(self):
        super().__init__(
            "WAFAssociatedItemException",
            "AWS WAF couldn’t perform the operation because your resource is being used by another resource "
            "or it’s associated with another resource.",
        )


def _wafv2_duplicate_with_aws_code(self):
    wafv2_exceptions.WAFv2ClientError.__init__(
        self,
        "WAFDuplicateItemException",
        "AWS WAF couldn’t perform the operation because some resource in your request is a duplicate of an "
        "existing one.",
    )


wafv2_exceptions.WAFV2DuplicateItemException.__init__ = _wafv2_duplicate_with_aws_code

_wafv2_delete_web_acl = wafv2_models.WAFV2Backend.delete_web_acl


def _wafv2_delete_web_acl_unless_associated(self, name, scope, _id, lock_token):
    for wacl in self.wacls.values():
        if wacl.name == name and wacl.id == _id and wacl.associated_resources:
            raise WAFAssociatedItemException()
    return _wafv2_delete_web_acl(self, name, scope, _id, lock_token)


wafv2_models.WAFV2Backend.delete_web_acl = _wafv2_delete_web_acl_unless_associated

# The service part of the ARN of each ResourceType (API_ListResourcesForWebACL).
_WAFV2_RESOURCE_SERVICES = {
    "APPLICATION_LOAD_BALANCER": ":elasticloadbalancing:",
    "API_GATEWAY": ":apigateway:",
    "APPSYNC": ":appsync:",
    "COGNITO_USER_POOL": ":cognito-idp:",
    "APP_RUNNER_SERVICE": ":apprunner:",
    "VERIFIED_ACCESS_INSTANCE": ":ec2:",
    "AMPLIFY": ":amplify:",
}


def _wafv2_list_resources_for_web_acl(self):
    body = _json.loads(self.body)
    wacl = self.wafv2_backend.wacls.get(body["WebACLArn"])
    if wacl is None:
        raise wafv2_exceptions.WAFNonexistentItemException()
    service = _WAFV2_RESOURCE_SERVICES.get(body.get("ResourceType") or "APPLICATION_LOAD_BALANCER", "")
    arns = sorted({arn for arn in wacl.associated_resources if service and service in arn})
    return 200, {"Content-Type": "application/json"}, _json.dumps({"ResourceArns": arns})


wafv2_responses.WAFV2Response.list_resources_for_web_acl = _wafv2_list_resources_for_web_acl


from moto import backends as moto_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

# Extension 12: a VPC's default security group admits all traffic from itself, as on AWS.
from moto.ec2.models import security_groups as ec2_security_groups

_create_security_group = ec2_security_groups.SecurityGroupBackend.create_security_group


def _create_security_group_default_admits_itself(
    self, name, description, vpc_id=None, tags=None, force=False, is_default=None
):
    group = _create_security_group(
        self, name, description, vpc_id=vpc_id, tags=tags, force=force, is_default=is_default
    )
    if is_default and group.vpc_id:
        self.authorize_security_group_ingress(
            group.id, "-1", None, None, [], source_groups=[{"GroupId": group.id}], vpc_id=group.vpc_id
        )
    return group


ec2_security_groups.SecurityGroupBackend.create_security_group = _create_security_group_default_admits_itself


# Extension 13: Object Lock turned on in place, on a versioned bucket that already holds objects.
_put_object_lock_configuration = s3_models.S3Backend.put_object_lock_configuration


def _put_object_lock_configuration_in_place(self, bucket_name, lock_enabled, mode=None, days=None, years=None):
    bucket = self.get_bucket(bucket_name)
    if bucket.is_versioned and bucket.keys.item_size() > 0:
        # moto's emptiness check is the only refusal left to skip; everything else is its own code.
        if lock_enabled:
            bucket.object_lock_enabled = True
        bucket.default_lock_mode = mode
        bucket.default_lock_days = days
        bucket.default_lock_years = years
        return
    return _put_object_lock_configuration(self, bucket_name, lock_enabled, mode=mode, days=days, years=years)


s3_models.S3Backend.put_object_lock_configuration = _put_object_lock_configuration_in_place


# Extension 15: PutBucketLogging's target policy check passes over statements of Principal "*".
def _log_permissions_for_service_principals_only(target_bucket, target_prefix):
    # moto's check (FakeBucket._log_permissions_enabled_policy), reading the policy without
    # changing it: only statements naming principals by kind can grant the log delivery service.
    if not target_bucket.policy:
        return False
    policy = target_bucket.policy
    doc = json.loads(policy.decode() if isinstance(policy, bytes) else policy)
    statements = doc.get("Statement", [])
    arn = f"arn:{target_bucket.partition}:s3:::{target_bucket.name}"
    allowed = {f"{arn}/{target_prefix or ''}*", f"{arn}/*", arn}
    for st in statements if isinstance(statements, list) else [statements]:
        principal = st.get("Principal")
        if not isinstance(principal, dict) or principal.get("Service") != s3_models.LOGGING_SERVICE_PRINCIPAL:
            continue
        if st.get("Effect", "") == "Allow" and "s3:PutObject" in st.get("Action", []) and st.get("Resource") in allowed:
            return True
    return False


s3_models.FakeBucket._log_permissions_enabled_policy = staticmethod(_log_permissions_for_service_principals_only)


# The set of moto's service modules does not change while it runs; moto lists the folder per request.
_MOTO_MODULES = frozenset(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _MOTO_MODULES

_find_backend_for_host = DomainDispatcherApplication.get_backend_for_host
_backend_for_host = {}


def _get_backend_for_host_once(self, host):
    # The answer depends only on the host and moto's fixed URL patterns.
    if host not in _backend_for_host:
        _backend_for_host[host] = _find_backend_for_host(self, host)
    return _backend_for_host[host]


DomainDispatcherApplication.get_backend_for_host = _get_backend_for_host_once

from moto.dynamodb.models.table import Table as _DynamoTable

_all_table_items = _DynamoTable.all_items
_table_query = _DynamoTable.query
_query_scope = threading.local()


def _all_items_of_the_queried_partition(self):
    # During an index query: only the items whose index hash attributes equal the query's, which
    # are the only ones moto's query loop keeps (its first test); everything else sees all items.
    conditions = getattr(_query_scope, "conditions", None)
    if conditions is None or _query_scope.table is not self:
        return _all_table_items(self)
    # Other request threads write the table meanwhile: iterate over copies (list() of a dict view
    # is one step under the GIL), never over the live dicts.
    partition = []
    for hash_set in list(self.items.values()):
        for item in list(hash_set.values()) if self.range_key_attr else [hash_set]:
            held = [item.attrs.get(name) for name, _ in conditions]
            if all(h is not None and h == value for h, (_, value) in zip(held, conditions)):
                partition.append(item)
    # The order all_items gives (primary keys are unique, so the order is total).
    partition.sort(key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)
    return partition


def _query_sorting_only_the_partition(self, *args, **kwargs):
    # moto sorts the whole table (DynamoType comparisons) for every index query: O(n log n) per
    # query, O(n^2 log n) for a test that writes and queries n payments. Same answer, less work.
    index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
    conditions = kwargs.get("hash_key_conditions")
    if not index_name or not conditions:
        return _table_query(self, *args, **kwargs)
    _query_scope.table, _query_scope.conditions = self, list(conditions)
    try:
        return _table_query(self, *args, **kwargs)
    finally:
        _query_scope.conditions = None


_DynamoTable.all_items = _all_items_of_the_queried_partition
_DynamoTable.query = _query_sorting_only_the_partition

ACCOUNT_REGION = "us-east-1"

# One cheap read per service tapctl calls, each in its protocol's shape; answering it loads the
# service's model, app and backend. (method, path, X-Amz-Target, body)
WARM_UP_READS = {
    "ec2": ("POST", "/", None, "Action=DescribeVpcs&Version=2016-11-15"),
    "iam": ("POST", "/", None, "Action=ListRoles&Version=2010-05-08"),
    "sts": ("POST", "/", None, "Action=GetCallerIdentity&Version=2011-06-15"),
    "rds": ("POST", "/", None, "Action=DescribeDBClusters&Version=2014-10-31"),
    "sns": ("POST", "/", None, "Action=ListTopics&Version=2010-03-31"),
    "monitoring": ("POST", "/", None, "Action=DescribeAlarms&Version=2010-08-01"),
    "kms": ("POST", "/", "TrentService.ListKeys", "{}"),
    "dynamodb": ("POST", "/", "DynamoDB_20120810.ListTables", "{}"),
    "ssm": ("POST", "/", "AmazonSSM.DescribeParameters", "{}"),
    "secretsmanager": ("POST", "/", "secretsmanager.ListSecrets", "{}"),
    "logs": ("POST", "/", "Logs_20140328.DescribeLogGroups", "{}"),
    "lambda": ("GET", "/2015-03-31/functions/", None, ""),
    "apigateway": ("GET", "/restapis", None, ""),
    "s3": ("GET", "/", None, ""),
    "wafv2": ("POST", "/", "AWSWAF_20190729.ListWebACLs", '{"Scope": "REGIONAL"}'),
}


def _warm_up(app):
    from werkzeug.test import Client

    client = Client(app)
    for service, (method, path, target, body) in WARM_UP_READS.items():
        headers = {
            "Host": f"{service}.{ACCOUNT_REGION}.amazonaws.com",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{ACCOUNT_REGION}/{service}/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        if target:
            headers["X-Amz-Target"] = target
            headers["Content-Type"] = "application/x-amz-json-1.1"
        elif body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        # A failed warm-up read only leaves that service cold; the servers behave the same.
        try:
            client.open(path, method=method, headers=headers, data=body)
        except Exception as e:  # noqa: BLE001
            print(f"zygote: warming up {service} failed: {e}", file=sys.stderr)


def _serve_forked(app, host, port):
    import ctypes

    from moto.moto_api._internal import mock_random
    from werkzeug.serving import run_simple

    # Die with the zygote (PR_SET_PDEATHSIG = 1): a killed test run leaves no server behind.
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    # Each server its own identifiers: the fork copied the zygote's random state.
    random.seed()
    mock_random.seed()
    os.environ["MOTO_PORT"] = str(port)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    run_simple(host, port, app, threaded=True)


def zygote():
    from moto.server import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    _warm_up(app)
    # Forked servers are reaped by the kernel; the harness kills them by pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        host, port = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                _serve_forked(app, host, int(port))
            finally:
                os._exit(0)
        print(pid, flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        zygote()
        sys.exit(0)
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
