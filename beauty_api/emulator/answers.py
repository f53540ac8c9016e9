"""Building the API's answers: the public response fields, error bodies, and `Refusal` for checks."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from .contract import CODE_MESSAGES, CODE_STATUS


def code_message(code: str) -> str:
    """The API's short text for `code` (a readable form of the code where the emulator has none)."""
    known = CODE_MESSAGES.get(code)
    if known:
        return known
    words = code.removeprefix("ERROR_").replace("_", " ").lower()
    return words[:1].upper() + words[1:] + "."


def status_of(code: str, default: int = 500) -> int:
    """HTTP status the API uses for `code`."""
    return CODE_STATUS.get(code, default)


def _ids() -> dict[str, str]:
    return {"request_id": str(uuid.uuid4()), "log_id": secrets.token_hex(16)}


def success_fields() -> dict[str, Any]:
    """The public response fields of a successful answer."""
    return {
        **_ids(),
        "error_code": 0,
        "error_code_str": "",
        "error_msg": "",
        "error_detail": {"status_code": 200, "code": "", "code_message": "", "message": ""},
    }


def error_fields(code: str, message: str, status: int | None = None) -> dict[str, Any]:
    """The public response fields of an error answer: every legacy and current field is filled."""
    status = status_of(code) if status is None else status
    text = code_message(code)
    return {
        **_ids(),
        "error_code": status,
        "error_code_str": code,
        "error_msg": f"{text} - {message}" if message else text,
        "error_detail": {"status_code": status, "code": code, "code_message": text, "message": message},
    }


# -- answers -----------------------------------------------------------------------------------


@dataclass
class Answer:
    """An HTTP answer before it is (maybe) mangled by a fault and sent."""

    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Answer:
    """An answer with a JSON body."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Answer(status, body, headers=dict(headers or {}))


def error_answer(code: str, message: str, status: int | None = None) -> Answer:
    """An API error answer whose HTTP status equals its `error_code`."""
    payload = error_fields(code, message, status)
    return json_answer(payload["error_code"], payload)


class Refusal(Exception):
    """Raised while validating a request; becomes an error answer."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def answer(self) -> Answer:
        return error_answer(self.code, self.message, self.status)


def credit_pool(sign: str, name: str, balance: int, total: int) -> dict[str, Any]:
    return {
        "unique_sign": sign,
        "name": name,
        "balance": balance,
        "total": total,
        "last_recharge_balance": total,
        "balance_warning": 0,
        "first_buy_time": "2026-01-01 00:00:00",
        "last_update_time": "2026-01-01 00:00:00",
    }


def cdn_not_found() -> Answer:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>\n"
    )
    return Answer(404, body.encode("utf-8"), "application/xml")
