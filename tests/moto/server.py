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

25. CreateServiceLinkedRole for config.amazonaws.com makes AWSServiceRoleForConfig, AWS Config's
   role as AWS names it (using-service-linked-roles-config.html). moto 5.2.5 names it after the
   service's lowercase name, AWSServiceRoleForconfig, so a lookup by AWS's name never found it.

26. Security Hub standards, absent from moto 5.2.5: BatchEnableStandards (POST /standards/register),
   BatchDisableStandards (POST /standards/deregister) and GetEnabledStandards (POST /standards/get),
   with AWS's shapes and subscription ARNs (arn:aws:securityhub:<region>:<account>:subscription/
   <standard path>). A standard is enabled asynchronously, as on AWS: it reads PENDING the first
   time GetEnabledStandards lists it, READY after. A standards ARN that is not one of Security Hub's
   standards in the region answers InvalidInputException; any of the three on an account not subscribed answers
   InvalidAccessException ("... is not subscribed to AWS Security Hub"); DisableSecurityHub
   disables the standards with the hub (API_DisableSecurityHub).

20. AWS Backup selections, absent from moto 5.2.5: CreateBackupSelection (idempotent by
   CreatorRequestId; AlreadyExistsException for a second selection of the same name in the plan),
   GetBackupSelection, ListBackupSelections and DeleteBackupSelection; DeleteBackupPlan refuses a
   plan that still has selections (InvalidRequestException, as AWS); CreateBackupPlan accepts the
   name of a deleted plan (moto kept deleted plans' names taken, so a destroy then an up failed).

21. UpdateBackupPlan (absent from moto 5.2.5) replaces the plan's rules and gives it a new VersionId.
   ListTags reads the resource ARN after /tags/ whether or not the path ends with a slash: the Rust
   SDK sends none, and moto 5.2.5 read the segment before the last ("tags") and answered no tags.

22. Recovery points: StartBackupJob makes a COMPLETED recovery point in the vault at once;
   ListRecoveryPointsByBackupVault lists them; DeleteRecoveryPoint is asynchronous as on AWS (the
   point is listed once more as DELETING, then gone); DeleteBackupVault of a vault that holds a
   recovery point answers InvalidRequestException "Backup vault cannot be deleted (contains N
   recovery points)" (moto deleted it with its points).

23. DescribeRegionSettings and UpdateRegionSettings (absent from moto 5.2.5), with AWS's default for an
   account new to AWS Backup since November 2021: advanced DynamoDB backup on
   (ResourceTypeManagementPreference DynamoDB=true).

24. RestoreTableToPointInTime applies SSESpecificationOverride (the restored table encrypted with the
   given customer key) and BillingModeOverride, as AWS does; moto 5.2.5 ignored both, so a recovery
   drill's table could not be told from one restored with AWS's own key.

27. A REST API keeps its TLS securityPolicy and endpointAccessMode, as AWS does: CreateRestApi takes
   them, GetRestApi returns them, and UpdateRestApi applies replace /securityPolicy and replace
   /endpointAccessMode (API Gateway developer guide, "How to change a security policy"). moto 5.2.5
   drops both, so the API's TLS 1.2+ policy (PCI DSS 4.2.1) could not be read back.

28. Custom domains as API Gateway keeps them: CreateDomainName keeps endpointAccessMode and GetDomainName
   returns it; UpdateDomainName (absent from moto 5.2.5) applies replace /regionalCertificateArn,
   /securityPolicy and /endpointAccessMode; TagResource and GetTags of a domain's ARN
   (arn:aws:apigateway:<region>::/domainnames/<name>) read and merge its tags (moto took every ARN
   for a stage's); GetBasePathMappings of a domain without mappings answers an empty list (moto
   raised a KeyError: 500); DeleteDomainName takes the domain's mappings with it, as AWS does;
   UpdateRestApi's replace /disableExecuteApiEndpoint stores the boolean the string says (moto
   stored bool("false"), i.e. true); replace /endpointConfiguration/types/<current> migrates a
   domain between EDGE and REGIONAL, as AWS documents.

29. DynamoDB's item operations are atomic, as DynamoDB documents: a write's condition is checked
   with the write as one operation, and a read sees an item before or after a write, never
   halfway. moto's threaded server applies an UpdateItem's actions one by one to the live item,
   with other request threads free to read it or write it in between: a payment's finishing
   update (SET response_code … REMOVE lease_until) was seen half done by a concurrent retry,
   which took the claim over, and 50 concurrent requests with one Idempotency-Key made two
   transactions. Here each DynamoDB request is handled under one lock, from parsing to its
   serialised answer.

