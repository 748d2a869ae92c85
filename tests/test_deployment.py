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
from chalicelib.notifications import settings as notification_settings
from chalicelib.storage import schema, ticket_store
from chalicelib.storage.ranks import NodeRef
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


#: Code that only the notification functions run (their policies are checked below).
NOTIFICATION_CODE = ("notifications", "webhooks")


def api_code() -> list[Path]:
    return [
        path
        for path in (ROOT / "chalicelib").rglob("*.py")
        if path.relative_to(ROOT / "chalicelib").parts[0] not in NOTIFICATION_CODE
    ]


def actions_called_by_the_code() -> set[str]:
    """IAM actions for every DynamoDB call in ``chalicelib``, read from its syntax tree
    (but for the notification code, which the API never runs).

    ``client.transact_write_items`` and ``client.transact_get_items`` need no IAM
    action of their own: each item in them is authorised as the plain action
    (``{"Put": ...}`` needs PutItem, ``{"Get": ...}`` GetItem).
    """
    actions: set[str] = set()
    for path in api_code():
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


def cloudformation_shape(key: str, value: Any) -> Any:
    """A ``CreateTable`` parameter as CloudFormation spells it: its ``StreamSpecification``
    has no ``StreamEnabled`` (a stream is on when the property is there)."""
    if key != "StreamSpecification":
        return value
    shape = dict(value)
    assert shape.pop("StreamEnabled") is True
    return shape


def test_the_code_creates_its_tables_with_the_templates_stream(template: dict[str, Any]) -> None:
    properties = template["Resources"]["TicketsTable"]["Properties"]
    code = TABLE_DEFINITION["StreamSpecification"]
    assert cloudformation_shape("StreamSpecification", code) == properties["StreamSpecification"]


def test_template_table_matches_the_code_and_is_protected(template: dict[str, Any]) -> None:
    table = template["Resources"]["TicketsTable"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    for key, value in TABLE_DEFINITION.items():
        assert properties[key] == cloudformation_shape(key, value), key
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True
    assert "TableName" not in properties  # named by CloudFormation, passed by reference
    # The stream feeds the notifications; the TTL expires their idempotency markers.
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}


def test_functions_get_the_table_by_reference_and_their_own_policy(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    functions = {
        name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
    }
    expected_policy = {
        "APIHandler": "policy-prod.json",
        "AuditInvariants": "policy-prod-audit.json",
        "AuditWorker": "policy-prod-audit-worker.json",
        "NotifyChanges": "policy-prod-notify.json",
        "DeliverWebhooks": "policy-prod-webhooks.json",
    }
    assert set(functions) == set(expected_policy)
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
        ("NotifyChanges", "NotifyChangesLogGroup"),
        ("DeliverWebhooks", "DeliverWebhooksLogGroup"),
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
    assert notification_settings.WEBHOOK_QUEUE_NAME not in text  # the same for webhooks
    assert notification_settings.STREAM_PLACEHOLDER_ARN not in text  # replaced by the stream


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
    notify = json.dumps({"Fn::Sub": "${AWS::StackName}-notify"})
    webhooks = json.dumps({"Fn::Sub": "${AWS::StackName}-webhooks"})
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
        ("AWS/Lambda", "Errors", notify),
        ("AWS/Lambda", "IteratorAge", notify),
        ("AWS/Lambda", "Errors", webhooks),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            json.dumps({"Fn::GetAtt": ["NotificationFailureQueue", "QueueName"]}),
        ),
        (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            json.dumps({"Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]}),
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


# -- notifications (issue 15): the stream handler and the webhook worker -----------------------

NOTIFY = "NotifyChanges"
WEBHOOKS = "DeliverWebhooks"
STREAM_ARN = {"Fn::GetAtt": ["TicketsTable", "StreamArn"]}
FOURTEEN_DAYS = 14 * 24 * 3600

#: What the stream handler calls, with the role the Lambda service uses for it too.
#: The calls the handlers make (``test_notify_policy_grants_exactly_what_the_handler_calls``
#: records them in a real run), and
#: ``test_the_notification_code_calls_nothing_its_policies_do_not_grant`` holds them to it.
NOTIFY_ACTIONS = {
    # The event source mapping reads the stream with the function's role. Not
    # dynamodb:ListStreams: it has no resource type (only "*"), and the mapping is given the
    # stream's ARN, so it never lists streams (see README, "Notifications").
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    # chalicelib/notifications: the event item (GetItem), a standing read (TransactGetItems,
    # TicketStore.snapshot: each Get is authorised as GetItem), the organiser partition's
    # webhook endpoints (Query), the NOTICE#... idempotency markers (conditional UpdateItem:
    # claim, done, release). ``test_notify_policy_grants_exactly_what_the_handler_calls``
    # records the calls of a real run.
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    # chalicelib/notifications: the emails (SES v2 SendEmail).
    "ses:SendEmail",
    # chalicelib/notifications: webhook deliveries queued for the worker; and the Lambda
    # service sends the records it gives up on to the on-failure destination with this role.
    "sqs:SendMessage",
}
#: The webhook worker: the SQS event source (Receive, Delete, GetQueueAttributes), a retry
#: queued again with a delay (SendMessage), a delivery given up on sent to the dead-letter
#: queue (SendMessage); the endpoint item read and its failure count / disabled flag updated.
WEBHOOK_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "sqs:SendMessage",
} | EVENT_SOURCE_ACTIONS
STREAM_ACTIONS = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
}


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def resources_of(statement: dict[str, Any]) -> list[Any]:
    resource = statement.get("Resource", [])
    return resource if isinstance(resource, list) else [resource]


def all_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in actions_of(s)}


