"""Grade on a Slurm cluster: submit the runs without a final result as job arrays, watch them,
collect each result, requeue platform failures, detach on request.

A platform failure is a task that ended without a final result.json: NODE_FAIL, PREEMPTED, Slurm's
TIMEOUT, a cancellation the organizer did not ask for, or a task that died before the harness wrote
its result. It is submitted again (after its partial attempt is kept aside) up to --retries times
and never counted as 0; an entry's own crash or kill is a final result, the entry's, as locally.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from harness.formatting import utc_now
from harness.organizer.rundirs import completed_result, run_dir, set_aside
from harness.organizer.slurm import client, script, state as store

if TYPE_CHECKING:
    from harness.organizer.grade import Grader, Job

DEFAULT_RETRIES = 2
POLL_S = float(os.environ.get("HAET_SLURM_POLL_S", "2"))
SETTLE_S = float(os.environ.get("HAET_SLURM_SETTLE_S", "90"))  # past Slurm's KillWait (30 s by default)


class SlurmGrader:
    """The local Grader's plan, entries, order, resume rule and child command; Slurm instead of
    child processes."""

    def __init__(self, grader: "Grader", site: script.SiteOptions, retries: int = DEFAULT_RETRIES):
        self.grader, self.site, self.retries = grader, site, retries
        self.out, self.options, self.progress = grader.out, grader.options, grader.progress
        self.state = store.load(self.out)
        self.counts = grader.counts
        self.counts.update(submitted=0, requeued=0, gave_up=0)
        # Platform failures per run in this invocation: --retries is a budget per `grade` command, so
        # running it again retries a run that ran out (its history stays in slurm.json).
        self.failed_now: dict[str, int] = {}

    def jobs(self) -> list["Job"]:
        return self.grader.jobs()

    # --- what is where --------------------------------------------------------------------

    def by_key(self) -> dict[str, "Job"]:
        return {job.key: job for job in self.jobs()}

    def refresh(self) -> dict[str, client.TaskState]:
        """The Slurm state of every run's current task that may not have ended."""
        open_jobs = sorted({r["task"].split("_")[0] for r in self.state["runs"].values()
                            if r.get("task") and not r.get("ended")})
        found = client.tasks(open_jobs)
        missing = [j for j in open_jobs if not any(t.startswith(j + "_") for t in found)]
        for task, info in client.accounting(missing).items():
            found.setdefault(task, info)
        for record in self.state["runs"].values():
            info = found.get(record.get("task") or "")
            if info and not record.get("ended"):
                record["state"], record["node"] = info.state, info.node or record.get("node")
        return found

    def still_running(self, key: str, record: dict, found: dict[str, client.TaskState]) -> bool:
        """Whether a task may still write into its run's directory (so it must not be collected yet)."""
        ended = store.marker(self.out, record["task"], "end") is not None  # the batch script saw the harness exit
        info = found.get(record.get("task") or "")
        if info is not None and info.active:
            # A final result is collected at once; a failed attempt waits for Slurm's word on why.
            return not (ended and completed_result(self.out / key) is not None)
        if ended:
            return False
        if info is None and time.time() - record.get("submitted_at", 0) < 30:
            return True  # submitted a moment ago: the controller may not list it yet
        if store.marker(self.out, record["task"], "start") is None:
            return False  # ended before the batch script began: nothing of it can write
        # Slurm may call a task ended (CANCELLED, TIMEOUT) while its harness still writes its
        # interrupted result; keeping that directory aside under it would let the old process write
        # into the next attempt's. Wait for the end marker, or until Slurm's own SIGKILL is long past.
        if completed_result(self.out / key) is None:  # the run's directory (run_dir)
            record.setdefault("gone_since", time.time())
            return time.time() - record["gone_since"] < SETTLE_S
        return False

    def active_keys(self, found: dict[str, client.TaskState]) -> set[str]:
        return {key for key, r in self.state["runs"].items()
                if not r.get("ended") and self.still_running(key, r, found)}

    # --- submitting ------------------------------------------------------------------------

    def scripts(self, jobs: "list[Job]") -> list[tuple["list[Job]", str]]:
        """The batch script(s) for these runs, split below the cluster's MaxArraySize."""
        limit = client.max_array_size() if jobs else None
        # Each task runs the local grader's command (no GPU named: the script adds Slurm's allocation).
        return [([jobs[i] for i in part],
                 script.batch_script([self.grader.command(jobs[i], None) for i in part], [jobs[i].key for i in part],
                                     self.out, Path.cwd(), self.options, self.site))
                for part in script.split(len(jobs), limit)]

    def submit(self, jobs: "list[Job]") -> list[str]:
        dirs = store.directories(self.out)
        submitted, previous = [], None
        for part, text in self.scripts(jobs):
            path = dirs["scripts"] / f"array-{len(self.state['arrays']) + 1}.sh"
            path.write_text(text)
            # Ctrl-C waits until the submitted array is written down: a job Slurm has is never unknown here.
            masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            try:
                self._submit_one(part, path, previous)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, masked)
            previous = self.state["arrays"][-1]["job_id"]
            submitted.append(previous)
            self.counts["submitted"] += len(part)
        return submitted

    def _submit_one(self, part: list["Job"], path: Path, previous: Optional[str]) -> None:
        """sbatch one array and write it down."""
        # Arrays after the first wait for the one before: the throttle (%N) holds for the whole plan.
        job_id = client.sbatch(path, dependency=previous if self.site.max_parallel else None)
        final = path.with_name(f"{job_id}.sh")
        os.replace(path, final)
        now = time.time()
        self.state["arrays"].append({"job_id": job_id, "runs": [j.key for j in part], "script": str(final),
                                     "submitted_at": now, "cancelled_by_organizer": False})
        for index, job in enumerate(part):
            record = self.state["runs"].setdefault(job.key, {"attempts": 0, "failures": []})
            record.pop("gone_since", None)
            record.update(task=f"{job_id}_{index}", state="PENDING", node=None, ended=False,
                          submitted_at=now, attempts=record.get("attempts", 0) + 1)
        store.save(self.out, self.state)

    # --- collecting ------------------------------------------------------------------------

    def organizer_cancelled(self, task: str) -> bool:
        job_id = task.split("_")[0]
        return any(a["job_id"] == job_id and a.get("cancelled_by_organizer") for a in self.state["arrays"])

    def collect(self, key: str, job: "Job", info: Optional[client.TaskState]) -> "Optional[Job]":
        """A task that ended: its result is the run's; without one it is a platform failure, and the
        job is returned when it should run again."""
        record = self.state["runs"][key]
        task = record["task"]
        record["ended"], record["collected_at"] = True, time.time()
        start, end = store.marker(self.out, task, "start"), store.marker(self.out, task, "end")
        if info is not None and not info.active:
            record["state"] = info.state
        elif end is not None:  # ended, and Slurm still completes it or has forgotten it: what it will say
            record["state"] = "COMPLETED" if end.get("exit_code") == 0 else "FAILED"
        else:
            record["state"] = record.get("state") or "UNKNOWN"
        record["node"] = (start or {}).get("node") or record.get("node")
        directory = run_dir(self.out, job)
        result = completed_result(directory)
        if result is not None:
            store.write_run_file(directory, record)
            self.counts["ran"] += 1
            acc = result.get("accuracy")
            self.progress.say(f"{key}: {result['status']}" + (f" {acc:.2%}" if isinstance(acc, float) else "")
                              + f" (task {task} on {record['node'] or '?'}, {record['state']})")
            return None
        if self.organizer_cancelled(task):
            record["attempts"] -= 1  # the organizer's own scancel: not the platform's failure
            self.progress.say(f"{key}: cancelled by the organizer; it runs again when the grading is resumed")
            return None
        if end is not None and start is not None and record["state"] in ("COMPLETED", "FAILED", "UNKNOWN"):
            why = f"the harness exited {end.get('exit_code')} without a final result"
        elif start is None:
            why = f"{record['state']} before the task started"
        else:
            why = f"{record['state']} before the harness wrote a result"
        record["failures"].append({"task": task, "state": record["state"], "node": record["node"], "why": why,
                                   "at": utc_now()})
        self.failed_now[key] = self.failed_now.get(key, 0) + 1
        if not self.exhausted(key):
            self.counts["requeued"] += 1
            self.progress.say(f"{key}: platform failure ({why}, task {task}); requeued "
                              f"({self.failed_now[key]}/{self.retries}), not counted")
            return job
        self.counts["gave_up"] += 1
        self.progress.say(f"{key}: platform failure ({why}); {self.failed_now[key]} failure(s) exceed --retries "
                          f"{self.retries}: not counted, left pending (the next grade tries it again)")
        return None

    def exhausted(self, key: str) -> bool:
        return self.failed_now.get(key, 0) > self.retries

    # --- the whole --------------------------------------------------------------------------

    def start(self, on_progress: Optional[Callable[[], None]] = None) -> None:
        """Resume: collect what ended while nobody watched, keep tasks still queued or running,
        submit the rest."""
        found = self.refresh()
        active = self.active_keys(found)
        jobs = self.by_key()
        unknown = client.arrays_named(self.site.job_name) - {a["job_id"] for a in self.state["arrays"]}
        if unknown:  # submitted by a grader killed before it could write them down: they would run twice
            ids = sorted(unknown)
            raise client.SlurmError(
                f"job array(s) {', '.join(ids)} of this grading are in Slurm's queue but not in "
                f"{self.out / store.STATE_FILE} (a grader killed while submitting): `scancel {' '.join(ids)}`, "
                "then grade again")
        for key, record in self.state["runs"].items():
            if key in jobs and not record.get("ended") and key not in active:
                self.collect(key, jobs[key], found.get(record.get("task") or ""))
        pending = [j for j in self.grader._prepare(active=active) if not self.exhausted(j.key)]
        unfinished = [k for k in active if completed_result(self.out / k) is None]
        self.progress.say(f"grading {len(self.grader.entries)} entries x {len(self.grader.seeds)} seeds on Slurm "
                          f"into {self.out}: {self.counts['done_before']} run(s) already done, {len(unfinished)} "
                          f"still in Slurm's queue, {len(pending)} to submit")
        if pending:
            ids = self.submit(pending)
            self.progress.say(f"submitted {len(pending)} run(s) as job array(s) {', '.join(ids)}")
        store.save(self.out, self.state)
        if on_progress:
            on_progress()

    def watch(self, on_progress: Optional[Callable[[], None]] = None) -> None:
        """Until every run of this grading has ended: collect, requeue, publish."""
        jobs = self.by_key()
        while True:
            try:
                found = self.refresh()
            except client.SlurmError as exc:
                self.progress.say(f"squeue did not answer ({exc}); trying again")
                time.sleep(max(POLL_S, 5))
                continue
            waiting = [k for k, r in self.state["runs"].items() if k in jobs and not r.get("ended")]
            again = []
            for key in waiting:
                record = self.state["runs"][key]
                if self.still_running(key, record, found):
                    continue
                job = self.collect(key, jobs[key], found.get(record["task"]))
                if job is not None:
                    again.append(job)
            if again:
                for job in again:
                    moved = set_aside(run_dir(self.out, job))
                    if moved:
                        self.progress.say(f"{job.key}: the failed attempt was kept as {moved.name}")
                self.submit(again)
            store.save(self.out, self.state)
            if waiting and on_progress and len(waiting) != len(self.open_keys()):
                on_progress()
            if not self.open_keys():
                return
            time.sleep(POLL_S)

    def open_keys(self) -> list[str]:
        jobs = self.by_key()
        return [k for k, r in self.state["runs"].items() if k in jobs and not r.get("ended")]

    def cancel(self) -> None:
        """The organizer's scancel of every array still running (their runs resume on the next grade)."""
        open_jobs = sorted({self.state["runs"][k]["task"].split("_")[0] for k in self.open_keys()})
        for array in self.state["arrays"]:
            if array["job_id"] in open_jobs:
                array["cancelled_by_organizer"] = True
        store.save(self.out, self.state)
        client.scancel(open_jobs)
        self.progress.say(f"cancelled job array(s) {', '.join(open_jobs) or '(none)'}")


def ask_cancel_or_detach(progress) -> bool:
    """Ctrl-C while attached: True to scancel. Without a terminal, detach (the runs go on)."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        progress.say("interrupted without a terminal to ask: detaching; the runs go on in Slurm "
                     "(`grade --status OUT` shows them, the same `grade` again collects them)")
        return False
    try:
        answer = input("\nscancel the job arrays [c], or detach and let them run [d]? ").strip().lower()
    except (EOFError, KeyboardInterrupt):
        answer = "d"
    return answer.startswith("c")