30. A deployment is a snapshot of its API, and GetExport exports a stage as its deployment holds
   it, as AWS does (a stage serves a deployment; the export is of a stage: API Gateway developer
   guide, "Export a REST API from API Gateway"). moto 5.2.5 keeps no snapshot and exports the API's current resources as Swagger 2.0
   with no integrations, validators, models or security, whatever type was asked. Here
   CreateDeployment keeps the API's methods, their authorization, required parameters, request
   models, validators and integrations, and GET /restapis/<id>/stages/<stage>/exports/oas30 answers
   them in AWS's OpenAPI 3.0.1 shape: AWS_IAM as the `sigv4` security scheme
   (x-amazon-apigateway-authtype awsSigv4), models under components.schemas (their $schema
   dropped, references to other models as #/components/schemas/<name>), the validators by name
   (x-amazon-apigateway-request-validators, -request-validator) and each method's
   x-amazon-apigateway-integration; the x-amazon-apigateway-* keys only when
   extensions=apigateway (or integrations) is asked, as AWS. A change made to the API after the
   deployment is not in the export until the next deployment. (swagger is still moto's own.)

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

import copy
from datetime import datetime, timezone
import json
from urllib.parse import unquote
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


# Extension 27: a REST API's securityPolicy and endpointAccessMode are kept.
from moto.apigateway import responses as apigateway_responses

_rest_api_to_dict = apigateway_models.RestAPI.to_dict
_rest_api_apply_patch_operations = apigateway_models.RestAPI.apply_patch_operations
_create_rest_api_response = apigateway_responses.APIGatewayResponse.create_rest_api
_TLS_FIELDS = ("securityPolicy", "endpointAccessMode")


def _rest_api_to_dict_with_tls(self):
    out = _rest_api_to_dict(self)
    for field in _TLS_FIELDS:
        value = getattr(self, "tls_" + field, None)
        if value is not None:
            out[field] = value
    return out


def _rest_api_apply_patch_operations_with_tls(self, patch_operations):
    rest = []
    for op in patch_operations:
        field = op.get("path", "").lstrip("/")
        if op.get("op") == "replace" and field in _TLS_FIELDS:
            setattr(self, "tls_" + field, op.get("value"))
        else:
            rest.append(op)
    _rest_api_apply_patch_operations(self, rest)


def _create_rest_api_with_tls(self):
    status, headers, body = _create_rest_api_response(self)
    if status in (200, 201):
        created = json.loads(body)
        api = self.backend.apis.get(created.get("id"))
        if api is not None:
            for field in _TLS_FIELDS:
                value = self._get_param(field)
                if value is not None:
                    setattr(api, "tls_" + field, value)
            body = json.dumps(api.to_dict())
    return status, headers, body


apigateway_models.RestAPI.to_dict = _rest_api_to_dict_with_tls
apigateway_models.RestAPI.apply_patch_operations = _rest_api_apply_patch_operations_with_tls
apigateway_responses.APIGatewayResponse.create_rest_api = _create_rest_api_with_tls


# Extension 28: custom domains (endpointAccessMode, UpdateDomainName, their tags, empty mapping
# lists, mappings deleted with the domain) and a true boolean for disableExecuteApiEndpoint.
_DOMAIN_FIELDS = {
    "/regionalCertificateArn": "regional_certificate_arn",
    "/securityPolicy": "security_policy",
    "/endpointAccessMode": "endpoint_access_mode",
}
_domain_to_json = apigateway_models.DomainName.to_json
_create_domain_name_response = apigateway_responses.APIGatewayResponse.create_domain_name
_delete_domain_name = apigateway_models.APIGatewayBackend.delete_domain_name
_get_tags_response = apigateway_responses.APIGatewayResponse.get_tags
_tag_resource_response = apigateway_responses.APIGatewayResponse.tag_resource


def _domain_to_json_with_access_mode(self):
    out = _domain_to_json(self)
    if getattr(self, "endpoint_access_mode", None):
        out["endpointAccessMode"] = self.endpoint_access_mode
    return out


def _create_domain_name_with_access_mode(self):
    status, headers, body = _create_domain_name_response(self)
    created = json.loads(body)
    domain = self.backend.domain_names.get(created.get("domainName"))
    if domain is not None:
        domain.endpoint_access_mode = self._get_param("endpointAccessMode")
        body = json.dumps(domain.to_json())
    return status, headers, body


def _update_domain_name(self):
    name = unquote(self.path.split("/")[2])
    domain = self.backend.get_domain_name(name)
    for op in self._get_param("patchOperations") or []:
        path = op.get("path") or ""
        if op.get("op") == "replace" and path.startswith("/endpointConfiguration/types/"):
            # The migration between EDGE and REGIONAL ("Migrate a custom domain name to a
            # different API endpoint type"): the path names the current type, the value the new.
            current = (domain.endpoint_configuration or {}).get("types") or []
            if current != [path.rsplit("/", 1)[1]]:
                raise BadRequestException(f"Invalid patch path {path}: the domain's types are {current}")
            domain.endpoint_configuration = {"types": [op.get("value")]}
            continue
        field = _DOMAIN_FIELDS.get(path)
        if op.get("op") != "replace" or field is None:
            raise BadRequestException(f"Invalid patch path {path}")
        setattr(domain, field, op.get("value"))
    return 200, {}, json.dumps(domain.to_json())


def _delete_domain_name_with_mappings(self, domain_name):
    _delete_domain_name(self, domain_name)
    self.base_path_mappings.pop(domain_name, None)


def _get_base_path_mappings_or_none(self, domain_name):
    if domain_name not in self.domain_names:
        raise apigateway_models.DomainNameNotFound()
    return list(self.base_path_mappings.get(domain_name, {}).values())


def _domain_of_arn(self):
    arn = unquote(self.path.split("/tags/")[1])
    if "::/domainnames/" not in arn:
        return None
    return self.backend.get_domain_name(arn.split("::/domainnames/")[1].split("/")[0])


def _get_tags_with_domains(self):
    domain = _domain_of_arn(self)
    if domain is None:
        return _get_tags_response(self)
    return json.dumps({"tags": domain.tags or {}})


def _tag_resource_with_domains(self):
    domain = _domain_of_arn(self)
    if domain is None:
        return _tag_resource_response(self)
    tags = self._get_param("tags") or {}
    domain.tags = {**(domain.tags or {}), **tags}
    return json.dumps({"item": tags})


def _rest_api_patch_with_true_booleans(self, patch_operations):
    rest = []
    for op in patch_operations:
        if op.get("op") == "replace" and op.get("path") == "/disableExecuteApiEndpoint":
            self.disableExecuteApiEndpoint = str(op.get("value")).lower() == "true"
        else:
            rest.append(op)
    _rest_api_apply_patch_operations_with_tls(self, rest)


apigateway_models.DomainName.to_json = _domain_to_json_with_access_mode
apigateway_responses.APIGatewayResponse.create_domain_name = _create_domain_name_with_access_mode
apigateway_responses.APIGatewayResponse.update_domain_name = _update_domain_name
apigateway_models.APIGatewayBackend.delete_domain_name = _delete_domain_name_with_mappings
apigateway_models.APIGatewayBackend.get_base_path_mappings = _get_base_path_mappings_or_none
apigateway_responses.APIGatewayResponse.get_tags = _get_tags_with_domains
apigateway_responses.APIGatewayResponse.tag_resource = _tag_resource_with_domains
apigateway_models.RestAPI.apply_patch_operations = _rest_api_patch_with_true_booleans


# Extension 30: a deployment is a snapshot of the API, and GetExport (oas30) exports a stage's.
_create_deployment = apigateway_models.RestAPI.create_deployment
_get_export_response = apigateway_responses.APIGatewayResponse.get_export
_OAS_METHODS = {"ANY": "x-amazon-apigateway-any-method"}
_PARAMETER_PLACES = {"header": "header", "querystring": "query", "path": "path"}


def _oas30_schema_of(api, model):
    try:
        schema = json.loads(model.schema) if isinstance(model.schema, str) else dict(model.schema or {})
    except ValueError:
        schema = {}
    schema.pop("$schema", None)
    # A model refers to another by its URL; the export by the components' pointer.
    prefix = f"https://apigateway.amazonaws.com/restapis/{api.id}/models/"
    return json.loads(json.dumps(schema).replace(prefix, "#/components/schemas/"))


def _oas30_operation(api, method):
    op = {"responses": {code: {"description": f"{code} response"} for code in method.method_responses}}
    parameters = []
    for key, required in (method.request_parameters or {}).items():
        _, _, place, name = key.split(".", 3)
        entry = {"name": name, "in": _PARAMETER_PLACES.get(place, place), "schema": {"type": "string"}}
        if str(required).lower() == "true":
            entry["required"] = True
        parameters.append(entry)
    if parameters:
        op["parameters"] = parameters
    if method.request_models:
        op["requestBody"] = {
            "content": {t: {"schema": {"$ref": f"#/components/schemas/{m}"}} for t, m in method.request_models.items()}
        }
    if method.authorization_type == "AWS_IAM":
        op["security"] = [{"sigv4": []}]
    validator = api.request_validators.get(method.request_validator_id or "")
    if validator is not None:
        op["x-amazon-apigateway-request-validator"] = validator.name
    integration = method.method_integration
    if integration is not None:
        out = {"type": (integration.integration_type or "").lower()}
        for key, value in [
            ("httpMethod", integration.http_method),
            ("uri", integration.uri),
            ("passthroughBehavior", (integration.passthrough_behaviour or "").lower() or None),
            ("timeoutInMillis", int(integration.timeout_in_millis) if integration.timeout_in_millis else 29000),
            ("contentHandling", integration.content_handling),
            ("credentials", integration.credentials),
            ("requestParameters", integration.request_parameters),
        ]:
            if value is not None:
                out[key] = value
        op["x-amazon-apigateway-integration"] = out
    return op


def _oas30_snapshot(api):
    paths = {}
    for resource in api.resources.values():
        operations = {}
        for verb, method in resource.resource_methods.items():
            operations[_OAS_METHODS.get(verb, verb.lower())] = _oas30_operation(api, method)
        if operations:
            paths[resource.get_path()] = operations
    doc = {
        "openapi": "3.0.1",
        "info": {"title": api.name},
        "paths": paths,
        "components": {
            "schemas": {name: _oas30_schema_of(api, model) for name, model in api.models.items()},
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "x-amazon-apigateway-authtype": "awsSigv4",
                }
            },
        },
    }
    if api.request_validators:
        doc["x-amazon-apigateway-request-validators"] = {
            v.name: {
                "validateRequestBody": bool(v.validate_request_body),
                "validateRequestParameters": bool(v.validate_request_parameters),
            }
            for v in api.request_validators.values()
        }
    return doc