def statements_for(policy: dict[str, Any], prefix: str) -> dict[str, list[Any]]:
    """The resources granted, by the (sorted, joined) actions of the statements whose actions
    start with ``prefix``; resources in a canonical order (statements with the same actions
    pooled)."""
    pooled: dict[str, list[Any]] = {}
    for statement in policy["Statement"]:
        if actions_of(statement)[0].startswith(prefix):
            key = " ".join(sorted(actions_of(statement)))
            pooled.setdefault(key, []).extend(resources_of(statement))
    return {key: sorted(value, key=json.dumps) for key, value in pooled.items()}


def canonical(resources: list[Any]) -> list[Any]:
    return sorted(resources, key=json.dumps)


@pytest.mark.parametrize(
    ("policy_file", "expected"),
    [
        ("policy-prod-notify.json", NOTIFY_ACTIONS),
        ("policy-aws-notify.json", NOTIFY_ACTIONS),
        ("policy-prod-webhooks.json", WEBHOOK_ACTIONS),
        ("policy-aws-webhooks.json", WEBHOOK_ACTIONS),
    ],
)
def test_notification_policies_grant_exactly_the_expected_actions(
    policy_file: str, expected: set[str]
) -> None:
    policy = load_policy(policy_file)
    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert all_actions(policy) == expected | logs
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in actions_of(statement))
        assert "*" not in resources_of(statement)


def test_prod_notify_policy_names_the_stream_the_table_the_sender_and_two_queues() -> None:
    policy = load_policy("policy-prod-notify.json")
    assert statements_for(policy, "dynamodb:") == {
        # The stream only, never the table's other streams or anyone else's.
        "dynamodb:DescribeStream dynamodb:GetRecords dynamodb:GetShardIterator": [STREAM_ARN],
        # The table itself, and of its indexes only the waiting list: settling promotions
        # by count reads the list's first entries.
        "dynamodb:GetItem dynamodb:Query dynamodb:UpdateItem": [TABLE_ARN],
        "dynamodb:Query": [{"Fn::Sub": "${TicketsTable.Arn}/index/WaitingList"}],
    }
    # The webhook queue (deliveries for the worker) and the on-failure destination; not the
    # webhook dead-letter queue.
    assert statements_for(policy, "sqs:") == {
        "sqs:SendMessage": canonical(
            [
                {"Fn::GetAtt": [queue, "Arn"]}
                for queue in ("NotificationFailureQueue", "WebhookQueue")
            ]
        )
    }
    [log] = [s for s in policy["Statement"] if s["Action"][0].startswith("logs:")]
    assert log["Resource"]["Fn::Sub"].endswith("${AWS::StackName}-notify:*")


