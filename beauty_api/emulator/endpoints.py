"""What each endpoint answers: submit (sync or async), task query, credits, result download.

Task state and billing live here; `Emulator` (server.py) adds configuration and start/stop.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .answers import (
    Answer,
    Refusal,
    cdn_not_found,
    credit_pool,
    error_answer,
    error_fields,
    json_answer,
    success_fields,
)
from .contract import CREDITS_PER_TASK, KEY_HEADER, RESULTS_PREFIX, UNLIMITED_BALANCE
from .effect import EncodedResult, encode_result, render
from .faults import Fault, FaultPlan
from .multipart import SubmitRequest
from .stats import EmulatorStats
from .submit_checks import ValidSubmit, validate_submit


@dataclass
class Task:
    task_id: str
    queued_until: float
    done_at: float
    expires_at: float
    result: EncodedResult | None
    failure: Fault | None
    shape: str
    url_base: str
    settled: bool = False
    url: str = ""
    received_at: float = 0.0  # the upload was in (the task's clock starts here)
    answered_at: float = 0.0  # the submit's answer was ready
    queries: int = 0
    download_started_at: float | None = None  # first request for its result file
    download_sent_at: float | None = None  # ... and when that file had been sent


@dataclass
class StoredResult:
    result: EncodedResult
    expires_at: float
    dead: bool = False
    task: Task | None = None


class EmulatorEndpoints:
    """The endpoint logic of `Emulator`, called from handler threads.

    The attributes below are set by `Emulator.__init__` (the timings and shapes are its public,
    settable configuration; the underscored ones are the task state, guarded by `_lock`).
    """

    api_key: str | None
    queued_seconds: float
    processing_seconds: float
    result_ttl_seconds: float
    credits: int | None
    time_source: Callable[[], float]
    result_location: str
    status_location: str
    failure_shape: str
    sync_result_encoding: str
    result_format: str
    result_scale: float
    effect: str  # "local" (the offline engine) or "stand-in"
    log: Callable[[str], None] | None  # one line per request, when the caller asked for it
    _faults: FaultPlan
    _stats: EmulatorStats
    _lock: threading.RLock
    _tasks: dict[str, Task]
    _results: dict[str, StoredResult]
    _reserved: int

    @property
    def faults(self) -> FaultPlan:
        """The armed faults (see FaultPlan), applied by the HTTP handlers."""
        return self._faults

    @property
    def cdn_base_url(self) -> str:
        """The root of the result host (Emulator knows its servers)."""
        raise NotImplementedError

    def _key_matches(self, value: str | None) -> bool | None:
        if value is None:
            return None
        if self.api_key is None:
            return bool(value.strip())
        return secrets.compare_digest(value.encode("utf-8", "replace"), self.api_key.encode("utf-8"))

    def check_key(self, value: str | None) -> None:
        """Refuse a request without the right `ailabapi-api-key` header."""
        if value is None or not value.strip():
            raise Refusal("ERROR_APPLICATIONS_NOT_EXISTS", f"missing request header {KEY_HEADER}")
        if not self._key_matches(value):
            raise Refusal("ERROR_USER_NOT_EXISTS", "the API key is not valid")

    def handle_submit(
        self, key: str | None, request: SubmitRequest, *, received_at: float | None = None
    ) -> Answer:
        """Validate, then answer a sync result or create a task timed from `received_at` (default: now)."""
        self.check_key(key)
        valid = validate_submit(request)
        self._reserve_credits()
        try:
            failure = self._faults.take("fail_task", "task")
            if valid.task_type == "sync":
                return self._finish_sync(valid, failure)
            return self._create_task(valid, failure, received_at)
        except BaseException:
            self._release_reservation()
            raise

    def _reserve_credits(self) -> None:
        with self._lock:
            self._settle_locked(self.time_source())
            if (
                self.credits is not None
                and self.credits - self._reserved * CREDITS_PER_TASK < CREDITS_PER_TASK
            ):
                raise Refusal(
                    "ERROR_NOT_ENOUGH_CREDITS",
                    f"a Face Beauty Pro request needs {CREDITS_PER_TASK} credits; balance {self.credits}",
                )
            self._reserved += 1

    def _release_reservation(self) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - 1)

    def _bill_locked(self) -> None:
        self._reserved = max(0, self._reserved - 1)
        if self.credits is not None:
            self.credits = max(0, self.credits - CREDITS_PER_TASK)
        self._stats.bump(credits_billed=CREDITS_PER_TASK)

    def _render(self, valid: ValidSubmit) -> EncodedResult:
        rgb = render(valid.rgb, valid.sliders, valid.filter_type, self.effect)
        return encode_result(rgb, self.result_format, self.result_scale)

    def _finish_sync(self, valid: ValidSubmit, failure: Fault | None) -> Answer:
        if failure is not None:
            self._release_reservation()
            self._stats.bump(sync_failed=1)
            return error_answer(failure.code, "the image could not be processed")
        result = self._render(valid)
        encoded = base64.b64encode(result.data).decode("ascii")
        if self.sync_result_encoding == "data_uri":
            encoded = f"data:{result.mime_type};base64,{encoded}"
        with self._lock:
            self._bill_locked()
        self._stats.bump(sync_completed=1)
        return json_answer(200, {**success_fields(), "task_type": "sync", "result": encoded})

    def _create_task(self, valid: ValidSubmit, failure: Fault | None, received_at: float | None) -> Answer:
        result = None if failure is not None else self._render(valid)
        now = self.time_source()
        queued_until = (now if received_at is None else received_at) + max(0.0, float(self.queued_seconds))
        done_at = queued_until + max(0.0, float(self.processing_seconds))
        task = Task(
            task_id=uuid.uuid4().hex,
            queued_until=queued_until,
            done_at=done_at,
            expires_at=done_at + float(self.result_ttl_seconds),
            result=result,
            failure=failure,
            shape=(failure.shape if failure and failure.shape else self.failure_shape),
            url_base=self.cdn_base_url,
            received_at=now if received_at is None else received_at,
            answered_at=now,
        )
        with self._lock:
            self._tasks[task.task_id] = task
            self._settle_locked(now)
        self._stats.bump(tasks_created=1)
        return json_answer(200, {**success_fields(), "task_type": "async", "task_id": task.task_id})

    def _settle(self) -> None:
        with self._lock:
            self._settle_locked(self.time_source())

    def _settle_locked(self, now: float) -> None:
        """Finish tasks whose time has come (bill, publish results) and drop expired ones."""
        for task_id, task in list(self._tasks.items()):
            if not task.settled and now >= task.done_at:
                self._finish_task_locked(task)
            if task.settled and now >= task.expires_at:
                del self._tasks[task_id]
        for token, stored in list(self._results.items()):
            if now >= stored.expires_at:
                del self._results[token]

    def _finish_task_locked(self, task: Task) -> None:
        task.settled = True
        if task.failure is not None or task.result is None:
            self._reserved = max(0, self._reserved - 1)
            self._stats.bump(tasks_failed=1)
            return
        token = secrets.token_urlsafe(24)
        self._results[token] = StoredResult(task.result, task.expires_at, task=task)
        task.url = f"{task.url_base}{RESULTS_PREFIX}{token}.{task.result.extension}"
        self._bill_locked()
        self._stats.bump(tasks_completed=1)

    def handle_query(self, key: str | None, query: str) -> Answer:
        self.check_key(key)
        task_id = (parse_qs(query).get("task_id") or [""])[0]
        if not task_id:
            raise Refusal("MISSING_PARAMETERS", "task_id is required")
        now = self.time_source()
        with self._lock:
            self._settle_locked(now)
            task = self._tasks.get(task_id)
            if task is None:
                raise Refusal("ERROR_RESOURCE_NOT_FOUND", f"task {task_id} does not exist or has expired")
            task.queries += 1
            if not task.settled:
                return json_answer(200, self._status_body(0 if now < task.queued_until else 1, ""))
            if task.failure is None:
                return json_answer(200, self._status_body(2, task.url))
            return self._failure_answer(task)

    def _status_body(self, status: int, url: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        body = success_fields()
        body.update(extra or {})
        if self.status_location == "top":
            body["task_status"] = status
        else:
            body.setdefault("data", {})["task_status"] = status
        if self.result_location == "result_url":
            body["result_url"] = url
        elif url:
            name = self.result_location.split(".", 1)[1]
            body.setdefault("data", {})[name] = [url] if name == "images" else url
        return body

    def _failure_answer(self, task: Task) -> Answer:
        code = task.failure.code if task.failure else "PROCESSING_FAILURE"
        message = "the task failed while processing"
        if task.shape == "http_error":
            return error_answer(code, message)
        extra = error_fields(code, message) if task.shape == "status3" else None
        return json_answer(200, self._status_body(3, "", extra))

    def handle_credits(self, key: str | None) -> Answer:
        self.check_key(key)
        with self._lock:
            self._settle_locked(self.time_source())
            billed = self._stats.credits_billed
            balance = self.credits if self.credits is not None else max(0, UNLIMITED_BALANCE - billed)
        pools = [
            credit_pool("common", "Universal credits", balance, balance + billed),
            credit_pool("portrait_facial_beautification_pro", "Face Beauty Pro", 0, 0),
        ]
        return json_answer(200, {**success_fields(), "data": pools})

    def handle_download(self, path: str) -> Answer:
        match = re.fullmatch(r"/results/([A-Za-z0-9_-]+)\.(png|jpg|webp)", path)
        if match is None:
            return cdn_not_found()
        token, extension = match.groups()
        now = self.time_source()
        with self._lock:
            self._settle_locked(now)
            stored = self._results.get(token)
        if stored is None or stored.dead or now >= stored.expires_at or stored.result.extension != extension:
            return cdn_not_found()
        if stored.task is not None and stored.task.download_started_at is None:
            stored.task.download_started_at = now
        headers = {"Cache-Control": "max-age=86400", "ETag": f'"{token}"'}
        return Answer(200, stored.result.data, stored.result.mime_type, headers)

    def note_download_sent(self, path: str) -> None:
        """The CDN finished sending `path`: the first time is kept for the task's timeline."""
        match = re.fullmatch(r"/results/([A-Za-z0-9_-]+)\.(png|jpg|webp)", path)
        with self._lock:
            stored = self._results.get(match.group(1)) if match else None
            if stored is not None and stored.task is not None and stored.task.download_sent_at is None:
                stored.task.download_sent_at = self.time_source()

    def task_timeline(self) -> dict[str, Any]:
        """When each known task was received, answered, done, queried and fetched (`GET /_emulator/tasks`).

        Times are the emulator's `time_source()`; `now` is given so readers need no shared clock.
        For benchmarks: the client's latency is `download_started_at - done_at`, its query count `queries`.
        """
        with self._lock:
            now = self.time_source()
            self._settle_locked(now)
            tasks = [
                {
                    "task_id": task.task_id,
                    "received_at": task.received_at,
                    "answered_at": task.answered_at,
                    "done_at": task.done_at,
                    "failed": task.failure is not None,
                    "queries": task.queries,
                    "download_started_at": task.download_started_at,
                    "download_sent_at": task.download_sent_at,
                }
                for task in self._tasks.values()
            ]
        return {"now": now, "tasks": tasks}