def _create_deployment_with_snapshot(self, name, description, stage_variables=None):
    deployment = _create_deployment(self, name, description, stage_variables)
    deployment.snapshot = _oas30_snapshot(self)
    deployment.snapshot["info"]["version"] = datetime.fromtimestamp(deployment.created_date, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return deployment


def _without_apigateway_extensions(value):
    if isinstance(value, dict):
        return {
            k: _without_apigateway_extensions(v) for k, v in value.items() if not k.startswith("x-amazon-apigateway")
        }
    if isinstance(value, list):
        return [_without_apigateway_extensions(v) for v in value]
    return value


def _get_export_of_the_deployment(self):
    parts = self.path.split("/")
    api_id, stage_name, export_type = parts[2], unquote(parts[4]), parts[-1].split("?")[0]
    if export_type != "oas30":
        return _get_export_response(self)
    stage = self.backend.get_stage(api_id, stage_name)
    deployment = self.backend.get_deployment(api_id, stage.deployment_id)
    doc = copy.deepcopy(getattr(deployment, "snapshot", None) or _oas30_snapshot(self.backend.get_rest_api(api_id)))
    doc["servers"] = [
        {
            "url": f"https://{api_id}.execute-api.{self.region}.amazonaws.com/{{basePath}}",
            "variables": {"basePath": {"default": stage_name}},
        }
    ]
    extensions = ",".join(self.querystring.get("extensions") or [])
    if "apigateway" not in extensions and "integrations" not in extensions:
        doc = _without_apigateway_extensions(doc)
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="oas30_{doc["info"]["version"]}.json"',
    }
    return 200, headers, json.dumps(doc, indent=2)


