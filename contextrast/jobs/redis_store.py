"""`RedisJobStore`: job records in Redis, used when `CONTEXTRAST_REDIS_URL` is set.

One JSON string per job under `<prefix>:job:<id>`, updated with WATCH/MULTI transactions, plus a
list of metric records per job for the curves, so workers on several machines and the app share
records without a shared file system (the checkpoints themselves stay in the runs dir of the
worker's machine; share that dir to see them in the app). The URL may carry a password
(`redis://:PASSWORD@host:6379/0`) and use TLS (`rediss://…`); see the README on what a shared
queue trusts.
"""

from __future__ import annotations

import json
import time
from typing import Any

from contextrast.jobs.record import Record, Updater, to_json
from contextrast.jobs.store import WORKER_STALE_S, JobStore, NoSuchJob


class RedisJobStore(JobStore):
    """Records as JSON strings in Redis; see the module docstring."""

    def __init__(self, url: str, prefix: str = "contextrast") -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self.url = url

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def create(self, record: Record) -> None:
        if not self.redis.set(self._key(record["id"]), to_json(record), nx=True):
            raise ValueError(f"job {record['id']} exists already")
        self.redis.zadd(f"{self.prefix}:jobs", {record["id"]: record["created"]})

    def get(self, job_id: str) -> Record:
        raw = self.redis.get(self._key(job_id))
        if raw is None:
            raise NoSuchJob(f"no job {job_id!r} in the Redis queue; known jobs: {', '.join(self.ids()) or 'none'}")
        return json.loads(raw)

    def ids(self) -> list[str]:
        return [i.decode() for i in self.redis.zrange(f"{self.prefix}:jobs", 0, -1)]

    def update(self, job_id: str, fn: Updater) -> Record:
        import redis

        key = self._key(job_id)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.reset()
                        return self.get(job_id)  # raises NoSuchJob
                    record = json.loads(raw)
                    new = fn(dict(record))
                    if new is None:
                        pipe.reset()
                        return record
                    new["updated"] = time.time()
                    text = to_json(new)
                    pipe.multi()
                    pipe.set(key, text)
                    pipe.execute()
                    return json.loads(text)
                except redis.WatchError:
                    continue  # someone else wrote in between: read again

    def append_metrics(self, job_id: str, record: dict[str, Any]) -> None:
        self.redis.rpush(self._key(job_id) + ":metrics", to_json(record))

    def drop_metrics_after(self, job_id: str, iteration: int) -> None:
        key = self._key(job_id) + ":metrics"
        kept = [raw for raw in self.redis.lrange(key, 0, -1) if int(json.loads(raw).get("iter", 0)) <= iteration]
        with self.redis.pipeline() as pipe:
            pipe.delete(key)
            if kept:
                pipe.rpush(key, *kept)
            pipe.execute()

    def metrics(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.redis.lrange(self._key(job_id) + ":metrics", 0, -1)]

    def request_version(self, job_id: str) -> Any:
        return self.redis.get(self._key(job_id))

    def beat_worker(self, identity: str) -> None:
        self.redis.set(f"{self.prefix}:worker:{identity}", time.time(), ex=int(WORKER_STALE_S))

    def forget_worker(self, identity: str) -> None:
        self.redis.delete(f"{self.prefix}:worker:{identity}")

    def worker_beats(self) -> dict[str, float]:
        beats = {}
        for key in self.redis.scan_iter(f"{self.prefix}:worker:*"):
            value = self.redis.get(key)
            if value is not None:
                beats[key.decode().split(":worker:", 1)[1]] = float(value)
        return beats
