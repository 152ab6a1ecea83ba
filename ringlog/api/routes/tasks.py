"""``/v1/tasks``: business users change tasks; each request appends one event on ``tasks``.

Every route needs ``Authorization: Bearer <key>`` (401 otherwise), appends exactly one event
keyed by the task id with ``acks=all``, and answers ``202 {"task_id", "event_id"}`` only once
it is durable; a broker that is down or slow is 503 + ``Retry-After`` (nothing was promised).

With ``Idempotency-Key``, a retry of the same request gets the same answer and appends nothing;
the same key with another request (another route, task or body) is 422, and a retry while the
first attempt is in flight is 409 + ``Retry-After``. The event id is derived from the key, so
consumers can drop a duplicate even if the idempotency record was lost.

``DELETE`` is the one route that needs the task to exist: it answers 404 when the log holds no
event for the task (no ``tasks`` event with its id, no ``call.requested`` naming it) and 409
when the task was already deleted, after catching up with the log (:class:`TaskIndex`).
Writebacks, reschedules and incoming calls do not check: a writeback may be the first thing
known about a task.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Request, status

from ringlog.api.appending import append_event
from ringlog.api.deps import ApiKeyDep, Services, ServicesDep
from ringlog.api.idempotency import append_once, key_header, key_scope
from ringlog.api.models import Problem
from ringlog.api.task_models import (
    TASK_ID_PATTERN,
    DeleteIn,
    FieldWritebackIn,
    IncomingCallIn,
    RescheduleIn,
    TaskAccepted,
)
from ringlog.api.views import views_of
from ringlog.schemas import (
    Envelope,
    TaskDeleted,
    TaskFieldWriteback,
    TaskIncomingCall,
    TaskRescheduled,
    derived_event_id,
)
from ringlog.schemas.envelope import new_event_id
from ringlog.tasks.index import TaskIndex

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

TaskIdPath = Annotated[
    str, Path(pattern=TASK_ID_PATTERN, description="The task id (1-128 of A-Z a-z 0-9 . _ : -).")
]
IdempotencyKey = Annotated[
    str | None,
    key_header("A retry with the same key gets the same answer and appends nothing."),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or unknown API key"},
    409: {"model": Problem, "description": "the same Idempotency-Key is in flight; retry"},
    422: {"description": "invalid request, or Idempotency-Key reused for another request"},
    503: {"model": Problem, "description": "the log is unavailable; retry"},
}
_DELETE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": Problem, "description": "the log holds no event for this task"},
    409: {
        "model": Problem,
        "description": "the task is already deleted, or a delete of it is in flight",
    },
}

#: Builds the event once its id is fixed; may refuse the request by raising HTTPException.
Prepare = Callable[[uuid.UUID], Awaitable[Envelope]]


@router.post("/{task_id}/field-writeback", status_code=status.HTTP_202_ACCEPTED, responses=_ERRORS)
async def write_back_fields(
    task_id: TaskIdPath,
    body: FieldWritebackIn,
    api_key: ApiKeyDep,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Append ``task.field_writeback`` with the fields given (allow-list in
    :mod:`ringlog.tasks.fields`; unknown names are 422, each named in the error's ``loc``)."""

    async def prepare(event_id: uuid.UUID) -> Envelope:
        event = TaskFieldWriteback(task_id=task_id, actor=body.actor, fields=body.fields.values())
        return _envelope(event, event_id, task_id)

    event_id = await _append_once(
        services, api_key, idempotency_key, ("field-writeback", task_id), body, prepare
    )
    return TaskAccepted(task_id=task_id, event_id=str(event_id))