apigateway_models.RestAPI.create_deployment = _create_deployment_with_snapshot
apigateway_responses.APIGatewayResponse.get_export = _get_export_of_the_deployment

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


# Extensions 20-23: AWS Backup selections, plan updates, recovery points and region settings.
from urllib.parse import unquote as _unquote
from moto.backup import exceptions as backup_exceptions
from moto.backup import models as backup_models
from moto.backup import responses as backup_responses
from moto.backup import urls as backup_urls
from moto.core.utils import unix_time as _unix_time
from moto.moto_api._internal import mock_random as _mock_random

backup_urls.url_paths.update(
    {
        # Flask rules do not take an optional trailing slash: each form is its own rule.
        "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$": backup_responses.BackupResponse.dispatch,
        "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points$": backup_responses.BackupResponse.dispatch,
        "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/(?P<arn>.+)$": backup_responses.BackupResponse.dispatch,
        "{0}/account-settings$": backup_responses.BackupResponse.dispatch,
        "{0}/account-settings/$": backup_responses.BackupResponse.dispatch,
        "{0}/backup-jobs$": backup_responses.BackupResponse.dispatch,
        "{0}/backup-jobs/$": backup_responses.BackupResponse.dispatch,
    }
)


def _backup_json(body, status=200):
    return status, {"Content-Type": "application/json"}, _json.dumps(body)


