"""HTTP routes of the outbound-call function app: wiring only; the work lives in `shared/`."""

from __future__ import annotations

import azure.functions as func

from shared.async_requests import POISON_QUEUE_NAME, QUEUE_NAME
from shared.calls import CallRequest
from shared.errors import Problem
from shared.http import (
    MAX_EVENTS_BYTES,
    endpoint,
    header_value,
    json_response,
    public_url,
    query_value,
    read_body,
    read_json_object,
    refusal_for_sender,
    reply_response,
    route_value,
    wants_async,
)
from shared.idempotency import PURGE_SCHEDULE
from shared.logs import quiet_sdk_loggers
from shared.openapi import document as openapi_document
from shared.readiness import report as readiness_report
from shared.services import services
from shared.status_callbacks import QUEUE_NAME as STATUS_QUEUE_NAME
from shared.status_callbacks import RESUME_SCHEDULE
from shared.webhooks import (
    SignedCall,
    abuse_protection,
    answer_events,
    for_event_sender,
    for_sns,
    is_binary_cloudevent,
    read_delivery,
)
from shared.webhooks.pubsub import MAX_PUSH_BYTES
from shared.webhooks.signed import caller_key
from shared.webhooks.sns import MAX_SNS_BYTES, NOTIFICATION, SUBSCRIBE

