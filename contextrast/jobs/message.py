"""The queue message, and the huey serializer that writes and reads it as JSON.

huey's default serializer is pickle, so anyone who can write to the queue (the SQLite file, or the
Redis list) could make a worker run any code. A message here is only data: which task, which job,
the job's token — `{"task": "...", "id": "<message uuid>", "job": "<job id>", "token": "<hex>"}` —
and everything else (a pickle, other fields, other types, long strings) is refused before huey
looks at it, so a worker only ever runs the one task it registers, on a job id that its record store
then checks. What the worker does with a job comes from the job record, not from the message.
"""

from __future__ import annotations

import json
import re

from huey.registry import Message
from huey.serializer import Serializer

MAX_MESSAGE_BYTES = 1024
FIELDS = ("task", "id", "job", "token")
TEXT = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")  # task names, uuids, job ids, hex tokens


class RefusedMessage(ValueError):
    """A queue message that is not one of ours; it is dropped, never run."""


class JobMessageSerializer(Serializer):
    """huey `Serializer` for messages of a task called as `task(job_id, token)`, as strict JSON."""

    def _serialize(self, data: object) -> bytes:
        if not isinstance(data, Message):
            raise TypeError(f"the job queue carries only task messages; got {type(data).__name__}")
        extras = {k: v for k, v in data._asdict().items()
                  if k not in ("id", "name", "args") and v not in (None, 0, {}, ())}
        if extras or len(data.args or ()) != 2 or data.kwargs:
            raise TypeError(f"a job message is task(job_id, token) and nothing else; got args {data.args!r}, "
                            f"kwargs {data.kwargs!r}, options {sorted(extras)}")
        job_id, token = data.args
        message = {"task": data.name, "id": data.id, "job": job_id, "token": token}
        _check(message)
        return json.dumps(message).encode()

    def _deserialize(self, data: bytes) -> Message:
        if not isinstance(data, (bytes, bytearray)) or len(data) > MAX_MESSAGE_BYTES:
            raise RefusedMessage("refused a queue message: not a short byte string")
        try:
            message = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RefusedMessage("refused a queue message that is not JSON (a pickle, or garbage); it is "
                                 "dropped, never run") from None
        _check(message)
        return Message(message["id"], message["task"], None, 0, 0, None, (message["job"], message["token"]), {},
                       None, None, None, None, None, None, 0)


def _check(message: object) -> None:
    if not isinstance(message, dict) or sorted(message) != sorted(FIELDS):
        raise RefusedMessage(f"refused a queue message: expected exactly the fields {', '.join(FIELDS)}")
    bad = [k for k in FIELDS if not isinstance(message[k], str) or not TEXT.match(message[k])]
    if bad:
        raise RefusedMessage(f"refused a queue message: bad value for {', '.join(bad)}")
