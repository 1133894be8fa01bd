"""The fine-tuning queue: job records and their stores, the huey queue and its JSON messages, the
worker that supervises training processes, validation at submit, and job control.

`contextrast.jobs.control` is the API the app and the CLI use; `contextrast worker` runs jobs.

    control ─ submit/cancel/stop/resume/list/read   validate, params ─ what a job may ask for
    queue, message ─ huey with JSON messages         store, file_store, redis_store, record ─ records
    worker ─ the consumer; recovery ─ orphaned jobs  supervisor ─ one attempt, in the worker
    training, torchrun_rank ─ the training process   run_dir, processes ─ files and pids
"""

from contextrast.jobs.control import (
    cancel_job,
    get_job,
    job_log_tail,
    job_metrics,
    list_job_checkpoints,
    list_jobs,
    live_workers,
    resume_job,
    stop_job,
    submit_job,
)
from contextrast.jobs.params import JobParams
from contextrast.jobs.validate import validate_job
from contextrast.jobs.worker import ensure_worker_running

__all__ = [
    "JobParams",
    "cancel_job",
    "ensure_worker_running",
    "get_job",
    "job_log_tail",
    "job_metrics",
    "list_job_checkpoints",
    "list_jobs",
    "live_workers",
    "resume_job",
    "stop_job",
    "submit_job",
    "validate_job",
]