def _backup_state(backend):
    # Per region backend: selections by plan id, recovery points by vault name, region settings.
    if not hasattr(backend, "_tap_selections"):
        backend._tap_selections = {}
        backend._tap_points = {}
        # Advanced DynamoDB backup is on for accounts new to AWS Backup since November 2021.
        backend._tap_settings = {"ResourceTypeManagementPreference": {"DynamoDB": True, "EFS": True}}
    return backend


def _live_plan(backend, plan_id):
    plan = backend.plans.get(plan_id)
    if plan is None or plan.deletion_date is not None:
        raise backup_exceptions.ResourceNotFoundException(msg=f"Failed reading Backup plan {plan_id}")
    return plan


def _plan_id_of(path):
    return path.split("/backup/plans/")[1].split("/")[0]


# Extension 20: backup selections.
def _create_backup_selection(self):
    backend = _backup_state(self.backup_backend)
    plan_id = _plan_id_of(self.path)
    _live_plan(backend, plan_id)
    body = _json.loads(self.body)
    selection = body["BackupSelection"]
    chosen = backend._tap_selections.setdefault(plan_id, {})
    request_id = body.get("CreatorRequestId")
    for sid, s in chosen.items():
        if request_id and s["CreatorRequestId"] == request_id:
            return _backup_json({"SelectionId": sid, "BackupPlanId": plan_id, "CreationDate": s["CreationDate"]})
        if s["BackupSelection"]["SelectionName"] == selection["SelectionName"]:
            raise backup_exceptions.AlreadyExistsException(msg="Backup selection with the same name already exists")
    sid = str(_mock_random.uuid4())
    chosen[sid] = {"BackupSelection": selection, "CreatorRequestId": request_id, "CreationDate": _unix_time()}
    return _backup_json({"SelectionId": sid, "BackupPlanId": plan_id, "CreationDate": chosen[sid]["CreationDate"]})


def _selection(backend, path):
    plan_id = _plan_id_of(path)
    sid = path.rstrip("/").split("/selections/")[1]
    found = backend._tap_selections.get(plan_id, {}).get(sid)
    if found is None:
        raise backup_exceptions.ResourceNotFoundException(msg=f"Failed reading Backup selection {sid}")
    return plan_id, sid, found


def _get_backup_selection(self):
    plan_id, sid, s = _selection(_backup_state(self.backup_backend), self.path)
    return _backup_json(
        {"BackupSelection": s["BackupSelection"], "SelectionId": sid, "BackupPlanId": plan_id,
         "CreationDate": s["CreationDate"], "CreatorRequestId": s["CreatorRequestId"]}
    )


def _list_backup_selections(self):
    backend = _backup_state(self.backup_backend)
    plan_id = _plan_id_of(self.path)
    _live_plan(backend, plan_id)
    listed = [
        {"SelectionId": sid, "SelectionName": s["BackupSelection"]["SelectionName"], "BackupPlanId": plan_id,
         "IamRoleArn": s["BackupSelection"]["IamRoleArn"], "CreationDate": s["CreationDate"]}
        for sid, s in backend._tap_selections.get(plan_id, {}).items()
    ]
    return _backup_json({"BackupSelectionsList": listed})


