"""The fine-tuning queue (issue 8): huey queue, job records, worker, validation and job control.

`contextrast.jobs.control` is the API the app and the CLI use; `contextrast worker` runs jobs.
"""

from contextrast.jobs.control import (
    cancel_job,
    ensure_worker_running,
    get_job,
    job_log_tail,
    job_metrics,
    list_job_checkpoints,
    list_jobs,
    resume_job,
    stop_job,
    submit_job,
)
from contextrast.jobs.validate import JobParams, validate_job

__all__ = [
    "JobParams",
    "cancel_job",
    "ensure_worker_running",
    "get_job",
    "job_log_tail",
    "job_metrics",
    "list_job_checkpoints",
    "list_jobs",
    "resume_job",
    "stop_job",
    "submit_job",
    "validate_job",
]
