"""Per-job lineage from history rows: added → analyzed → merged into a batch → claimed →
each run's outcome → retried / dead-lettered; for a batch job, where each run came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from batchlog.projections.added_jobs import added_jobs
from batchlog.projections.base import source_job_of

HistoryRow = Mapping[str, Any]
ADD_EVENTS = frozenset({"JobAdded", "JobsAdded"})


def descendants(job_id: str, rows: Iterable[HistoryRow]) -> list[str]:
    """Jobs that took over this job's runs (batch jobs it was merged into, halves of a split)."""
    found: list[str] = []
    for row in rows:
        payload = row["payload"]
        if row["event_type"] == "Reorganized":
            found += [n["job_id"] for n in payload["new_jobs"] if job_id in n["source_job_ids"]]
        elif row["event_type"] == "ItemSplit" and payload["job_id"] == job_id:
            found += [half["job_id"] for half in payload["new_jobs"]]
    return found


def build_lineage(job_id: str, rows: Sequence[HistoryRow]) -> dict[str, Any]:
    """The lineage of a job from the history rows of it and of every job that took its runs."""
    rows = sorted(rows, key=lambda r: int(r["position"]))
    runs: dict[str, dict[str, Any]] = {}
    claims: dict[str, dict[str, Any]] = {}
    executions: dict[str, str] = {}
    lineage: dict[str, Any] = {
        "job_id": job_id,
        "events": list(rows),
        "added": None,
        "analyses": [],
        "merged_into": None,
        "merged_into_all": [],
        "split_into": [],
        "source_job_ids": [],
        "runs": [],
        "claims": [],
        "status": "unknown",
    }
    family = {job_id}
    for row in rows:
        kind, p = row["event_type"], row["payload"]
        if kind in ADD_EVENTS:
            _added(job_id, row, lineage, runs)
        elif kind == "Analyzed" and job_id in row["job_ids"]:
            lineage["analyses"].append(p["analysis_id"])
        elif kind == "Reorganized":
            _reorganized(job_id, p, family, runs, lineage)
        elif kind == "ItemSplit" and p["job_id"] in family:
            halves = [half["job_id"] for half in p["new_jobs"]]
            family.update(halves)
            if p["job_id"] == job_id:
                lineage["split_into"] = halves
                lineage["status"] = "split"
        elif kind == "ItemClaimed" and p["job_id"] in family:
            claims[p["claim_token"]] = {
                "job_id": p["job_id"],
                "runner_id": p["runner_id"],
                "claim_token": p["claim_token"],
                "attempt": p["attempt"],
                "outcome": "claimed",
            }
        elif kind in {"ItemRequeued", "ItemDeadLettered"} and p["job_id"] in family:
            claim = claims.get(p["claim_token"])
            if claim is not None:
                verb = "requeued" if kind == "ItemRequeued" else "dead-lettered"
                claim["outcome"] = f"{verb}: {p['reason']}"
            if p["job_id"] == job_id:
                lineage["status"] = "queued" if kind == "ItemRequeued" else "dead_lettered"
        elif kind == "JobCancelled" and p["job_id"] == job_id:
            lineage["status"] = "cancelled"
        elif row["stream"] == "execution":
            _execution_event(row, family, runs, claims, executions)
    lineage["runs"] = list(runs.values())
    lineage["claims"] = list(claims.values())
    lineage["status"] = _final_status(lineage["status"], lineage["runs"])
    return lineage


def _run(run_id: str, prompt_id: str, source_job_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "prompt_id": prompt_id,
        "source_job_id": source_job_id,
        "batch_job_id": None,
        "status": "queued",
        "output_path": None,
        "sha256": None,
        "seconds": None,
        "error": None,
    }


def _added(
    job_id: str, row: HistoryRow, lineage: dict[str, Any], runs: dict[str, dict[str, Any]]
) -> None:
    """The job's added step, from its JobAdded or its entry of a bulk JobsAdded."""
    for _, p in added_jobs(row["event_type"], row["payload"]):
        if p["job_id"] == job_id:
            lineage["added"] = {"position": row["position"], "by": p["submitter"]}
            lineage["status"] = "queued"
            for run in p["runs"]:
                runs[run["run_id"]] = _run(run["run_id"], run["prompt_id"], job_id)
            return


def _reorganized(
    job_id: str,
    payload: Mapping[str, Any],
    family: set[str],
    runs: dict[str, dict[str, Any]],
    lineage: dict[str, Any],
) -> None:
    for new in payload["new_jobs"]:
        if new["job_id"] == job_id:
            lineage["added"] = {"position": None, "by": payload["actor"]}
            lineage["source_job_ids"] = list(new["source_job_ids"])
            lineage["analyses"].append(payload["analysis_id"])
            lineage["status"] = "queued"
            for run_id, prompt_id in zip(new["run_ids"], new["prompt_ids"], strict=True):
                runs[run_id] = _run(run_id, prompt_id, source_job_of(run_id))
                runs[run_id]["batch_job_id"] = job_id
        elif job_id in new["source_job_ids"]:
            family.add(new["job_id"])
            lineage["merged_into_all"].append(new["job_id"])
            lineage["merged_into"] = lineage["merged_into"] or new["job_id"]
            lineage["status"] = "retired"
            for run_id in new["run_ids"]:
                if run_id in runs:
                    runs[run_id]["batch_job_id"] = new["job_id"]


def _execution_event(
    row: HistoryRow,
    family: set[str],
    runs: dict[str, dict[str, Any]],
    claims: dict[str, dict[str, Any]],
    executions: dict[str, str],
) -> None:
    kind, p, execution_id = row["event_type"], row["payload"], row["originator_id"]
    if kind == "Started":
        if p["item_id"] in family:
            executions[execution_id] = p["claim_token"]
            for run_id in p["run_ids"]:
                if run_id in runs:
                    runs[run_id]["status"] = "running"
        return
    token = executions.get(execution_id)
    if token is None:
        return
    claim = claims.get(token)
    if kind in {"RunSucceeded", "RunFailed"} and p["run_id"] in runs:
        run = runs[p["run_id"]]
        run["seconds"] = p["seconds"]
        if kind == "RunSucceeded":
            run.update(status="succeeded", output_path=p["output_path"], sha256=p["sha256"])
        else:
            run.update(status="failed", error=p["error"])
    elif kind == "Finished" and claim is not None:
        claim["outcome"] = f"finished: {p['succeeded']}/{p['batch_size']} runs succeeded"
    elif kind == "Failed" and claim is not None:
        claim["outcome"] = f"failed: {p['error']}"
    elif kind == "Superseded" and claim is not None:
        claim["outcome"] = f"superseded: {p['reason']}"


def _final_status(status: str, runs: list[dict[str, Any]]) -> str:
    if status in {"cancelled", "dead_lettered"} or not runs:
        return status
    states = {run["status"] for run in runs}
    if states == {"succeeded"}:
        return "done"
    if "failed" in states and states <= {"succeeded", "failed"}:
        return "failed"
    if "running" in states:
        return "running"
    return status