def _delete_backup_selection(self):
    backend = _backup_state(self.backup_backend)
    plan_id, sid, _ = _selection(backend, self.path)
    del backend._tap_selections[plan_id][sid]
    return _backup_json({})


_moto_delete_backup_plan = backup_models.BackupBackend.delete_backup_plan


def _delete_backup_plan_without_selections(self, backup_plan_id):
    if _backup_state(self)._tap_selections.get(backup_plan_id):
        raise backup_exceptions.InvalidRequestException(
            msg="Related backup plan selections must be deleted prior to backup plan deletion"
        )
    return _moto_delete_backup_plan(self, backup_plan_id)


_moto_create_backup_plan = backup_models.BackupBackend.create_backup_plan


def _create_backup_plan_beside_deleted_ones(self, backup_plan, backup_plan_tags, creator_request_id):
    # A deleted plan keeps its name in moto; on AWS the name is free again (a destroy, then an up).
    deleted = {k: p for k, p in self.plans.items() if p.deletion_date is not None}
    for k in deleted:
        del self.plans[k]
    try:
        return _moto_create_backup_plan(self, backup_plan, backup_plan_tags, creator_request_id)
    finally:
        self.plans.update(deleted)


# Extension 21: UpdateBackupPlan.
def _update_backup_plan(self):
    backend = self.backup_backend
    plan_id = self.path.rstrip("/").split("/backup/plans/")[1]
    plan = _live_plan(backend, plan_id)
    new = backup_models.Plan(
        backup_plan=_json.loads(self.body)["BackupPlan"], creator_request_id=plan.creator_request_id, backend=backend
    )
    plan.backup_plan = new.backup_plan
    plan.version_id = new.version_id
    return _backup_json(
        {"BackupPlanId": plan.backup_plan_id, "BackupPlanArn": plan.backup_plan_arn,
         "CreationDate": plan.creation_date, "VersionId": plan.version_id}
    )


# Extension 21 (also): ListTags of the whole ARN, with or without a trailing slash.
def _list_tags_of_the_whole_arn(self):
    arn = _unquote(self.path.split("/tags/", 1)[1].rstrip("/"))
    return _backup_json({"Tags": self.backup_backend.list_tags(resource_arn=arn)})


# Extension 22: recovery points. StartBackupJob makes a completed recovery point at once; a
# deleted one is DELETING for one listing, then gone; a vault that holds one cannot be deleted.
def _start_backup_job(self):
    backend = _backup_state(self.backup_backend)
    body = _json.loads(self.body)
    vault = backend.describe_backup_vault(body["BackupVaultName"])
    job = str(_mock_random.uuid4())
    arn = f"arn:aws:backup:{backend.region_name}:{backend.account_id}:recovery-point:{job}"
    backend._tap_points.setdefault(vault.backup_vault_name, {})[arn] = {
        "RecoveryPointArn": arn, "BackupVaultName": vault.backup_vault_name, "BackupVaultArn": vault.backup_vault_arn,
        "ResourceArn": body["ResourceArn"], "IamRoleArn": body["IamRoleArn"], "Status": "COMPLETED",
        "CreationDate": _unix_time(), "EncryptionKeyArn": vault.encryption_key_arn,
    }
    vault.num_of_recovery_points = len(backend._tap_points[vault.backup_vault_name])
    return _backup_json({"BackupJobId": job, "RecoveryPointArn": arn, "CreationDate": _unix_time()})


def _list_recovery_points_by_backup_vault(self):
    backend = _backup_state(self.backup_backend)
    name = self.path.split("/backup-vaults/")[1].split("/")[0]
    vault = backend.describe_backup_vault(name)
    points = backend._tap_points.get(name, {})
    listed = [dict(p) for p in points.values()]
    for arn in [a for a, p in points.items() if p["Status"] == "DELETING"]:
        del points[arn]
    vault.num_of_recovery_points = len(points)
    return _backup_json({"RecoveryPoints": listed})


def _delete_recovery_point(self):
    backend = _backup_state(self.backup_backend)
    name = self.path.split("/backup-vaults/")[1].split("/")[0]
    arn = _unquote(self.path.split("/recovery-points/")[1])
    point = backend._tap_points.get(name, {}).get(arn)
    if point is None:
        raise backup_exceptions.ResourceNotFoundException(msg=f"Recovery point {arn} not found")
    point["Status"] = "DELETING"
    return _backup_json({})


