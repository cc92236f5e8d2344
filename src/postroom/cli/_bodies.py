"""Bodies in and out of the command line: BODY arguments, bodies in ``--json``."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated, Any

import typer

from ..model.message import DeadLetter, Message

__all__ = ["Raw", "dead_letter_json", "message_json", "parse_body"]

Raw = Annotated[
    bool,
    typer.Option(
        "--raw", help="Send BODY as a string, even when it is (or looks like) JSON."
    ),
]

# A body starting with one of these is meant as JSON: a typo in it is an error,
# not a string to send.
_JSON_STARTS = ("{", "[", '"')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes, *, raw_text: bool = False) -> Any:
    """A JSON value when ``raw`` parses as JSON, else the text (or the bytes).

    Text that looks like JSON (starts with ``{``, ``[`` or ``"``) but does not
    parse is a usage error saying where it fails; with ``raw_text`` the text is
    sent as a string as it is.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    if raw_text:
        return text
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        if text.lstrip().startswith(_JSON_STARTS):
            raise typer.BadParameter(
                f"looks like JSON but does not parse ({exc}): fix it, "
                "or pass --raw to send it as a string",
                param_hint="'BODY'",
            ) from exc
        return text


def message_json(message: Message) -> dict[str, Any]:
    """A message for ``--json`` output: ``body`` as a JSON value for a JSON
    message, as text for other text, else ``body_base64``."""
    shown = message.to_dict()
    if message.headers.get("content-type", "").startswith("application/json"):
        # not JSON after all: left as the text (or base64) it is
        with contextlib.suppress(ValueError):
            shown["body"] = json.loads(message.body)
    return shown


def dead_letter_json(dead: DeadLetter) -> dict[str, Any]:
    """A dead letter for ``--json`` output: a JSON body as a JSON value."""
    shown = dead.to_dict()
    shown["message"] = message_json(dead.message)
    return shown
