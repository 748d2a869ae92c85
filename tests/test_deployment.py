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
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.audit import fanout
from chalicelib.audit.cursor import EventCursor
from chalicelib.storage import ticket_store
from chalicelib.storage.schema import TABLE_DEFINITION, person_key
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

    ``client.transact_write_items`` and ``client.transact_get_items`` need no IAM
    action of their own: each item in them is authorised as the plain action
    (``{"Put": ...}`` needs PutItem, ``{"Get": ...}`` GetItem).
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
                        "Get",
                    ):
                        actions.add(f"{key.value}Item")
    actions.difference_update({"TransactWriteItems", "TransactGetItems"})
    return {f"dynamodb:{action}" for action in actions}


def test_code_scan_finds_the_calls_it_should() -> None:
    # Guards the scanner itself: these calls are certainly in the code.
    found = actions_called_by_the_code()
    assert {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"} <= found
    assert not {"dynamodb:TransactWriteItems", "dynamodb:TransactGetItems"} & found


@pytest.mark.parametrize("policy_file", ["policy-prod.json", "policy-aws.json"])
def test_api_policy_grants_exactly_the_dynamodb_actions_the_code_calls(policy_file: str) -> None:
    assert dynamodb_actions(load_policy(policy_file)) == actions_called_by_the_code()


def record_calls(client: Any, service: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    client.meta.events.register(
        f"provide-client-params.{service}.*",
        lambda model, params, **_: calls.append((f"{service}:{model.name}", params)),
    )


#: SQS calls the Lambda service makes with the worker's role (the event source mapping).
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def granted(policy: dict[str, Any]) -> set[str]:
    """Every DynamoDB and SQS action a policy allows."""
    return {
        action
        for statement in policy["Statement"]
        for action in statement["Action"]
        if action.startswith(("dynamodb:", "sqs:"))
    }


def called(calls: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """The IAM actions behind recorded calls (``SendMessageBatch`` is ``sqs:SendMessage``)."""
    return {"sqs:SendMessage" if c == "sqs:SendMessageBatch" else c for c, _ in calls}


def tables_touched(calls: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """``table``, or ``index/<name>``, for every DynamoDB call recorded."""
    return {
        f"index/{params['IndexName']}" if "IndexName" in params else "table"
        for name, params in calls
        if name.startswith("dynamodb:")
    }


def tables_granted(policy: dict[str, Any]) -> set[str]:
    """The same names for a policy's DynamoDB resources (prod's intrinsics or aws's ARNs)."""
    [statement] = [s for s in policy["Statement"] if s["Action"][0].startswith("dynamodb:")]
    names = set()
    for resource in statement["Resource"]:
        text = resource if isinstance(resource, str) else json.dumps(resource)
        names.add(
            "index/" + text.split("/index/")[1].rstrip('"}') if "/index/" in text else "table"
        )
    return names


@pytest.mark.parametrize("policy_file", ["policy-prod-audit.json", "policy-aws-audit.json"])
@moto_only
def test_audit_fan_out_policy_grants_exactly_what_it_calls(
    api: Api, audit_queue: str, policy_file: str
) -> None:
    for _ in range(3):
        api.create_event(1)
    calls: list[tuple[str, dict[str, Any]]] = []
    record_calls(ticket_store().client, "dynamodb", calls)  # the clients the function uses
    record_calls(fanout.sqs_client(), "sqs", calls)
    event = api.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    assert api.client.lambda_.invoke("audit_invariants", event).payload == {"eventsQueued": 3}
    policy = load_policy(policy_file)
    assert called(calls) == granted(policy)
    assert tables_touched(calls) == tables_granted(policy) == {"index/EventsByNewest"}


@pytest.mark.parametrize(
    "policy_file", ["policy-prod-audit-worker.json", "policy-aws-audit-worker.json"]
)
@moto_only
def test_audit_worker_policy_grants_exactly_what_it_calls(
    api: Api, audit_queue: str, policy_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import app

    event_id = api.create_event(1)
    for person in ("a@example.com", "b@example.com"):
        api.book(event_id, person)
    ticket_store().client.put_item(  # a second place for b: the audit looks its twin up
        TableName=ticket_store().table_name,
        Item={**person_key(event_id, "B@example.com"), "status": {"S": "BOOKED"}},
    )
    monkeypatch.setattr(fanout, "WORKER_PAGE_SIZE", 2)  # so that it sends a continuation
    calls: list[tuple[str, dict[str, Any]]] = []
    record_calls(ticket_store().client, "dynamodb", calls)
    record_calls(fanout.sqs_client(), "sqs", calls)
    body = json.dumps(EventCursor.start(event_id).to_json())
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: 0)  # one page a call
    continuations = 0
    while body:
        sqs_event = api.client.events.generate_sqs_event(message_bodies=[body])
        app.handler_map["audit_worker"](sqs_event, context)
        sent = [params["MessageBody"] for name, params in calls if name == "sqs:SendMessage"]
        body = sent[-1] if len(sent) > continuations else ""
        continuations = len(sent)
    assert continuations > 1
    policy = load_policy(policy_file)
    assert called(calls) | EVENT_SOURCE_ACTIONS == granted(policy)
    assert tables_touched(calls) == tables_granted(policy) == {"table", "index/WaitingList"}


QUEUE_ARN = {"Fn::GetAtt": ["AuditQueue", "Arn"]}


def index_arn(name: str) -> dict[str, str]:
    return {"Fn::Sub": "${TicketsTable.Arn}/index/" + name}


@pytest.mark.parametrize(
    ("policy_file", "log_suffix", "tables", "sqs_actions"),
    [
        ("policy-prod.json", "-api:*", [TABLE_ARN, INDEX_ARN], None),
        ("policy-prod-audit.json", "-audit:*", [index_arn("EventsByNewest")], {"sqs:SendMessage"}),
        (
            "policy-prod-audit-worker.json",
            "-audit-worker:*",
            [TABLE_ARN, index_arn("WaitingList")],
            {"sqs:SendMessage"} | EVENT_SOURCE_ACTIONS,
        ),
    ],
)
def test_prod_policies_name_only_the_table_its_indexes_the_queue_and_the_functions_logs(
    policy_file: str, log_suffix: str, tables: list[Any], sqs_actions: set[str] | None
) -> None:
    statements = load_policy(policy_file)["Statement"]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "*" not in "".join(statement["Action"])
        if statement["Action"][0].startswith("dynamodb:"):
            assert statement["Resource"] == tables
        elif statement["Action"][0].startswith("sqs:"):
            assert set(statement["Action"]) == sqs_actions
            assert statement["Resource"] == QUEUE_ARN  # the audit queue, not its DLQ
        else:
            assert set(statement["Action"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert statement["Resource"]["Fn::Sub"].endswith("${AWS::StackName}" + log_suffix)
    assert any(s["Action"][0].startswith("sqs:") for s in statements) == bool(sqs_actions)


def test_chalice_deploy_policies_name_the_configured_table_and_queue() -> None:
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    table = (
        "arn:aws:dynamodb:*:*:table/"
        + config["stages"]["aws"]["environment_variables"]["TICKETS_TABLE"]
    )
    queue = f"arn:aws:sqs:*:*:{fanout.AUDIT_QUEUE_NAME}"
    for name, tables, queues in (
        ("policy-aws.json", [table, f"{table}/index/*"], None),
        ("policy-aws-audit.json", [f"{table}/index/EventsByNewest"], queue),
        ("policy-aws-audit-worker.json", [table, f"{table}/index/WaitingList"], queue),
    ):
        statements = load_policy(name)["Statement"]
        [table_statement] = [s for s in statements if s["Action"][0].startswith("dynamodb:")]
        assert table_statement["Resource"] == tables
        queue_statements = [s for s in statements if s["Action"][0].startswith("sqs:")]
        assert [s["Resource"] for s in queue_statements] == ([queues] if queues else [])


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
    assert set(functions) == {"APIHandler", "AuditInvariants", "AuditWorker"}
    expected_policy = {
        "APIHandler": "policy-prod.json",
        "AuditInvariants": "policy-prod-audit.json",
        "AuditWorker": "policy-prod-audit-worker.json",
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


def test_the_audit_fans_out_through_its_own_queue_to_the_worker(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    for name in ("AuditInvariants", "AuditWorker"):
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables[fanout.AUDIT_QUEUE_URL_ENV] == {"Ref": "AuditQueue"}
    worker = resources["AuditWorker"]["Properties"]
    [source] = worker["Events"].values()
    assert source["Type"] == "SQS"
    # Chalice names the queue; the merge template points it at the stack's own queue.
    assert source["Properties"]["Queue"] == {"Fn::Sub": "${AuditQueue.Arn}"}
    assert source["Properties"]["BatchSize"] == 1  # the time budget is per message
    assert source["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 10
    assert worker["Timeout"] * 1000 > fanout.WORKER_RESERVE_MS
    # The queue hides a message in flight for longer than the worker may run (AWS asks for
    # at least the timeout, and suggests six times it), then dead-letters it after 3 tries.
    queue = resources["AuditQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["AuditDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    dead_letters = resources["AuditDeadLetterQueue"]["Properties"]
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 3600  # the longest SQS keeps
    assert queue["SqsManagedSseEnabled"] and dead_letters["SqsManagedSseEnabled"]
    assert resources["AuditInvariants"]["Properties"]["Timeout"] <= 60  # it only lists ids


def test_log_groups_match_the_function_names(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for function, group in (
        ("APIHandler", "ApiHandlerLogGroup"),
        ("AuditInvariants", "AuditInvariantsLogGroup"),
        ("AuditWorker", "AuditWorkerLogGroup"),
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
    assert fanout.AUDIT_QUEUE_NAME not in text  # chalice deploy's queue name, not the stack's


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


def test_an_unknown_route_answers_in_the_apis_shape_without_the_request(
    template: dict[str, Any],
) -> None:
    """API Gateway's own answer to a path no route matches is replaced by a fixed
    ``{"Code", "Message"}`` body: nothing of the request (its Authorization header)."""
    from devtools.local_api import NO_SUCH_ROUTE

    responses = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::GatewayResponse"
    ]
    [unknown] = [r for r in responses if r["ResponseType"] == "MISSING_AUTHENTICATION_TOKEN"]
    assert unknown["RestApiId"] == {"Ref": "RestAPI"}
    body = unknown["ResponseTemplates"]["application/json"]
    assert json.loads(body) == json.loads(NO_SUCH_ROUTE)  # what make dev answers too
    assert "$" not in body


def watched_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its own, or those its metric-math expression combines."""
    if "Metrics" in alarm:
        return [q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q]
    return [{k: alarm[k] for k in ("Namespace", "MetricName", "Dimensions")}]


def test_alarms_watch_5xx_503_and_the_audit_and_notify_a_topic(template: dict[str, Any]) -> None:
    alarms = {
        name: r["Properties"]
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    watched = {
        (m["Namespace"], m["MetricName"], json.dumps(d["Value"]))
        for alarm in alarms.values()
        for m in watched_metrics(alarm)
        for d in m["Dimensions"]
        if d["Name"] in ("ApiName", "FunctionName", "QueueName", "service")
    }
    emf, worker = '"ticket-booking"', json.dumps({"Fn::Sub": "${AWS::StackName}-audit-worker"})
    assert watched == {
        ("AWS/ApiGateway", "5XXError", '"ticket-booking"'),
        ("TicketBooking", "ServiceBusy", emf),
        ("TicketBooking", "AuditViolations", emf),
        ("TicketBooking", "AuditEventsQueued", emf),
        ("TicketBooking", "EventsAudited", emf),
        ("TicketBooking", "AuditEventsUnfinished", emf),
        ("AWS/Lambda", "Errors", json.dumps({"Fn::Sub": "${AWS::StackName}-audit"})),
        ("AWS/Lambda", "Errors", worker),
        ("AWS/Lambda", "Duration", worker),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            json.dumps({"Fn::GetAtt": ["AuditDeadLetterQueue", "QueueName"]}),
        ),
    }
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        for metric in watched_metrics(alarm):
            if metric["Namespace"] == "TicketBooking":  # the EMF metrics' own dimensions
                assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == {
                    "service": "ticket-booking",
                    "stage": "prod",
                }


def test_audit_alarms_fire_on_failure_timeouts_dead_letters_and_silence(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    timeout_ms = resources["AuditWorker"]["Properties"]["Timeout"] * 1000
    duration = resources["AuditWorkerDurationAlarm"]["Properties"]
    # Above what a worker plans to use (it stops reading with the reserve left), below the end.
    assert timeout_ms - fanout.WORKER_RESERVE_MS < duration["Threshold"] < timeout_ms
    assert duration["Statistic"] == "Maximum"
    dead_letters = resources["AuditDeadLetterAlarm"]["Properties"]
    assert (dead_letters["Threshold"], dead_letters["ComparisonOperator"]) == (
        0,
        "GreaterThanThreshold",
    )
    missed = resources["AuditMissedAlarm"]["Properties"]
    # No fan-out at all (no AuditEventsQueued, not even 0) is missing data: it alarms.
    assert missed["TreatMissingData"] == "breaching"
    [expression] = [q for q in missed["Metrics"] if "Expression" in q]
    assert expression["ReturnData"] is True
    assert expression["Expression"] == "IF(queued > 0 AND FILL(audited, 0) < 1, 1, 0)"
    ids = {
        q["Id"]: q["MetricStat"]["Metric"]["MetricName"]
        for q in missed["Metrics"]
        if "MetricStat" in q
    }
    assert ids == {"queued": "AuditEventsQueued", "audited": "EventsAudited"}
    assert (missed["Threshold"], missed["ComparisonOperator"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
    )


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