def _delete_backup_vault_when_empty(self, backup_vault_name):
    held = _backup_state(self)._tap_points.get(backup_vault_name)
    if held:
        raise backup_exceptions.InvalidRequestException(
            msg=f"Backup vault cannot be deleted (contains {len(held)} recovery points)"
        )
    self.vaults.pop(backup_vault_name, None)


# Extension 23: region settings (DescribeRegionSettings, UpdateRegionSettings).
def _describe_region_settings(self):
    return _backup_json(_backup_state(self.backup_backend)._tap_settings)


def _update_region_settings(self):
    settings = _backup_state(self.backup_backend)._tap_settings
    body = _json.loads(self.body or "{}")
    for key in ("ResourceTypeManagementPreference", "ResourceTypeOptInPreference"):
        settings.setdefault(key, {}).update(body.get(key) or {})
    return _backup_json({})


for _name, _fn in {
    "create_backup_selection": _create_backup_selection,
    "get_backup_selection": _get_backup_selection,
    "list_backup_selections": _list_backup_selections,
    "delete_backup_selection": _delete_backup_selection,
    "update_backup_plan": _update_backup_plan,
    "list_tags": _list_tags_of_the_whole_arn,
    "start_backup_job": _start_backup_job,
    "list_recovery_points_by_backup_vault": _list_recovery_points_by_backup_vault,
    "delete_recovery_point": _delete_recovery_point,
    "describe_region_settings": _describe_region_settings,
    "update_region_settings": _update_region_settings,
}.items():
    setattr(backup_responses.BackupResponse, _name, _fn)
backup_models.BackupBackend.delete_backup_plan = _delete_backup_plan_without_selections
backup_models.BackupBackend.create_backup_plan = _create_backup_plan_beside_deleted_ones
backup_models.BackupBackend.delete_backup_vault = _delete_backup_vault_when_empty


# Extension 24: RestoreTableToPointInTime applies SSESpecificationOverride and BillingModeOverride.
from moto.dynamodb import responses as dynamodb_responses

_moto_restore_table_to_point_in_time = dynamodb_responses.DynamoHandler.restore_table_to_point_in_time


def _restore_table_to_point_in_time_with_overrides(self):
    answer = _moto_restore_table_to_point_in_time(self)
    table = self.dynamodb_backend.get_table(self.body.get("TargetTableName"))
    sse = self.body.get("SSESpecificationOverride")
    if sse:
        table.sse_specification = dict(sse)
        if sse.get("Enabled") and "KMSMasterKeyId" not in table.sse_specification:
            table.sse_specification["KMSMasterKeyId"] = table._get_default_encryption_key(
                table.account_id, table.region_name if hasattr(table, "region_name") else self.region
            )
    if self.body.get("BillingModeOverride"):
        table.billing_mode = self.body["BillingModeOverride"]
    return dynamodb_responses.DynamoResult(table.describe())


dynamodb_responses.DynamoHandler.restore_table_to_point_in_time = _restore_table_to_point_in_time_with_overrides

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



# Extension 25: AWS Config's service-linked role has AWS's name.
from moto.iam import models as iam_models

iam_models.SERVICE_NAME_CONVERSION["config"] = "Config"

# Extension 26: Security Hub standards.
from moto.core.exceptions import JsonRESTError as _JsonRESTError
from moto.securityhub import models as securityhub_models
from moto.securityhub import responses as securityhub_responses
from moto.securityhub import urls as securityhub_urls

for _path in ("{0}/standards/register$", "{0}/standards/deregister$", "{0}/standards/get$"):
    securityhub_urls.url_paths[_path] = securityhub_responses.SecurityHubResponse.dispatch


def _securityhub_standards(backend):
    # standards ARN -> {"subscription": ARN, "status": PENDING|READY}
    if not hasattr(backend, "tapctl_standards"):
        backend.tapctl_standards = {}
    return backend.tapctl_standards


class _NotSubscribed(_JsonRESTError):
    code = 401  # AWS's status for InvalidAccessException

    def __init__(self, account_id):
        super().__init__("InvalidAccessException", f"Account {account_id} is not subscribed to AWS Security Hub")


def _securityhub_subscribed(backend):
    if not backend.enabled:
        raise _NotSubscribed(backend.account_id)