@router.post("/{task_id}/reschedule", status_code=status.HTTP_202_ACCEPTED, responses=_ERRORS)
async def reschedule(
    task_id: TaskIdPath,
    body: RescheduleIn,
    api_key: ApiKeyDep,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Append ``task.rescheduled``; ``scheduled_at`` must be timezone-aware and in the future."""

    async def prepare(event_id: uuid.UUID) -> Envelope:
        event = TaskRescheduled(
            task_id=task_id,
            actor=body.actor,
            call_ref=body.call_ref,
            scheduled_at=body.scheduled_at,
        )
        return _envelope(event, event_id, body.call_ref or task_id)

    event_id = await _append_once(
        services, api_key, idempotency_key, ("reschedule", task_id), body, prepare
    )
    return TaskAccepted(task_id=task_id, event_id=str(event_id))


@router.delete("/{task_id}", status_code=status.HTTP_202_ACCEPTED, responses=_DELETE_ERRORS)
async def delete_task(
    task_id: TaskIdPath,
    request: Request,
    api_key: ApiKeyDep,
    services: ServicesDep,
    body: Annotated[DeleteIn | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Append ``task.deleted`` for a task the log knows: 404 if it knows none, 409 if the task
    is already deleted or another delete of it is in flight in this process."""
    index = task_index(request)
    given = body or DeleteIn()
    if not index.claim(task_id):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"a delete of task {task_id} is in progress; retry",
            headers={"Retry-After": "1"},
        )

    async def prepare(event_id: uuid.UUID) -> Envelope:
        found = await index.status(task_id)
        if found == "unknown":
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task {task_id}")
        if found == "deleted":
            raise HTTPException(status.HTTP_409_CONFLICT, f"task {task_id} is already deleted")
        event = TaskDeleted(task_id=task_id, actor=given.actor, reason=given.reason)
        return _envelope(event, event_id, task_id)

    try:
        event_id = await _append_once(
            services, api_key, idempotency_key, ("delete", task_id), given, prepare
        )
    finally:
        index.release(task_id)
    return TaskAccepted(task_id=task_id, event_id=str(event_id))


@router.post("/incoming-call", status_code=status.HTTP_202_ACCEPTED, responses=_ERRORS)
async def record_incoming_call(
    body: IncomingCallIn,
    api_key: ApiKeyDep,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> TaskAccepted:
    """Append ``task.incoming_call``; without ``task_id`` the task gets ``task_<event id hex>``."""
    task_id = body.task_id

    async def prepare(event_id: uuid.UUID) -> Envelope:
        event = TaskIncomingCall(
            task_id=task_id or _generated_task_id(event_id),
            actor=body.actor,
            from_number=body.from_number,
            to_number=body.to_number,
            patient_ref=body.patient_ref,
            notes=body.notes,
        )
        return _envelope(event, event_id, event.task_id)

    event_id = await _append_once(
        services, api_key, idempotency_key, ("incoming-call",), body, prepare
    )
    return TaskAccepted(task_id=task_id or _generated_task_id(event_id), event_id=str(event_id))


def task_index(request: Request) -> TaskIndex:
    """The app's :class:`TaskIndex` (see :func:`ringlog.api.views.views_of`)."""
    return views_of(request).tasks


def _generated_task_id(event_id: uuid.UUID) -> str:
    return f"task_{event_id.hex}"


def _envelope(event: Any, event_id: uuid.UUID, correlation_id: str) -> Envelope:
    return Envelope.new(event, source="api", correlation_id=correlation_id, event_id=event_id)


async def _append_once(
    services: Services,
    api_key: str,
    idempotency_key: str | None,
    operation: tuple[str, ...],
    body: Any,
    prepare: Prepare,
) -> uuid.UUID:
    """Append the event ``prepare`` builds and return its id, honouring ``Idempotency-Key``
    (:func:`ringlog.api.idempotency.append_once`).

    Without a key the event gets a fresh UUIDv7. With one, its id is derived from the key; a
    completed earlier request with the same key and the same ``operation`` and body returns
    that id without calling ``prepare``; any failure (a refusal from ``prepare`` included)
    releases the claim so the request can be retried.
    """
    scope = key_scope(api_key, "tasks:")
    event_id = (
        new_event_id()
        if idempotency_key is None
        else derived_event_id("tasks", scope, idempotency_key)
    )
    request = "\x1f".join((*operation, body.model_dump_json() if body is not None else ""))

    async def append() -> str:
        envelope = await prepare(event_id)
        await append_event(services.log, services.metrics, envelope)
        return str(envelope.event_id)

    answer = await append_once(
        services.idempotency, scope, idempotency_key, request.encode(), append
    )
    return uuid.UUID(answer)
