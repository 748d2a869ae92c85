"""The AWS deployment: packaged template, least-privilege IAM, the table it creates.

``chalice package`` runs for real (offline) and cfn-lint checks its output.
The IAM policies are compared with the DynamoDB calls the code makes: found by
reading ``chalicelib`` (every client call, and the item actions inside each
transaction) for the API, and recorded while the scheduled audit runs for the
audit function. A grant the code does not use fails, and so does a missing one.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.storage import ticket_store
from chalicelib.storage.schema import TABLE_DEFINITION
from devtools.package import lint, package
from tests.conftest import ROOT, Api, moto_only

CHALICE_DIR = ROOT / ".chalice"
TABLE_ARN = {"Fn::GetAtt": ["TicketsTable", "Arn"]}
INDEX_ARN = {"Fn::Sub": "${TicketsTable.Arn}/index/*"}


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package(tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="session")
def template(packaged: Path) -> dict[str, Any]:
    return json.loads(packaged.read_text())


def load_policy(name: str) -> dict[str, Any]:
    return json.loads((CHALICE_DIR / name).read_text())


def dynamodb_actions(policy: dict[str, Any]) -> set[str]:
    return {
        action
        for statement in policy["Statement"]
        for action in statement["Action"]
        if action.startswith("dynamodb:")
    }


def pascal(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_"))


def actions_called_by_the_code() -> set[str]:
    """IAM actions for every DynamoDB call in ``chalicelib``, read from its syntax tree.

    ``client.transact_write_items`` needs no IAM action of its own: each item in
    it is authorised as the plain action (``{"Put": ...}`` needs PutItem).
    """
    actions: set[str] = set()
    for path in (ROOT / "chalicelib").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "client"
                and not node.attr.startswith("_")
                and node.attr not in ("meta", "exceptions", "get_waiter")
            ):
                actions.add(pascal(node.attr))
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in (
                        "Put",
                        "Update",
                        "Delete",
                        "ConditionCheck",
                    ):
                        actions.add(f"{key.value}Item")
    actions.discard("TransactWriteItems")
    return {f"dynamodb:{action}" for action in actions}


def test_code_scan_finds_the_calls_it_should() -> None:
    # Guards the scanner itself: these calls are certainly in the code.
    found = actions_called_by_the_code()
    assert {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"} <= found
    assert "dynamodb:TransactWriteItems" not in found


@pytest.mark.parametrize("policy_file", ["policy-prod.json", "policy-aws.json"])
def test_api_policy_grants_exactly_the_dynamodb_actions_the_code_calls(policy_file: str) -> None:
    assert dynamodb_actions(load_policy(policy_file)) == actions_called_by_the_code()


def iam_actions(calls: list[tuple[str, dict[str, Any]]]) -> set[str]:
    actions = set()
    for operation, params in calls:
        if operation == "TransactWriteItems":
            actions |= {f"dynamodb:{kind}Item" for item in params["TransactItems"] for kind in item}
        else:
            actions.add(f"dynamodb:{operation}")
    return actions


@pytest.mark.parametrize("policy_file", ["policy-prod-audit.json", "policy-aws-audit.json"])
@moto_only
def test_audit_policy_grants_exactly_what_the_audit_calls(api: Api, policy_file: str) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "a@example.com")
    api.book(event_id, "b@example.com")
    calls: list[tuple[str, dict[str, Any]]] = []
    ticket_store().client.meta.events.register(  # the client the scheduled function uses
        "provide-client-params.dynamodb.*",
        lambda model, params, **_: calls.append((model.name, params)),
    )
    event = api.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    assert api.client.lambda_.invoke("audit_invariants", event).payload["clean"]
    assert calls
    assert iam_actions(calls) == dynamodb_actions(load_policy(policy_file))


@pytest.mark.parametrize(
    ("policy_file", "log_suffix"),
    [("policy-prod.json", "-api:*"), ("policy-prod-audit.json", "-audit:*")],
)
def test_prod_policies_name_only_the_table_its_indexes_and_the_functions_logs(
    policy_file: str, log_suffix: str
) -> None:
    for statement in load_policy(policy_file)["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "*" not in "".join(statement["Action"])
        if statement["Action"][0].startswith("dynamodb:"):
            assert statement["Resource"] == [TABLE_ARN, INDEX_ARN]
        else:
            assert set(statement["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert statement["Resource"]["Fn::Sub"].endswith("${AWS::StackName}" + log_suffix)


def test_chalice_deploy_policies_name_the_configured_table() -> None:
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    table = config["stages"]["aws"]["environment_variables"]["TICKETS_TABLE"]
    for name in ("policy-aws.json", "policy-aws-audit.json"):
        [table_statement] = [
            s for s in load_policy(name)["Statement"] if s["Action"][0].startswith("dynamodb:")
        ]
        assert table_statement["Resource"] == [
            f"arn:aws:dynamodb:*:*:table/{table}",
            f"arn:aws:dynamodb:*:*:table/{table}/index/*",
        ]


def test_packaged_template_passes_cfn_lint(packaged: Path) -> None:
    result = lint(packaged)
    assert result.returncode == 0, result.stdout + result.stderr


def test_template_table_matches_the_code_and_is_protected(template: dict[str, Any]) -> None:
    table = template["Resources"]["TicketsTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    for key, value in TABLE_DEFINITION.items():
        assert properties[key] == value, key
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True
    assert "TableName" not in properties  # named by CloudFormation, passed by reference
    # Nothing the service does not use: no streams, no TTL.
    assert "StreamSpecification" not in properties
    assert "TimeToLiveSpecification" not in properties


def test_functions_get_the_table_by_reference_and_their_own_policy(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    functions = {
        name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == {"APIHandler", "AuditInvariants"}
    expected_policy = {
        "APIHandler": "policy-prod.json",
        "AuditInvariants": "policy-prod-audit.json",
    }
    for name, function in functions.items():
        properties = function["Properties"]
        assert properties["Environment"]["Variables"]["TICKETS_TABLE"] == {"Ref": "TicketsTable"}
        assert "DYNAMODB_ENDPOINT_URL" not in properties["Environment"]["Variables"]
        role = resources[properties["Role"]["Fn::GetAtt"][0]]
        [policy] = role["Properties"]["Policies"]
        assert policy["PolicyDocument"] == load_policy(expected_policy[name])
        assert "ManagedPolicyArns" not in role["Properties"]
    assert "Schedule" in json.dumps(functions["AuditInvariants"]["Properties"]["Events"])


def test_log_groups_match_the_function_names(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for function, group in (
        ("APIHandler", "ApiHandlerLogGroup"),
        ("AuditInvariants", "AuditInvariantsLogGroup"),
    ):
        name = resources[function]["Properties"]["FunctionName"]["Fn::Sub"]
        log_group = resources[group]["Properties"]
        assert log_group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/{name}"}
        assert log_group["RetentionInDays"] == 30


def test_api_stage_is_throttled(template: dict[str, Any]) -> None:
    [settings] = template["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    assert settings["ResourcePath"] == "/*" and settings["HttpMethod"] == "*"
    assert 0 < settings["ThrottlingRateLimit"] <= settings["ThrottlingBurstLimit"] <= 5000


def test_no_hard_coded_table_name_reaches_prod(template: dict[str, Any]) -> None:
    text = json.dumps(template)
    assert not re.search(r"ticket-booking-(prod|local|chalice)", text)


def test_the_pseudonym_key_is_generated_and_readable_by_the_api_function_only(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    secret = resources["LogPseudonymKey"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    variables = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert variables["LOG_PSEUDONYM_SECRET_ARN"] == {"Ref": "LogPseudonymKey"}
    assert variables["STAGE"] == "prod"
    grants = [
        (name, r["Properties"])
        for name, r in resources.items()
        if r["Type"] == "AWS::IAM::Policy" and "LogPseudonymKey" in json.dumps(r)
    ]
    [(_, policy)] = grants
    assert policy["Roles"] == [{"Ref": "ApiHandlerRole"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": {"Ref": "LogPseudonymKey"},
    }


def test_access_logs_carry_no_query_string(template: dict[str, Any]) -> None:
    settings = template["Resources"]["RestAPI"]["Properties"]["AccessLogSetting"]
    assert settings["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    fields = json.loads(settings["Format"])
    assert fields["resourcePath"] == "$context.resourcePath"  # the route template, no query
    assert not any(
        token in settings["Format"]
        for token in ("querystring", "$context.path", "requestOverride", "$input")
    )
    assert template["Resources"]["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == 30


def test_alarms_watch_5xx_503_and_the_audit_and_notify_a_topic(template: dict[str, Any]) -> None:
    alarms = {
        name: r["Properties"]
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms.values()}
    assert watched == {
        ("AWS/ApiGateway", "5XXError"),
        ("TicketBooking", "ServiceBusy"),
        ("TicketBooking", "AuditViolations"),
        ("TicketBooking", "EventsAudited"),
        ("AWS/Lambda", "Errors"),
    }
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        if alarm["Namespace"] == "TicketBooking":  # the EMF metrics' own dimensions
            assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
                "service": "ticket-booking",
                "stage": "prod",
            }
    [audit_errors] = [a for a in alarms.values() if a["MetricName"] == "Errors"]
    assert audit_errors["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Fn::Sub": "${AWS::StackName}-audit"}}
    ]


def test_the_api_trusts_the_stacks_own_user_pool(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    pool = resources["UserPool"]["Properties"]
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    assert resources["OrganisersGroup"]["Properties"] == {
        "GroupName": "organisers",
        "UserPoolId": {"Ref": "UserPool"},
        "Description": "May create events and run their box office",
    }
    assert resources["UserPoolClient"]["Properties"]["GenerateSecret"] is False
    variables = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    issuer = "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"
    assert variables["JWT_ISSUER"] == {"Fn::Sub": issuer}
    assert variables["JWT_AUDIENCE"] == {"Ref": "UserPoolClient"}
    assert variables["JWKS_URL"] == {"Fn::Sub": issuer + "/.well-known/jwks.json"}


def test_abuse_limits_waf_rate_rule_and_reserved_concurrency(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    acl = resources["ApiWebAcl"]["Properties"]
    [rule] = acl["Rules"]
    assert rule["Action"] == {"Block": {}}
    assert rule["Statement"]["RateBasedStatement"] == {
        "Limit": {"Ref": "RequestsPerIpPer5Minutes"},
        "AggregateKeyType": "IP",
    }
    association = resources["ApiWebAclAssociation"]["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": ["ApiWebAcl", "Arn"]}
    assert "${RestAPI}/stages/api" in association["ResourceArn"]["Fn::Sub"]
    assert resources["APIHandler"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "ApiReservedConcurrency"
    }
