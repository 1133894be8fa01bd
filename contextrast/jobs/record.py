"""A job record: the one JSON object the app, the CLI and every worker know about a fine-tuning job.

`new_record` lists its keys. A record moves through `STATES`: queued → running → finished | stopped |
cancelled | interrupted | failed; the last four can be queued again (`RESUMABLE_STATES`). Records are
plain JSON: `to_json` writes non-finite numbers (a diverged loss) as null, since NaN is not JSON.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

STATES = ("queued", "running", "finished", "stopped", "cancelled", "interrupted", "failed")
ACTIVE_STATES = ("queued", "running")
RESUMABLE_STATES = ("stopped", "cancelled", "interrupted", "failed")
REQUESTS = ("cancel", "stop")

Record = dict[str, Any]
Updater = Callable[[Record], Record | None]  # returns the new record, or None to leave it unchanged


def new_job_id() -> str:
    """Sortable by creation time, unique across machines: `20240501-134501-1a2b3c`."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def new_record(job_id: str, params: dict[str, Any], config: dict[str, Any], run_dir: str) -> Record:
    now = time.time()
    return {
        "id": job_id,
        "state": "queued",
        "params": params,  # what the user asked for (JobParams as a dict)
        "config": config,  # the resolved ExperimentConfig (to_dict) the job trains with
        "run_dir": run_dir,
        "token": uuid.uuid4().hex,  # the queue message that may claim this record
        "attempts": 0,  # how many times a worker claimed it (1 per start or resume)
        "request": None,  # None | "cancel" | "stop", written by the app/CLI, read by the training hook
        "request_time": None,
        "worker": None,  # host:pid of the worker running it
        "host": None,
        "worker_pid": None,
        "child_pid": None,
        "heartbeat": None,
        "iteration": 0,
        "total": int(config.get("train", {}).get("iterations", 0)),
        "progress": 0.0,
        "eta_s": None,
        "images_per_s": None,
        "last_log": None,
        "log_tail": [],  # the latest progress lines (the full log is run_dir/train.log)
        "last_val": None,
        "best_miou": None,
        "checkpoint": None,  # run_dir/final once finished or stopped
        "error": None,
        "message": "waiting for a worker",
        "created": now,
        "started": None,
        "ended": None,
        "updated": now,
    }


def finite_only(value: Any) -> Any:
    """`value` with every NaN/±inf float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_only(v) for v in value]
    return value


def to_json(record: Record, indent: int | None = None) -> str:
    """Strict JSON text of a record (non-finite numbers become null)."""
    return json.dumps(finite_only(record), indent=indent, allow_nan=False)
