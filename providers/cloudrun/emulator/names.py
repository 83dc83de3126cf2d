"""Cloud Run resource names: ``projects/P/locations/L/jobs/J[/executions/E[/tasks/T]]`` and their rules.

Job ids follow Cloud Run's rule for job names: lowercase letters, digits and
hyphens, starting with a letter, not ending with a hyphen, at most 63
characters (https://cloud.google.com/run/docs/create-jobs). Project ids are
6-30 characters of lowercase letters, digits and hyphens starting with a letter
(or a project number); locations are region names such as ``europe-west1``.
Executions are named ``JOB-xxxxx`` (five random lowercase letters and digits) as
Cloud Run names them, and their tasks ``EXECUTION-taskN``.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from mayfly.providers.cloudrun.emulator.errors import ApiError, invalid_argument

JOB_ID = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
PROJECT = re.compile(r"^(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$")
LOCATION = re.compile(r"^[a-z]+(?:-[a-z]+)+[0-9]+$")
SEGMENT = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,68}[a-z0-9])?$")
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Parent:
    """``projects/P/locations/L``."""

    project: str
    location: str

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"


def parent(project: str, location: str) -> Parent:
    """A checked parent (INVALID_ARGUMENT for a malformed project or location)."""
    if not PROJECT.match(project):
        raise invalid_argument(f"Invalid project id '{project}'.")
    if not LOCATION.match(location):
        raise ApiError("INVALID_ARGUMENT", f"Invalid location '{location}'.")
    return Parent(project, location)


def check_job_id(job_id: str) -> str:
    """``job_id`` when it is a valid Cloud Run job name, else INVALID_ARGUMENT."""
    if not job_id:
        raise invalid_argument("Job id must not be empty.")
    if not JOB_ID.match(job_id):
        raise invalid_argument(
            f"Invalid job id '{job_id}': a job name must use only lowercase alphanumeric characters and dashes, "
            "cannot begin or end with a dash, and cannot be longer than 63 characters."
        )
    return job_id


def execution_id(job_id: str) -> str:
    """A new execution id: ``JOB-xxxxx``."""
    return f"{job_id}-{''.join(secrets.choice(_ALPHABET) for _ in range(5))}"


def task_id(execution: str, index: int) -> str:
    return f"{execution}-task{index}"
