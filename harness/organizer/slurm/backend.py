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
from collections.abc import Callable
from pathlib import Path

from harness.formatting import utc_now
from harness.organizer.plan import Grading, Job
from harness.organizer.rundirs import completed_result, run_dir, set_aside
from harness.organizer.slurm import client, limits, script
from harness.organizer.slurm import state as store

DEFAULT_RETRIES = 2
POLL_S = float(os.environ.get("HAET_SLURM_POLL_S", "15"))  # one squeue call for all arrays per poll
SETTLE_S = float(os.environ.get("HAET_SLURM_SETTLE_S", "90"))  # past Slurm's KillWait (30 s by default)


class SlurmGrader:
    """A Grading's runs, order, resume rule and child commands, as the local backend has them; Slurm
    array tasks instead of child processes."""

    def __init__(self, grading: Grading, site: script.SiteOptions, retries: int = DEFAULT_RETRIES):
        self.grading = grading
        self.site = site
        self.retries = retries
        self.out = grading.out
        self.options = grading.options
        self.progress = grading.progress
        self.state = store.load(self.out)
        self.counts = grading.counts
        self.counts.update(submitted=0, requeued=0, gave_up=0)
        # Platform failures per run in this invocation: --retries is a budget per `grade` command, so
        # running it again retries a run that ran out (its history stays in slurm.json).
        self.failed_now: dict[str, int] = {}
        self.backlog: list[Job] = []  # runs not yet submitted, in order (first submissions)
        self.requeue: list[Job] = []  # runs to submit again after a platform failure
        self.array_size: int | None = None  # MaxArraySize, once read (0: none)
        self.limit: int | None = None  # at most this many tasks of this grading queued at once
        self.reasons: dict[str, int] = {}  # pending reasons last reported
        self.permanent_since: dict[str, float] = {}  # permanent pending reasons, since when (monotonic)

    def jobs(self) -> list[Job]:
        return self.grading.jobs()

    # --- what is where --------------------------------------------------------------------

    def by_key(self) -> dict[str, Job]:
        return {job.key: job for job in self.jobs()}

    def refresh(self) -> dict[str, client.TaskState]:
        """The Slurm state of every run's current task that may not have ended."""
        open_jobs = sorted(
            {r["task"].split("_")[0] for r in self.state["runs"].values() if r.get("task") and not r.get("ended")}
        )
        found = client.tasks(open_jobs)
        missing = [j for j in open_jobs if not any(t.startswith(j + "_") for t in found)]
        for task, info in client.accounting(missing).items():
            found.setdefault(task, info)
        for record in self.state["runs"].values():
            info = found.get(record.get("task") or "")
            if info and not record.get("ended"):
                record["state"] = info.state
                record["node"] = info.node or record.get("node")
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
        return {
            key for key, r in self.state["runs"].items() if not r.get("ended") and self.still_running(key, r, found)
        }

    # --- submitting ------------------------------------------------------------------------

    def queued_count(self, found: dict[str, client.TaskState] | None = None) -> int:
        """This grading's tasks that count against a job limit (pending or running)."""
        return sum(
            1
            for r in self.state["runs"].values()
            if not r.get("ended")
            and r.get("task")
            and (found is None or r["task"] not in found or found[r["task"]].active)
        )

    def flush(self, found: dict[str, client.TaskState] | None = None) -> list[str]:
        """Submit what the limits allow now: arrays below MaxArraySize, the user's queued tasks below
        the job limit read from sacctmgr or learned from sbatch's refusals. Requeued runs go first and
        depend on nothing: an `afterany` on their original array would hold them until it all ended,
        and a wait for a free slot would too, since the array's next task takes each slot that frees.
        Under --max-parallel N they may therefore run beside N others, one array of them at most N."""
        submitted = []
        before = self.counts["submitted"]
        if self.array_size is None:
            self.array_size = client.max_array_size() or 0
        for requeue in (True, False):
            pending = self.requeue if requeue else self.backlog
            while pending:
                size = min(len(pending), self.array_size or len(pending))
                if self.limit is not None:
                    size = min(size, self.limit - self.queued_count(found))
                if size <= 0:
                    break
                try:
                    job_id = self._submit_one(pending[:size], chain=not requeue)
                except client.SubmitLimit as exc:
                    queued = self.queued_count(found)
                    if size == 1 and queued == 0:
                        raise client.SlurmError(
                            f"{exc}; not even one run may be queued: ask the site, or change "
                            "--account, --qos or --partition"
                        ) from None
                    # Fewer fit: halve the wave (a conservative guess of the limit), or wait for ours to end.
                    self.limit = queued + size // 2
                    self.progress.say(
                        f"sbatch refused {size} task(s) for a job limit with {queued} of this "
                        f"grading queued: submitting at most {self.limit} at a time from now on"
                    )
                    continue
                del pending[:size]
                submitted.append(job_id)
                self.counts["submitted"] += size
        if submitted:
            left = len(self.backlog) + len(self.requeue)
            self.progress.say(
                f"submitted {self.counts['submitted'] - before} run(s) as job array(s) "
                f"{', '.join(submitted)}" + (f"; {left} run(s) wait for room under the job limit" if left else "")
            )
        return submitted

    def _submit_one(self, part: list[Job], chain: bool) -> str:
        """sbatch one array and write it down."""
        dirs = store.directories(self.out)
        path = dirs["scripts"] / f"array-{len(self.state['arrays']) + 1}.sh"
        # Each task runs the local backend's command (no GPU named: the script adds Slurm's allocation).
        path.write_text(
            script.batch_script(
                [self.grading.command(j, None) for j in part],
                [j.key for j in part],
                self.out,
                Path.cwd(),
                self.options,
                self.site,
            )
        )
        # Arrays after the first wait for the one before (while it is still queued): the throttle (%N)
        # holds for the whole plan.
        previous = self.state["arrays"][-1] if self.state["arrays"] else None
        after = None
        if (
            chain
            and self.site.max_parallel
            and previous
            and any(not self.state["runs"].get(k, {}).get("ended") for k in previous["runs"])
        ):
            after = previous["job_id"]
        # Ctrl-C waits until the submitted array is written down: a job Slurm has is never unknown here.
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            job_id = client.sbatch(path, dependency=after)
            final = path.with_name(f"{job_id}.sh")
            os.replace(path, final)
            now = time.time()
            self.state["arrays"].append(
                {
                    "job_id": job_id,
                    "runs": [j.key for j in part],
                    "script": str(final),
                    "submitted_at": now,
                    "cancelled_by_organizer": False,
                }
            )
            for index, job in enumerate(part):
                record = self.state["runs"].setdefault(job.key, {"attempts": 0, "failures": []})
                record.pop("gone_since", None)
                record.update(
                    task=f"{job_id}_{index}",
                    state="PENDING",
                    node=None,
                    ended=False,
                    submitted_at=now,
                    attempts=record.get("attempts", 0) + 1,
                )
            store.save(self.out, self.state)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
        return job_id

    def fit_to_partition(self) -> None:
        """Fit the default CPUs/memory to the partition's nodes, or refuse what no node can run."""
        try:
            nodes = client.partition_nodes(self.site.partition)
        except client.SlurmError:
            return  # unreadable here: Slurm's pending reason says it (PartitionConfig) instead
        if self.site.partition and not nodes:
            raise client.SlurmError(
                f"--partition {self.site.partition}: sinfo lists no node in it; choose one of `sinfo -s`"
            )
        note = limits.fit(self.site, nodes, script.default_cpus(), script.default_mem_mb())
        if note:
            self.progress.say(note)

    def report_waiting(self, found: dict[str, client.TaskState]) -> None:
        """Say why runs wait, when that changed; stop at once when a reason means they never start."""
        reasons: dict[str, int] = {}
        for r in self.state["runs"].values():
            info = found.get(r.get("task") or "")
            if not r.get("ended") and info is not None and info.state == "PENDING":
                reasons[info.reason] = reasons.get(info.reason, 0) + 1
        # Slurm may give a new array a generic reason first (PartitionConfig for a time limit) and the
        # precise one a scheduling pass later: a permanent reason stops the grading once it has held.
        now = time.monotonic()
        self.permanent_since = {r: self.permanent_since.get(r, now) for r in reasons if limits.permanent(r)}
        for reason, since in self.permanent_since.items():
            why = limits.permanent(reason)
            if now - since >= limits.CONFIRM_S:
                ids = sorted(
                    {
                        r["task"].split("_")[0]
                        for r in self.state["runs"].values()
                        if not r.get("ended") and r.get("task") in found
                    }
                )
                raise client.SlurmError(
                    f"{reasons[reason]} run(s) can never start: Slurm's pending reason is {reason} ({why}); "
                    f"`scancel {' '.join(ids)}`, then grade again with another "
                    f"{limits.WHAT_TO_CHANGE[reason.split(',')[0].strip()]}"
                )
        if reasons != self.reasons:
            self.reasons = reasons
            if reasons:
                self.progress.say(
                    "waiting in Slurm's queue: "
                    + ", ".join(
                        f"{n} run(s) for {reason or 'no reason given'}" for reason, n in sorted(reasons.items())
                    )
                )

    # --- collecting ------------------------------------------------------------------------

    def organizer_cancelled(self, task: str) -> bool:
        job_id = task.split("_")[0]
        return any(a["job_id"] == job_id and a.get("cancelled_by_organizer") for a in self.state["arrays"])

    def collect(self, key: str, job: Job, info: client.TaskState | None) -> Job | None:
        """A task that ended: its result is the run's; without one it is a platform failure, and the
        job is returned when it should run again."""
        record = self.state["runs"][key]
        task = record["task"]
        record["ended"] = True
        record["collected_at"] = time.time()
        start = store.marker(self.out, task, "start")
        end = store.marker(self.out, task, "end")
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
            self.progress.say(
                f"{key}: {result['status']}"
                + (f" {acc:.2%}" if isinstance(acc, float) else "")
                + f" (task {task} on {record['node'] or '?'}, {record['state']})"
            )
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
        record["failures"].append(
            {"task": task, "state": record["state"], "node": record["node"], "why": why, "at": utc_now()}
        )
        self.failed_now[key] = self.failed_now.get(key, 0) + 1
        if not self.exhausted(key):
            self.counts["requeued"] += 1
            self.progress.say(
                f"{key}: platform failure ({why}, task {task}); requeued "
                f"({self.failed_now[key]}/{self.retries}), not counted"
            )
            return job
        self.counts["gave_up"] += 1
        self.progress.say(
            f"{key}: platform failure ({why}); {self.failed_now[key]} failure(s) exceed --retries "
            f"{self.retries}: not counted, left pending (the next grade tries it again)"
        )
        return None

    def exhausted(self, key: str) -> bool:
        return self.failed_now.get(key, 0) > self.retries

    # --- the whole --------------------------------------------------------------------------

    def start(self, on_progress: Callable[[], None] | None = None) -> None:
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
                "then grade again"
            )
        for key, record in self.state["runs"].items():
            if key in jobs and not record.get("ended") and key not in active:
                self.collect(key, jobs[key], found.get(record.get("task") or ""))
        pending = [j for j in self.grading.prepare(active=active) if not self.exhausted(j.key)]
        unfinished = [k for k in active if completed_result(self.out / k) is None]
        self.progress.say(
            f"grading {len(self.grading.entries)} entries x {len(self.grading.seeds)} seeds on Slurm "
            f"into {self.out}: {self.counts['done_before']} run(s) already done, {len(unfinished)} "
            f"still in Slurm's queue, {len(pending)} to submit"
        )
        if pending:
            self.fit_to_partition()
            self.limit = client.submit_limit(self.site.qos)
            if self.limit is not None:
                self.progress.say(
                    f"the site lets this user queue at most {self.limit} job(s) (array tasks count "
                    "one each): submitting in waves"
                )
            if self.limit is not None and self.limit < 1:
                raise client.SlurmError(
                    f"sacctmgr says this user may queue {self.limit} jobs: ask the site, or change --account or --qos"
                )
            self.backlog.extend(pending)
            self.flush(found)
        store.save(self.out, self.state)
        if on_progress:
            on_progress()

    def watch(self, on_progress: Callable[[], None] | None = None) -> None:
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
            for job in again:
                moved = set_aside(run_dir(self.out, job))
                if moved:
                    self.progress.say(f"{job.key}: the failed attempt was kept as {moved.name}")
                self.requeue.append(job)
            if self.backlog or self.requeue:
                self.flush(found)
            self.report_waiting(found)
            store.save(self.out, self.state)
            if waiting and on_progress and len(waiting) != len(self.open_keys()):
                on_progress()
            if not self.open_keys() and not self.backlog and not self.requeue:
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
        progress.say(
            "interrupted without a terminal to ask: detaching; the runs go on in Slurm "
            "(`grade --status OUT` shows them, the same `grade` again collects them)"
        )
        return False
    try:
        answer = input("\nscancel the job arrays [c], or detach and let them run [d]? ").strip().lower()
    except (EOFError, KeyboardInterrupt):
        answer = "d"
    return answer.startswith("c")