quiet_sdk_loggers()
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="calls", methods=["POST"])
@endpoint
def place_call(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    body = read_json_object(req)
    app_services = services()
    request = CallRequest.from_json(body)
    key = caller_key(header_value(req, "Idempotency-Key"))
    if wants_async(req):
        app_services.calls.admit(request, key)  # input and policy errors answer now, not when the job runs
        return reply_response(app_services.async_requests.accept(body, key), False, request_id)
    reply, replayed = app_services.calls.request_call(request, key, request_id)
    return reply_response(reply, replayed, request_id)


@app.route(route="calls/requests/{requestId}", methods=["GET"])
@endpoint
def call_request_result(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    reply = services().async_requests.result(route_value(req, "requestId"))
    return reply_response(reply, False, request_id)


@app.queue_trigger(arg_name="msg", queue_name=QUEUE_NAME, connection="AzureWebJobsStorage")
def place_queued_call(msg: func.QueueMessage) -> None:
    app_services = services()
    message = msg.get_body().decode("utf-8", errors="replace")
    app_services.async_requests.process(message, msg.dequeue_count or 1, app_services.calls.answer)


@app.queue_trigger(arg_name="msg", queue_name=POISON_QUEUE_NAME, connection="AzureWebJobsStorage")
def record_poisoned_call(msg: func.QueueMessage) -> None:
    services().async_requests.fail(msg.get_body().decode("utf-8", errors="replace"))


@app.queue_trigger(arg_name="msg", queue_name=STATUS_QUEUE_NAME, connection="AzureWebJobsStorage")
def watch_call_status(msg: func.QueueMessage) -> None:
    services().status_watcher.run(msg.get_body().decode("utf-8", errors="replace"))


@app.route(route="subscriptions", methods=["POST"])
@endpoint
def subscribe(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    subscription = services().subscriptions.subscribe(read_json_object(req))
    location = public_url(req, f"/api/subscriptions/{subscription.id}")  # Power Automate DELETEs it
    return json_response(201, {**subscription.to_json(), "requestId": request_id}, request_id, {"Location": location})


@app.route(route="subscriptions/{subscriptionId}", methods=["DELETE"])
@endpoint
def unsubscribe(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    subscription_id = route_value(req, "subscriptionId")
    deleted = services().subscriptions.unsubscribe(subscription_id)
    return json_response(200, {"id": subscription_id[:36], "deleted": deleted, "requestId": request_id}, request_id)


@app.timer_trigger(schedule=PURGE_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def purge_expired_records(timer: func.TimerRequest) -> None:
    services().idempotency.purge()


@app.timer_trigger(schedule=RESUME_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def resume_stalled_watches(timer: func.TimerRequest) -> None:
    services().status_watcher.resume_stalled()


@app.route(route="calls/validate", methods=["POST"])
@endpoint
def validate_call(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    request = CallRequest.from_json(read_json_object(req))
    plan = services().calls.plan(request)
    return json_response(200, {"valid": True, **plan.to_json(), "requestId": request_id}, request_id)


@app.route(route="webhooks/calls", methods=["POST"])
@endpoint
def call_webhook(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    delivery = services().webhooks.signatures.verify(req.headers, read_body(req))
    return _place_signed(req, delivery, request_id)


def _place_signed(req: func.HttpRequest, delivery: SignedCall, request_id: str) -> func.HttpResponse:
    """A verified delivery's call: only signed material names it, so an Idempotency-Key header is ignored."""
    calls = services().calls
    request = CallRequest.from_json(read_json_object(req, delivery.call))
    reply, replayed = calls.request_call(request, delivery.key, request_id)
    return reply_response(reply, replayed, request_id)


@app.route(route="webhooks/sns", methods=["POST"])
@endpoint
def sns_message(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    sns = services().webhooks.sns
    message = sns.verify(req.headers, read_body(req, MAX_SNS_BYTES, text_plain=True))
    if message.type == SUBSCRIBE:
        sns.confirm(message)
    if message.type != NOTIFICATION:
        answer = {"type": message.type, "topicArn": message.topic_arn, "requestId": request_id}
        return json_response(200, answer, request_id)
    try:
        return _place_signed(req, message.call(), request_id)
    except Problem as refused:  # SNS drops a message answered 4xx: one that can succeed later answers 503
        return refusal_for_sender(refused, request_id, for_sns)


@app.route(route="webhooks/pubsub", methods=["POST"])
@endpoint
def pubsub_push(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    delivery = services().webhooks.pubsub.verify(req.headers, read_body(req, MAX_PUSH_BYTES))
    return _place_signed(req, delivery, request_id)


@app.route(route="events/calls", methods=["POST", "OPTIONS"])
@endpoint
def call_events(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    if req.method == "OPTIONS":
        return func.HttpResponse(status_code=200, headers=abuse_protection(req.headers))
    app_services = services()
    try:
        body = read_body(req, MAX_EVENTS_BYTES, media_type_optional=is_binary_cloudevent(req.headers))
        delivery = read_delivery(req.headers, body, app_services.settings.max_events_per_delivery)
    except Problem as refused:  # the whole delivery, as senders act on it: Event Grid retries a 415 for a day
        return refusal_for_sender(refused, request_id, for_event_sender)
    if delivery.validation_code is not None:
        return json_response(200, {"validationResponse": delivery.validation_code}, request_id)
    calls = app_services.calls
    reply, replayed = answer_events(delivery.events, lambda data, key: calls.answer(data, key, request_id), request_id)
    return reply_response(reply, replayed, request_id)


@app.route(route="do-not-call/{number}", methods=["PUT", "GET", "DELETE"], auth_level=func.AuthLevel.ADMIN)
@endpoint
def do_not_call(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    registry = services().do_not_call
    number, region = route_value(req, "number"), query_value(req, "region")
    if req.method == "PUT":
        listing = registry.add(number, region, read_json_object(req) if req.get_body() else {})
    elif req.method == "DELETE":
        listing = registry.remove(number, region)
    else:
        listing = registry.look_up(number, region)
    return json_response(200, {**listing, "requestId": request_id}, request_id)


@app.route(route="calls/{conversationId}", methods=["GET"])
@endpoint
def call_status(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    status = services().calls.status(route_value(req, "conversationId"))
    return json_response(200, {**status, "requestId": request_id}, request_id)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def health(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    return json_response(200, {"status": "ok"}, request_id)


@app.route(route="health/ready", methods=["GET"])
@endpoint
def readiness(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    status, body, headers = readiness_report()
    return json_response(status, {**body, "requestId": request_id}, request_id, headers)


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def openapi(req: func.HttpRequest, request_id: str) -> func.HttpResponse:
    return json_response(200, openapi_document(), request_id)
