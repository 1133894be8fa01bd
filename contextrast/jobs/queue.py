"""The huey instance: `SqliteHuey` in `runs_dir/queue.sqlite3` by default, `RedisHuey` when
`CONTEXTRAST_REDIS_URL` is set (then workers on several machines share one queue).

Why huey: a small, dependency-free task queue whose SQLite backend needs no server, so a single
machine runs the lab with nothing installed; the same code switches to Redis for several workers.
huey delivers each message to one consumer (SQLite: a delete inside a transaction; Redis: BRPOP);
the job record's token claim (`JobStore.claim`) guards against a message delivered twice anyway.
Messages are JSON (contextrast.jobs.message), never pickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from huey import Huey, RedisHuey, SqliteHuey

from contextrast.jobs.message import JobMessageSerializer
from contextrast.jobs.run_dir import check_runs_dir_writable
from contextrast.jobs.store import JobStore, open_store, redis_url_from_env

QUEUE_NAME = "contextrast"
TASK_NAME = "run_job"


def make_huey(runs_dir: str | Path, redis_url: str | None = None) -> Huey:
    url = redis_url_from_env() if redis_url is None else redis_url
    serializer = JobMessageSerializer()
    if url:
        return RedisHuey(QUEUE_NAME, url=url, results=False, serializer=serializer)
    check_runs_dir_writable(runs_dir)
    return SqliteHuey(QUEUE_NAME, filename=str(Path(runs_dir) / "queue.sqlite3"), results=False,
                      serializer=serializer)


def redacted_url(url: str) -> str:
    """`url` without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + ':' if parts.username else ':'}***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass
class JobQueue:
    """A huey instance, the record store next to it, and the one task (`run_job(job_id, token)`)."""

    huey: Huey
    store: JobStore
    runs_dir: Path
    redis_url: str
    run_job: object  # huey TaskWrapper: calling it enqueues a message

    def enqueue(self, job_id: str, token: str) -> None:
        self.run_job(job_id, token)  # type: ignore[operator]

    def where(self) -> str:
        """Where the queue lives, without secrets."""
        return f"Redis {redacted_url(self.redis_url)}" if self.redis_url else str(self.runs_dir / "queue.sqlite3")


def open_queue(runs_dir: str | Path, redis_url: str | None = None) -> JobQueue:
    """Queue + store for `runs_dir` (Redis for both when a URL is given or set in the environment)."""
    url = redis_url_from_env() if redis_url is None else redis_url
    runs_dir = Path(runs_dir).resolve()
    huey = make_huey(runs_dir, url)
    store = open_store(runs_dir, url)

    # Registered per instance, so the task runs with the consumer's own runs dir and store; the
    # message names only the job, which is what lets machines with different paths share a queue.
    @huey.task(name=TASK_NAME)
    def run_job(job_id: str, token: str) -> None:
        from contextrast.jobs.supervisor import supervise_job

        supervise_job(store, runs_dir, job_id, token, url)

    return JobQueue(huey, store, runs_dir, url, run_job)