def test_prod_webhook_policy_names_the_table_its_queue_and_its_dead_letter_queue() -> None:
    policy = load_policy("policy-prod-webhooks.json")
    assert statements_for(policy, "dynamodb:") == {
        "dynamodb:GetItem dynamodb:UpdateItem": [TABLE_ARN]
    }
    assert statements_for(policy, "sqs:") == {
        "sqs:DeleteMessage sqs:GetQueueAttributes sqs:ReceiveMessage sqs:SendMessage": [
            {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
        ],
        "sqs:SendMessage": [{"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}],
    }
    [log] = [s for s in policy["Statement"] if s["Action"][0].startswith("logs:")]
    assert log["Resource"]["Fn::Sub"].endswith("${AWS::StackName}-webhooks:*")


def test_chalice_deploy_notification_policies_name_the_configured_table_and_queues() -> None:
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    table = (
        "arn:aws:dynamodb:*:*:table/"
        + config["stages"]["aws"]["environment_variables"]["TICKETS_TABLE"]
    )
    queue = f"arn:aws:sqs:*:*:{notification_settings.WEBHOOK_QUEUE_NAME}"
    notify = load_policy("policy-aws-notify.json")
    assert statements_for(notify, "dynamodb:") == {
        "dynamodb:DescribeStream dynamodb:GetRecords dynamodb:GetShardIterator": [
            f"{table}/stream/*"
        ],
        "dynamodb:GetItem dynamodb:Query dynamodb:UpdateItem": [table],
        "dynamodb:Query": [f"{table}/index/WaitingList"],
    }
    assert statements_for(notify, "sqs:") == {
        "sqs:SendMessage": canonical([queue, "arn:aws:sqs:*:*:ticket-booking-notify-failures"])
    }
    webhooks = load_policy("policy-aws-webhooks.json")
    assert statements_for(webhooks, "dynamodb:") == {
        "dynamodb:GetItem dynamodb:UpdateItem": [table]
    }
    assert statements_for(webhooks, "sqs:") == {
        "sqs:DeleteMessage sqs:GetQueueAttributes sqs:ReceiveMessage sqs:SendMessage": [queue],
        "sqs:SendMessage": [f"{queue}-dlq"],
    }
    for policy, function in ((notify, "notify_changes"), (webhooks, "deliver_webhooks")):
        [log] = [s for s in policy["Statement"] if s["Action"][0].startswith("logs:")]
        assert log["Resource"].endswith(f"/aws/lambda/ticket-booking-aws-{function}:*")


def matches(pattern: Any, value: Any) -> bool:
    """A Lambda event filter pattern against a record: nested objects, and lists of
    alternatives that are literals or ``{"prefix": ...}`` (the only forms used here; any
    other operator fails the test rather than being guessed at)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            name in value and matches(sub, value[name]) for name, sub in pattern.items()
        )
    assert isinstance(pattern, list), pattern
    for alternative in pattern:
        if isinstance(alternative, dict):
            [(operator, operand)] = alternative.items()
            assert operator == "prefix", f"unsupported filter operator {operator}"
            if isinstance(value, str) and value.startswith(operand):
                return True
        elif alternative == value:
            return True
    return False


def stream_record(key: dict[str, Any], event_name: str = "MODIFY") -> dict[str, Any]:
    return {
        "eventID": "1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": key, "SequenceNumber": "100", "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


def invokes(filters: list[dict[str, str]], record: dict[str, Any]) -> bool:
    """Lambda invokes the function for a record that any one of the filters matches."""
    return any(matches(json.loads(f["Pattern"]), record) for f in filters)


def stream_source(template: dict[str, Any]) -> dict[str, Any]:
    [source] = template["Resources"][NOTIFY]["Properties"]["Events"].values()
    assert source["Type"] == "DynamoDB"
    return dict(source["Properties"])


def test_the_stream_handler_reads_the_tables_own_stream_and_reports_item_failures(
    template: dict[str, Any],
) -> None:
    source = stream_source(template)
    assert source["Stream"] == STREAM_ARN  # not chalice's placeholder (aws/chalice#1882)
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["BisectBatchOnFunctionError"] is True
    assert 1 <= source["MaximumRetryAttempts"] <= 10
    # Within the stream's own 24-hour retention, so a record is given up on, never lost.
    assert 60 <= source["MaximumRecordAgeInSeconds"] <= 86400
    assert source["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": ["NotificationFailureQueue", "Arn"]}}
    }
    failures = template["Resources"]["NotificationFailureQueue"]
    assert failures["Type"] == "AWS::SQS::Queue"
    assert failures["Properties"]["MessageRetentionPeriod"] == FOURTEEN_DAYS
    assert failures["Properties"]["SqsManagedSseEnabled"] is True


def test_the_stream_filter_admits_places_and_events_only(template: dict[str, Any]) -> None:
    filters = stream_source(template)["FilterCriteria"]["Filters"]
    assert 1 <= len(filters) <= 5  # Lambda's default quota of filters per mapping
    assert all(len(f["Pattern"]) <= 4096 for f in filters)
    notice = {"PK": {"S": schema.event_partition(7)}, "SK": {"S": "NOTICE#evt_0123"}}
    admitted = [
        schema.person_key(7, "ann@example.com"),
        schema.event_key(7),
    ]
    refused = [
        schema.rank_node_key(7, NodeRef(0, 0)),  # the position index
        schema.rank_node_key(7, NodeRef(2, 41)),
        notice,  # the notifications' own idempotency markers
        schema.owned_event_key("sub-1", 7),  # organiser items: SK EVENT#000...7
        schema.organiser_day_key("sub-1", "2030-01-01"),
        schema.sequence_key(),
        {"PK": {"S": "ORGANISER#sub-1"}, "SK": {"S": "EVENT"}},
        {"PK": {"S": "ORGANISER#sub-1"}, "SK": {"S": "PERSON#ann@example.com"}},
        {"PK": {"S": schema.event_partition(7)}, "SK": {"S": "EVENTS"}},
    ]
    for event_name in ("INSERT", "MODIFY", "REMOVE"):
        for key in admitted:
            assert invokes(filters, stream_record(key, event_name)), key
        for key in refused:
            assert not invokes(filters, stream_record(key, event_name)), key


def test_the_matcher_itself() -> None:
    # Guards the test's own filter matcher: prefixes, literals, nesting, absent fields.
    pattern = {"a": {"b": [{"prefix": "X#"}, "Y"]}}
    assert matches(pattern, {"a": {"b": "X#1"}, "c": 1})
    assert matches(pattern, {"a": {"b": "Y"}})
    assert not matches(pattern, {"a": {"b": "YY"}})
    assert not matches(pattern, {"a": {"c": "X#1"}})
    assert not matches(pattern, {"a": "X#1"})
    with pytest.raises(AssertionError, match="unsupported"):
        matches({"a": [{"anything-but": "x"}]}, {"a": "y"})


def granted_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement in the template, with the resource it belongs to."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        policies = properties.get("Policies", [])  # a user pool's Policies is no IAM list
        policies = policies if isinstance(policies, list) else []
        documents = [properties.get("PolicyDocument")]
        documents += [p.get("PolicyDocument") for p in policies if isinstance(p, dict)]
        if resource["Type"] == "AWS::Serverless::Function":  # SAM's inline documents
            documents += [p for p in policies if isinstance(p, dict) and "Statement" in p]
        for document in documents:
            if isinstance(document, dict):
                found += [(name, s) for s in document.get("Statement", [])]
    return found


def allows_a_stream_action(statement: dict[str, Any]) -> bool:
    for action in actions_of(statement):
        pattern = re.escape(action).replace(r"\*", ".*")
        if any(re.fullmatch(pattern, a) for a in STREAM_ACTIONS):
            return True
    return False


def test_no_policy_grants_stream_actions_on_every_resource(template: dict[str, Any]) -> None:
    statements = granted_statements(template)
    stream_grants = [(n, s) for n, s in statements if allows_a_stream_action(s)]
    assert [n for n, _ in stream_grants] == ["NotifyChangesRole"]  # the stream handler alone
    for _, statement in stream_grants:
        assert statement["Effect"] == "Allow"
        assert resources_of(statement) == [STREAM_ARN]
    for name, statement in statements:
        if allows_a_stream_action(statement):
            assert "*" not in resources_of(statement), name
    # No managed policy brings them back in (AWSLambdaDynamoDBExecutionRole grants "*").
    for resource in template["Resources"].values():
        arns = json.dumps(resource.get("Properties", {}).get("ManagedPolicyArns", []))
        assert "DynamoDB" not in arns


def test_the_stream_grant_check_catches_a_wildcard() -> None:
    # Guards the check above: chalice's own injected policy (constants.DDB_EVENT_SOURCE_POLICY)
    # and wildcard actions are both recognised.
    from chalice.constants import DDB_EVENT_SOURCE_POLICY

    assert allows_a_stream_action(DDB_EVENT_SOURCE_POLICY)
    assert DDB_EVENT_SOURCE_POLICY["Resource"] == "*"
    assert allows_a_stream_action({"Action": "dynamodb:*"})
    assert allows_a_stream_action({"Action": ["dynamodb:Get*"]})
    assert not allows_a_stream_action({"Action": ["dynamodb:GetItem", "sqs:SendMessage"]})


def test_the_webhook_worker_drains_its_own_queue_into_a_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    worker = resources[WEBHOOKS]["Properties"]
    [source] = worker["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == {"Fn::Sub": "${WebhookQueue.Arn}"}
    assert source["Properties"]["BatchSize"] == 1  # one delivery attempt per message
    assert 2 <= source["Properties"]["ScalingConfig"]["MaximumConcurrency"] <= 20
    queue = resources["WebhookQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]  # AWS's advice for Lambda
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    dead_letters = resources["WebhookDeadLetterQueue"]["Properties"]
    for properties in (queue, dead_letters):
        assert properties["MessageRetentionPeriod"] == FOURTEEN_DAYS
        assert properties["SqsManagedSseEnabled"] is True
    assert "QueueName" not in queue  # named by CloudFormation, like the audit queue


def test_notification_functions_get_their_queues_and_sender_by_reference(
    template: dict[str, Any],
) -> None:
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    resources = template["Resources"]
    notify = resources[NOTIFY]["Properties"]["Environment"]["Variables"]
    webhooks = resources[WEBHOOKS]["Properties"]["Environment"]["Variables"]
    queue_url = notification_settings.WEBHOOK_QUEUE_URL_ENV
    dead_letter_url = notification_settings.WEBHOOK_DEAD_LETTER_URL_ENV
    assert notify[queue_url] == webhooks[queue_url] == {"Ref": "WebhookQueue"}
    assert webhooks[dead_letter_url] == {"Ref": "WebhookDeadLetterQueue"}
    assert dead_letter_url not in notify
    prod = config["stages"]["prod"]["lambda_functions"]["notify_changes"]
    assert notify[notification_settings.MAIL_FROM_ENV] == prod["environment_variables"]["MAIL_FROM"]
    assert notification_settings.MAIL_FROM_ENV not in webhooks  # it sends no email
    for variables in (notify, webhooks):
        assert notification_settings.MAIL_OUTBOX_ENV not in variables  # local only


@pytest.mark.parametrize("stage", ["prod", "aws"])
def test_the_sender_is_set_per_stage_and_the_policy_sends_as_it_only(stage: str) -> None:
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    sender = config["stages"][stage]["lambda_functions"]["notify_changes"]["environment_variables"][
        notification_settings.MAIL_FROM_ENV
    ]
    domain = sender.split("@")[1]
    [statement] = [
        s
        for s in load_policy(f"policy-{stage}-notify.json")["Statement"]
        if "ses:SendEmail" in s["Action"]
    ]
    assert statement["Action"] == ["ses:SendEmail"]
    assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": sender}}
    identities = [
        json.dumps(r).split(":identity/")[1].rstrip('"}') for r in resources_of(statement)
    ]
    assert sorted(identities) == sorted([domain, sender])  # the verified domain, or address


def test_only_the_local_stage_allows_loopback_webhooks(template: dict[str, Any]) -> None:
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    name = notification_settings.WEBHOOKS_ALLOW_LOOPBACK_ENV
    assert name not in config["environment_variables"]
    allowing = set()
    for stage, settings in config["stages"].items():
        scopes = [settings.get("environment_variables", {})]
        scopes += [
            f.get("environment_variables", {})
            for f in settings.get("lambda_functions", {}).values()
        ]
        if any(name in scope for scope in scopes):
            allowing.add(stage)
    assert allowing == {"local"}
    assert config["stages"]["local"]["environment_variables"][name] == "1"
    assert name not in json.dumps(template)


def test_notification_alarms_fire_on_failures_lag_and_dead_letters(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    for alarm_name, queue in (
        ("NotificationFailureAlarm", "NotificationFailureQueue"),
        ("WebhookDeadLetterAlarm", "WebhookDeadLetterQueue"),
    ):
        alarm = resources[alarm_name]["Properties"]
        assert alarm["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
        ]
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
            1,
            "GreaterThanOrEqualToThreshold",
        )
    lag = resources["NotifyChangesIteratorAgeAlarm"]["Properties"]
    assert (lag["MetricName"], lag["Statistic"]) == ("IteratorAge", "Maximum")
    assert 0 < lag["Threshold"] <= 5 * 60 * 1000  # milliseconds
    for alarm_name, function in (
        ("NotifyChangesErrorAlarm", NOTIFY),
        ("DeliverWebhooksErrorAlarm", WEBHOOKS),
    ):
        alarm = resources[alarm_name]["Properties"]
        assert alarm["MetricName"] == "Errors"
        [dimension] = alarm["Dimensions"]
        assert dimension["Value"] == resources[function]["Properties"]["FunctionName"]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


#: boto3 methods the notification code may call, and the IAM action each one needs
#: (``transact_get_items`` needs none of its own: its ``{"Get": ...}`` items need GetItem).
AWS_METHODS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "send_email": "ses:SendEmail",
    "send_raw_email": "ses:SendRawEmail",
    "send_message": "sqs:SendMessage",
    "send_message_batch": "sqs:SendMessage",
    "receive_message": "sqs:ReceiveMessage",
    "delete_message": "sqs:DeleteMessage",
    "delete_message_batch": "sqs:DeleteMessage",
    "change_message_visibility": "sqs:ChangeMessageVisibility",
    "change_message_visibility_batch": "sqs:ChangeMessageVisibility",
    "get_queue_attributes": "sqs:GetQueueAttributes",
    "get_records": "dynamodb:GetRecords",
    "get_shard_iterator": "dynamodb:GetShardIterator",
    "describe_stream": "dynamodb:DescribeStream",
    "list_streams": "dynamodb:ListStreams",
}


def aws_calls_in(paths: list[Path]) -> set[str]:
    """The IAM actions of the AWS calls in ``paths`` (method names above; transaction items)."""
    actions: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in AWS_METHODS:
                actions.add(AWS_METHODS[node.attr])
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in ("Get", "Put", "Update"):
                        actions.add(f"dynamodb:{key.value}Item")
    return actions


def test_the_notification_code_calls_nothing_its_policies_do_not_grant() -> None:
    """A static read of the notification code: each call in it needs its grant (the
    recorded runs below check the calls a run makes, this one the calls any path could).

    The local stream poller (devtools) is not deployed code, so it is not read.
    """
    paths = [
        path
        for folder in NOTIFICATION_CODE
        if (ROOT / "chalicelib" / folder).is_dir()
        for path in (ROOT / "chalicelib" / folder).rglob("*.py")
    ]
    assert paths  # chalicelib/notifications at least
    granted_somewhere = NOTIFY_ACTIONS | WEBHOOK_ACTIONS
    assert aws_calls_in(paths) <= granted_somewhere
    # The stream is read by the Lambda service, never by the handler's own code.
    assert not aws_calls_in(paths) & STREAM_ACTIONS


def test_the_aws_call_scan_finds_what_it_should(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "def f(c, s, q):\n"
        "    c.transact_get_items(TransactItems=[{'Get': {}}])\n"
        "    s.send_email(Content={})\n"
        "    q.change_message_visibility(VisibilityTimeout=1)\n"
    )
    assert aws_calls_in([source]) == {
        "dynamodb:GetItem",
        "ses:SendEmail",
        "sqs:ChangeMessageVisibility",
    }


def test_the_stream_event_source_is_a_valid_event_source_mapping(
    template: dict[str, Any], tmp_path: Path
) -> None:
    """cfn-lint does not look inside a SAM function's events here (no SAM translator), so
    the mapping SAM makes of them (``Stream`` becomes ``EventSourceArn``, the rest is
    copied) is linted as a plain ``AWS::Lambda::EventSourceMapping``."""
    source = stream_source(template)
    mapping = {"EventSourceArn": source.pop("Stream"), "FunctionName": {"Ref": "Function"}}
    mapping.update(source)
    plain = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": mapping},
            "Function": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.11",
                    "Handler": "app.notify_changes",
                    "Role": "arn:aws:iam::123456789012:role/r",
                    "Code": {"ZipFile": "x"},
                },
            },
            "TicketsTable": template["Resources"]["TicketsTable"],
            "NotificationFailureQueue": template["Resources"]["NotificationFailureQueue"],
        },
    }
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(plain))
    result = lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


#: The stream is read by the Lambda service with the function's role, never by its code.
STREAM_READ_ACTIONS = {
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
}


def iam_actions(calls: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """IAM actions of recorded calls: a transaction is authorised per item (a
    ``TransactGetItems`` as ``GetItem``, a ``TransactWriteItems`` as each item's own
    action); SES v2's ``SendEmail`` is ``ses:SendEmail``."""
    renamed = {"dynamodb:TransactGetItems": "dynamodb:GetItem", "sesv2:SendEmail": "ses:SendEmail"}
    per_item = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
    actions = set()
    for name, params in calls:
        if name == "dynamodb:TransactWriteItems":
            for item in params["TransactItems"]:
                actions |= {f"dynamodb:{per_item[kind]}" for kind in item if kind in per_item}
                if "ConditionCheck" in item:
                    actions.add("dynamodb:ConditionCheckItem")
        else:
            actions.add(renamed.get(name, name))
    return actions


@pytest.fixture
def notification_wiring(
    moto_store: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, Any]:
    """moto's SES (a verified sender) and two SQS queues, named to the functions as the
    template names them; a receiver URL on loopback."""
    import boto3

    from chalicelib.notifications.settings import (
        MAIL_FROM_ENV,
        WEBHOOK_DEAD_LETTER_URL_ENV,
        WEBHOOK_QUEUE_URL_ENV,
        WEBHOOKS_ALLOW_LOOPBACK_ENV,
    )

    ses = boto3.client("sesv2", region_name="us-east-1")
    ses.create_email_identity(EmailIdentity="tickets@example.com")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="webhooks")["QueueUrl"]
    dead = sqs.create_queue(QueueName="webhooks-dlq")["QueueUrl"]
    monkeypatch.setenv(MAIL_FROM_ENV, "tickets@example.com")
    monkeypatch.setenv(WEBHOOK_QUEUE_URL_ENV, queue)
    monkeypatch.setenv(WEBHOOK_DEAD_LETTER_URL_ENV, dead)
    monkeypatch.setenv(WEBHOOKS_ALLOW_LOOPBACK_ENV, "1")
    return {"store": moto_store, "sqs": sqs, "queue": queue}


def _a_promotion_with_an_endpoint(store: Any, url: str) -> None:
    from chalicelib import booking
    from chalicelib.identity.access import Caller
    from chalicelib.webhooks import endpoints

    owner = Caller(subject="owner", email="owner@example.com", is_organiser=True)
    event_id = booking.create_event(store, "Gig", 1, owner_id=owner.subject).event_id
    endpoints.register(store, owner, url, event_id)
    booking.book_ticket(store, event_id, "ann@example.com", None)
    booking.book_ticket(store, event_id, "bob@example.com", None)
    booking.book_ticket(store, event_id, "cat@example.com", None)
    booking.cancel_booking(store, event_id, "ann@example.com")  # Bob, promoted by name
    # Bob's cancellation in a race passes the ticket to Cat by count: the handler settles it.
    contended = booking.ContendedEvents()
    contended.remember(store.table_name, event_id)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(booking, "contended_events", contended)
        booking.cancel_booking(store, event_id, "bob@example.com")


@pytest.mark.parametrize("policy_file", ["policy-prod-notify.json", "policy-aws-notify.json"])
def test_notify_policy_grants_exactly_what_the_handler_calls(
    notification_wiring: dict[str, Any], policy_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run of ``notify_changes`` on moto's stream (emails through SES, webhooks
    queued in SQS), every client call recorded."""
    from moto.dynamodb.models import dynamodb_backends

    from app import app
    from chalicelib.notifications import dispatch, mail
    from chalicelib.webhooks.queue import delivery_queue
    from devtools.stream_poller import lambda_context, lambda_record

    store = notification_wiring["store"]
    monkeypatch.setattr(dispatch, "WORKERS", 1)  # moto is not thread-safe
    _a_promotion_with_an_endpoint(store, "http://127.0.0.1:9/hooks")
    calls: list[tuple[str, dict[str, Any]]] = []
    record_calls(ticket_store().client, "dynamodb", calls)
    mailer = mail.mailer()
    assert isinstance(mailer, mail.SesMailer)
    record_calls(mailer.client, "sesv2", calls)
    queue = delivery_queue()
    record_calls(queue.client, "sqs", calls)  # type: ignore[attr-defined]
    # moto keeps the stream but does not serve the Streams API: its records, as Lambda
    # would deliver them.
    table = dynamodb_backends["123456789012"]["us-east-1"].tables[store.table_name]
    records = [lambda_record(r.to_json(), "arn:stream") for r in table.stream_shard.items]
    answer = app.handler_map["notify_changes"]({"Records": records}, lambda_context("notify"))
    assert answer == {"batchItemFailures": []}
    assert {"sesv2:SendEmail", "sqs:SendMessage"} <= called(calls)
    policy = load_policy(policy_file)
    code = {a for a in all_actions(policy) if a.split(":")[0] in ("dynamodb", "ses", "sqs")}
    # The on-failure destination is sent to by the Lambda service (sqs:SendMessage, which
    # the code needs too); the stream is read by it.
    assert iam_actions(calls) == code - STREAM_READ_ACTIONS
    assert tables_touched(calls) == {"table", "index/WaitingList"}
    # Cat, promoted by count, was settled: her place is a ticket now.
    assert "dynamodb:TransactWriteItems" in called(calls)


@pytest.mark.parametrize("policy_file", ["policy-prod-webhooks.json", "policy-aws-webhooks.json"])
def test_webhook_worker_policy_grants_exactly_what_it_calls(
    notification_wiring: dict[str, Any], policy_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker on a delivery that fails (a retry queued), then one given up on (sent to
    the dead-letter queue), then one that succeeds, every client call recorded."""
    from app import app
    from chalicelib.webhooks import addresses, delivery
    from chalicelib.webhooks.queue import delivery_queue

    store, sqs, queue_url = (notification_wiring[k] for k in ("store", "sqs", "queue"))
    from chalicelib import booking
    from chalicelib.identity.access import Caller
    from chalicelib.notifications.domain_events import DomainEvent
    from chalicelib.webhooks import endpoints

    owner = Caller(subject="owner", email="owner@example.com", is_organiser=True)
    event_id = booking.create_event(store, "Gig", 1, owner_id=owner.subject).event_id
    endpoints.register(store, owner, "http://127.0.0.1:9/hooks", event_id)
    news = DomainEvent("evt_" + "1" * 32, "place.promoted", event_id, "t", "bob@example.com")
    queue = delivery_queue()
    assert delivery.enqueue_deliveries(store, queue, owner.subject, news) == 1
    [first] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    calls: list[tuple[str, dict[str, Any]]] = []
    record_calls(ticket_store().client, "dynamodb", calls)
    record_calls(queue.client, "sqs", calls)  # type: ignore[attr-defined]
    last = json.loads(first["Body"]) | {"attempt": delivery.MAX_ATTEMPTS}
    bodies = [first["Body"], json.dumps(last), first["Body"]]
    statuses = iter([500, 500, 200])
    monkeypatch.setattr(addresses, "post", lambda url, headers, body: next(statuses))
    for body in bodies:
        sqs_event = {
            "Records": [
                {
                    "body": body,
                    "messageId": "m",
                    "receiptHandle": "r",
                    "attributes": {},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "awsRegion": "us-east-1",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:1:webhooks",
                    "md5OfBody": "",
                }
            ]
        }
        app.handler_map["deliver_webhooks"](sqs_event, SimpleNamespace())
    sent_to = {params["QueueUrl"] for name, params in calls if name == "sqs:SendMessage"}
    assert len(sent_to) == 2  # a retry to its queue, the given-up one to the dead-letter queue
    policy = load_policy(policy_file)
    code = {a for a in all_actions(policy) if a.split(":")[0] in ("dynamodb", "sqs")}
    assert iam_actions(calls) | EVENT_SOURCE_ACTIONS == code
    assert tables_touched(calls) == {"table"}
