"""What the "Privacy requests" pages show: one row per request with its status, checkpoint, counts and legal
due date. Framework-free: the plugin hands in runs read from Airflow and reports read from storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..model.settings import PrivacyConfig
from ..request.request import conf_identity, request_id_for
from ..request.statutory_clock import acknowledge_by, due_date
from ..store import layout

DUE_SOON_DAYS = 7
AWAITING_VENDOR = "awaiting vendor"  # a vendor_confirmation task waits for the vendor's answer
CONFIRMATION_TASK_PREFIX = "vendor_confirmation."  # the Airflow wing's CONFIRM_GROUP (a test keeps them equal)
_ACTIVE = {"running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "deferred", "awaiting_input"}


@dataclass
class TaskState:
    task_id: str
    state: str | None
    try_number: int
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class RunInfo:
    """A privacy_request run as Airflow holds it."""

    run_id: str
    conf: dict[str, Any]
    state: str
    received: datetime
    tasks: list[TaskState] = field(default_factory=list)


@dataclass
class RequestRow:
    run_id: str
    request_id: str
    policy: str
    received: datetime
    status: str
    checkpoint: str
    identity: str
    due: datetime | None
    days_left: int | None
    urgency: str
    rows_found: int | None = None
    rows_masked: int | None = None
    emails_sent: int | None = None
    extended: str = ""  # the deadline extensions granted ("+2 month(s)", "+45 day(s)"), with their reasons
    acknowledge_by: datetime | None = None  # CCPA: receipt confirmed by then (10 business days)
    vendors: list[dict[str, Any]] = field(default_factory=list)  # vendor_confirmation.vendor_responses


def mask_identity(value: str) -> str:
    """Enough to recognize a request, not to read the identity: ``j***@example.com``, ``+1******00``."""
    local, at, domain = value.partition("@")
    if at:
        return f"{local[:1]}***@{domain}"
    return value[:2] + "*" * max(len(value) - 4, 3) + value[-2:] if len(value) > 4 else "***"


def checkpoint_of(run: RunInfo, order: list[str]) -> str:
    """The failed task, else the one running, else the last that ran."""
    by_state = {t.task_id: t for t in run.tasks}
    ordered = [by_state[t] for t in order if t in by_state]
    for wanted in ({"failed"}, _ACTIVE):
        hit = next((t for t in ordered if t.state in wanted), None)
        if hit:
            return hit.task_id
    done = [t for t in ordered if t.state in ("success", "skipped") and t.end]
    return max(done, key=lambda t: t.end).task_id if done else "-"


def request_id_of(run: RunInfo) -> str:
    raw_id = run.conf.get("request_id")
    return request_id_for(raw_id if isinstance(raw_id, str) else None, run.run_id)


def request_row(config: PrivacyConfig, run: RunInfo, report: dict[str, Any] | None, order: list[str],
                now: datetime, *, extensions: list[dict[str, Any]] | None = None,
                vendors: list[dict[str, Any]] | None = None) -> RequestRow:
    """The overview row of one run; counts come from its report (written when it finishes or fails), the
    deadline extensions and vendor answers from the request's store (read by the caller)."""
    request_id = request_id_of(run)
    policy = config.policies.get(str(run.conf.get("policy")))
    extensions = extensions or []
    due = due_date(policy, run.received, extensions) if policy else None
    days_left = (due - now).days if due else None
    open_request = run.state != "success"
    urgency = ""
    if due and open_request and days_left is not None:
        urgency = "overdue" if due < now else ("due-soon" if days_left < DUE_SOON_DAYS else "")
    identity = ", ".join(mask_identity(v) for v in conf_identity(run.conf, config.graph.identity_keys).values() if v)
    report = report or {}
    status = run.state
    if any(t.state == "awaiting_input" and t.task_id.startswith(CONFIRMATION_TASK_PREFIX) for t in run.tasks):
        status = AWAITING_VENDOR
    elif any(t.state == "awaiting_input" for t in run.tasks):
        status = "awaiting input"
    elif run.state == "success" and report.get("status") in ("rejected", layout.AWAITING_DIGEST):
        status = report["status"]
    return RequestRow(
        run_id=run.run_id, request_id=request_id, policy=policy.display_name if policy else str(run.conf.get("policy")),
        received=run.received, status=status, checkpoint=checkpoint_of(run, order), identity=identity or "-",
        due=due, days_left=days_left, urgency=urgency, rows_found=report.get("rows_found"),
        rows_masked=report.get("rows_masked"), emails_sent=report.get("emails_sent"),
        extended=", ".join(_extension(e) for e in extensions),
        acknowledge_by=acknowledge_by(policy, run.received) if policy else None, vendors=list(vendors or []))