# The standards Security Hub offers (Security Hub user guide, "Standards reference").
_SECURITYHUB_STANDARDS = {
    "aws-foundational-security-best-practices/v/1.0.0",
    "pci-dss/v/3.2.1",
    "pci-dss/v/4.0.1",
    "cis-aws-foundations-benchmark/v/1.4.0",
    "cis-aws-foundations-benchmark/v/3.0.0",
    "nist-800-53/v/5.0.0",
    "aws-resource-tagging-standard/v/1.0.0",
}


def _standard_path(backend, arn):
    prefix = f"arn:aws:securityhub:{backend.region_name}::standards/"
    path = arn[len(prefix):] if arn.startswith(prefix) else None
    if path not in _SECURITYHUB_STANDARDS:
        raise _JsonRESTError("InvalidInputException", f"Invalid StandardsArn: {arn}")
    return path


def _subscription_json(arn, entry, status=None):
    return {
        "StandardsSubscriptionArn": entry["subscription"],
        "StandardsArn": arn,
        "StandardsInput": {},
        "StandardsStatus": status or entry["status"],
    }


def _batch_enable_standards(self):
    backend = self.securityhub_backend
    _securityhub_subscribed(backend)
    body = _json.loads(self.body or "{}")
    standards = _securityhub_standards(backend)
    out = []
    for request in body.get("StandardsSubscriptionRequests", []):
        arn = request["StandardsArn"]
        path = _standard_path(backend, arn)
        entry = standards.setdefault(
            arn,
            {
                "subscription": f"arn:aws:securityhub:{backend.region_name}:{backend.account_id}:subscription/{path}",
                "status": "PENDING",
            },
        )
        out.append(_subscription_json(arn, entry))
    return _json.dumps({"StandardsSubscriptions": out})


def _batch_disable_standards(self):
    backend = self.securityhub_backend
    _securityhub_subscribed(backend)
    body = _json.loads(self.body or "{}")
    standards = _securityhub_standards(backend)
    out = []
    for sub in body.get("StandardsSubscriptionArns", []):
        for arn, entry in list(standards.items()):
            if entry["subscription"] == sub:
                out.append(_subscription_json(arn, entry, "DELETING"))
                del standards[arn]
    return _json.dumps({"StandardsSubscriptions": out})


def _get_enabled_standards(self):
    backend = self.securityhub_backend
    _securityhub_subscribed(backend)
    body = _json.loads(self.body or "{}")
    wanted = set(body.get("StandardsSubscriptionArns") or [])
    out = []
    for arn, entry in _securityhub_standards(backend).items():
        if wanted and entry["subscription"] not in wanted:
            continue
        out.append(_subscription_json(arn, entry))
        # Listed once as PENDING, then READY: AWS enables a standard asynchronously.
        entry["status"] = "READY"
    return _json.dumps({"StandardsSubscriptions": out})


securityhub_responses.SecurityHubResponse.batch_enable_standards = _batch_enable_standards
securityhub_responses.SecurityHubResponse.batch_disable_standards = _batch_disable_standards
securityhub_responses.SecurityHubResponse.get_enabled_standards = _get_enabled_standards

_disable_security_hub = securityhub_models.SecurityHubBackend.disable_security_hub


def _disable_security_hub_and_its_standards(self):
    result = _disable_security_hub(self)
    _securityhub_standards(self).clear()
    return result


securityhub_models.SecurityHubBackend.disable_security_hub = _disable_security_hub_and_its_standards


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
    "guardduty": ("GET", "/detector", None, ""),
    "securityhub": ("GET", "/accounts", None, ""),
    "config": ("POST", "/", "StarlingDoveService.DescribeConfigurationRecorders", "{}"),
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



# Extension 29: DynamoDB requests are atomic: one lock over each whole request, from parsing to the
# serialised answer (moto answers with the live item's attributes and serialises them after the
# backend returns, so a lock over the backend alone still let a read serialise a half-updated item).
from moto.dynamodb.responses import DynamoHandler as _DynamoHandler

_dynamodb_requests = threading.RLock()
_dynamodb_call_action = _DynamoHandler.call_action


def _dynamodb_call_action_atomically(self):
    with _dynamodb_requests:
        return _dynamodb_call_action(self)


_DynamoHandler.call_action = _dynamodb_call_action_atomically


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        zygote()
        sys.exit(0)
    from moto.server import main

    sys.exit(main(sys.argv[1:]))

