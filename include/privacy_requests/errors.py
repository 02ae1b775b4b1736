"""Error types that carry where a problem is, so users can fix it without reading a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One configuration problem: the file, the field inside it, and what is wrong."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration folder is invalid. Lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the privacy configuration:\n{lines}")


class RequestError(Exception):
    """A request cannot go on as given or deployed (bad conf, missing connection, wrong store key): not worth
    retrying; fix the cause, then clear the task."""


class ForeignRequestError(RequestError):
    """The request id belongs to another run: this run must fail without writing into that request's store."""


class TransientError(Exception):
    """A failure worth retrying: a database, SMTP or HTTP server that could not be reached."""


class DataSourceError(Exception):
    """A database answered but refused the work (missing table or column): fix the dataset, then clear."""


class StepSkipped(Exception):
    """The step has nothing to do for this request (the policy does not ask for it, nothing to send): Airflow
    shows it as skipped, and the steps after it still run."""