def _extension(extension: dict[str, Any]) -> str:
    amount = f"+{extension['months']} month(s)" if extension.get("months") else f"+{extension.get('days', 0)} day(s)"
    return f"{amount}: {extension['reason']}"



@dataclass
class BatchRow:
    """A privacy_request_batch run: its batch, policy, how many subjects it holds and how many were rejected."""

    run_id: str
    batch_id: str
    policy: str
    received: datetime
    status: str
    checkpoint: str
    subjects: int | None = None
    rejected: int | None = None


@dataclass
class SubjectRow:
    """One subject of a batch, as the batch report counts it; a rejected one says why."""

    request_id: str | None
    status: str
    rows_found: int | None = None
    rows_masked: int | None = None
    reason: str | None = None


def batch_id_of(run: RunInfo) -> str:
    """The conf's batch id, or one made from the run id, as the batch DAG makes it (open_batch)."""
    raw_id = run.conf.get("batch_id")
    return request_id_for(raw_id if isinstance(raw_id, str) else None, run.run_id)


def batch_row(config: PrivacyConfig, run: RunInfo, report: dict[str, Any] | None, order: list[str]) -> BatchRow:
    """The overview row of one batch; the counts come from its report once written."""
    report = report or {}
    policy = config.policies.get(str(run.conf.get("policy") or report.get("policy")))
    status = run.state if run.state != "success" else str(report.get("status") or run.state)
    accepted, rejected = report.get("subjects_accepted"), report.get("subjects_rejected")
    return BatchRow(run_id=run.run_id, batch_id=batch_id_of(run),
                    policy=policy.display_name if policy else str(run.conf.get("policy")), received=run.received,
                    status=status, checkpoint=checkpoint_of(run, order),
                    subjects=accepted + rejected if isinstance(accepted, int) and isinstance(rejected, int) else None,
                    rejected=rejected if isinstance(rejected, int) else None)


def batch_subjects(report: dict[str, Any] | None) -> list[SubjectRow]:
    """The subjects the batch report lists: the accepted by request id, then the rejected in the batch's order."""
    report = report or {}
    accepted = sorted((SubjectRow(request_id=s["request_id"], status=s["status"], rows_found=s.get("rows_found"),
                                  rows_masked=s.get("rows_masked")) for s in report.get("subjects") or []),
                      key=lambda s: str(s.request_id))
    rejected = [SubjectRow(request_id=r.get("request_id"), status=layout.REJECTED,
                           reason=f"subject {r.get('position')}: {r.get('reason')}")
                for r in report.get("rejected") or []]
    return accepted + rejected


def belongs_to_batch(report: dict[str, Any] | None, batch_id: str) -> bool:
    """Whether a request's report is that of a subject of this batch (its events name the batch): a request
    id rejected as already used names another request's folder, which the batch's pages must not show."""
    return any(e.get("batch_id") == batch_id for e in (report or {}).get("events") or [])


def subject_run(batch: RunInfo, request_id: str) -> RunInfo:
    """A batch subject seen as a request: the batch run's state and tasks (the same checkpoints) under the
    subject's request id, so its page reads like a single request's. The identity is not in the run."""
    return RunInfo(batch.run_id, {"request_id": request_id, "policy": batch.conf.get("policy")}, batch.state,
                   batch.received, batch.tasks)


def run_note(report: dict[str, Any] | None) -> str:
    """The run note: the outcome in one line (counts, vendor emails, or where it failed)."""
    if not report:
        return "Privacy request: no report was written (see the task logs)."
    if report["status"] in (layout.FAILED, layout.RETRYING):
        failure = report["failed_checkpoint"]
        return (f"Failed at {failure['checkpoint']} (try {failure['try_number']}): {failure['error']}. "
                "Fix the cause, then clear that task with its downstream tasks.")
    if report["status"] == "rejected":
        review = report["review"]
        return f"Rejected by {review['by']}: {review['reason']}. Nothing was read or changed."
    if report.get("dry_run"):
        return (f"Dry run complete: {report['rows_found']} row(s) found, {report['rows_planned']} would be masked, "
                f"{report['emails_rendered']} email(s) rendered; nothing was changed or sent.")
    if report["status"] == layout.AWAITING_DIGEST:
        waiting = ", ".join(v["dataset"] for v in report["vendor_emails"] if v["status"] == layout.AWAITING_DIGEST)
        return (f"Done here: {report['rows_found']} row(s) found, {report['rows_masked']} masked; awaiting the "
                f"vendor digest of {waiting}.")
    return (f"Complete: {report['rows_found']} row(s) found, {report['rows_masked']} masked, "
            f"{report['emails_sent']} vendor email(s) sent.")
