"""The worker pool of one process: claim, execute, heartbeat, cancel, finalize, sweep, drain."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from sse_starlette.sse import AppStatus

from app import serde
from app.agents.hooks_check import check_hooks
from app.agents.run_checkpointer import HandedSaves, RunCheckpointer
from app.broker.base import SEQ_PER_ATTEMPT
from app.broker.wakeups import Handoff
from app.container import Container
from app.observability import metrics
from app.observability.logs import run_context
from app.services import runs as run_service
from app.services import threads as thread_service
from app.services.runs import wake_later
from app.store import idempotency
from app.store.db import refuses_data, utcnow
from app.store.runs import Runs
from app.store.threads import Threads, thread_status_after
from app.worker.execute import EventEmitter, Progress, execute, progress_for, read_final_state
from app.worker.scheduler import CronScheduler
from app.worker.webhooks import WebhookSender

log = logging.getLogger(__name__)

FINALIZE_RETRY_SECS = 120.0
# With Redis down, runs created by other processes are only found by polling: more often then.
FALLBACK_POLL_SECS = 0.25
# A worker waits this long at most even if no poll tick reaches it (the ticker is the rule).
IDLE_SAFETY_SECS = 30.0
# How often the pool looks whether the server was told to stop (sse-starlette's flag, set by
# Uvicorn's signal handler).
SHUTDOWN_WATCH_SECS = 0.2
# A cancel that arrives before its run is registered here is kept this long for it.
EARLY_CANCEL_SECS = 60.0


@dataclass
class Active:
    run: dict[str, Any]
    task: asyncio.Task[None]
    cancel_action: str | None = None  # "interrupt" / "rollback" once a cancel arrived
    cancelled_at: float = 0.0  # monotonic time of the last task.cancel()
    lost: bool = False  # our lease was taken: another process owns the run now


def retry_delay(run: dict[str, Any]) -> float | None:
    """Seconds before retrying a run whose agent raised, or None for no retry.

    Retries are opt-in, per assistant or run: config {"configurable": {"retry": {"max_attempts":
    3, "initial_delay": 1.0, "backoff_factor": 2.0, "max_delay": 60}}}. Delays grow
    exponentially and are capped at max_delay (at most an hour)."""
    configurable = (run["kwargs"].get("config") or {}).get("configurable") or {}
    policy = configurable.get("retry")
    if not isinstance(policy, dict):
        return None
    try:
        max_attempts = int(policy.get("max_attempts", 1))
        initial = float(policy.get("initial_delay", 1.0))
        factor = float(policy.get("backoff_factor", 2.0))
        cap = min(float(policy.get("max_delay", 60.0)), 3600.0)
    except (TypeError, ValueError):
        return None
    retries = int(run.get("retries") or 0)
    if retries + 1 >= max_attempts:
        return None
    return max(0.0, min(cap, initial * factor**retries))


def _output(progress: Progress, status: str) -> Any:
    """What the run's row keeps as its output."""
    output = progress.values if status != "error" else None
    if output is not None and progress.interrupts and isinstance(output, dict):
        # What `wait`/`join` answer for a run that stopped at interrupt(): the values and
        # what the graph asks, as LangGraph gives them. The thread's values stay plain.
        asked = [i for pending in progress.interrupts.values() for i in pending]
        output = {**output, "__interrupt__": asked}
    return output


def webhook_payload(run: dict[str, Any], values: Any) -> dict[str, Any]:
    """What a webhook receives: the run as the API shows it, its final values, its error."""
    return {
        **run_service.public(run),
        "values": values,
        "error": (run.get("error") or {}).get("message") if run.get("error") else None,
        "webhook_sent_at": utcnow().isoformat(),
    }


class WorkerPool:
    def __init__(self, c: Container, n_jobs: int) -> None:
        self.c = c
        self.n_jobs = n_jobs
        self.owner = c.owner_id
        self._loops: list[asyncio.Task[None]] = []
        self._busy: set[int] = set()
        self._active: dict[str, Active] = {}
        self._background: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._early_cancels: dict[str, tuple[str, float]] = {}
        self._drain: asyncio.Task[None] | None = None
        self._scheduler = CronScheduler(c)
        self.claimed = 0
        self.finished = 0
        self.webhooks = WebhookSender(
            max_attempts=c.settings.WEBHOOK_MAX_ATTEMPTS,
            timeout=c.settings.WEBHOOK_TIMEOUT_SECS,
        )
        c.broker.on_control(self._on_control)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.n_jobs:
            await check_hooks()
        metrics.WORKER_TASKS.inc(self.n_jobs)
        self.c.broker.wakeups.capacity = max(1, self.n_jobs)
        for i in range(self.n_jobs):
            self._loops.append(asyncio.create_task(self._loop(i), name=f"runyard-worker-{i}"))
        if self.n_jobs:
            self._background.append(asyncio.create_task(self._heartbeat_forever()))
            self._background.append(asyncio.create_task(self._poll_forever()))
        self._background.append(asyncio.create_task(self._sweep_forever()))
        grace = self.c.settings.BG_JOB_SHUTDOWN_GRACE_SECS
        self._background.append(asyncio.create_task(self._watch_shutdown(grace)))
        self._background.append(asyncio.create_task(self._stats_forever()))
        self._scheduler.start()

    def begin_drain(self, grace: float) -> asyncio.Task[None]:
        """Start the drain (once): stop claiming; let running runs finish for `grace`
        seconds; hand the rest back."""
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_runs(grace), name="runyard-drain")
        return self._drain

    async def _watch_shutdown(self, grace: float) -> None:
        """Drain as soon as the server is told to stop. Uvicorn runs the app's shutdown only
        after every open request ended, and a `runs/wait` or `join` may be waiting for a run
        of this very process: meanwhile the workers would go on claiming."""
        while not AppStatus.should_exit:
            await asyncio.sleep(SHUTDOWN_WATCH_SECS)
        log.info("stop requested: draining (%.0f s for running runs)", grace)
        self.begin_drain(grace)

    async def stop(self, grace: float) -> None:
        """Drain (if the stop was not seen earlier), then stop the background tasks."""
        await self.begin_drain(grace)
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.webhooks.close()
        metrics.WORKER_TASKS.dec(self.n_jobs)

    async def _drain_runs(self, grace: float) -> None:
        self._stopping.set()
        self.c.broker.wakeups.close()
        # No new runs from crons either: a process going away creates none it cannot run.
        await self._scheduler.stop()
        for i, task in enumerate(self._loops):
            if i not in self._busy:
                task.cancel()
        if self._active:
            waiting = [a.task for a in self._active.values()]
            await asyncio.wait(waiting, timeout=grace)
        leftovers = [run_id for run_id, a in self._active.items() if not a.task.done()]
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if leftovers:
            released = await self.c.runs.release(leftovers, self.owner)
            log.info("handed %d unfinished runs back to the queue", released)
            await self.c.broker.wake()

    @property
    def busy(self) -> int:
        return len(self._active)

    # -- claiming -------------------------------------------------------------------------

    async def _loop(self, index: int) -> None:
        settings = self.c.settings
        hub = self.c.broker.wakeups
        # Whether this claim attempt is about one known run (a sentinel) or a look for work
        # (start-up, a poll tick, the run before ended): a look that finds a run may have found
        # a backlog nobody announced, so it wakes one more idle worker to look too.
        looking = True
        woke: bool | Handoff | None = None
        while not self._stopping.is_set():
            if isinstance(woke, Handoff):
                # A run created in this process, inserted already claimed by it.
                self._busy.add(index)
                try:
                    run = await woke.take()
                finally:
                    self._busy.discard(index)
                looking = False
            else:
                try:
                    run = await self.c.runs.next(self.owner, settings.BG_JOB_LEASE_SECS)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("claiming failed, retrying: %s", exc)
                    await asyncio.sleep(settings.WAKE_TIMEOUT_SECS)
                    continue
            woke = None
            if run is None:
                woke = await self.c.broker.wait_wake(IDLE_SAFETY_SECS)
                looking = woke is not False
                continue
            if looking and hub.wanted:
                hub.signal(poll=True)
            looking = True
            self.claimed += 1
            metrics.run_claimed(run)
            self._busy.add(index)
            try:
                with run_context(run["run_id"], run["thread_id"]), metrics.running():
                    more = await self._run(run)
            finally:
                self._busy.discard(index)
            if not more and self.c.broker.shared and self.c.broker.healthy:
                # Every other pending run has its sentinel on the shared list: wait for one
                # instead of a claim that would find nothing.
                woke = await self.c.broker.wait_wake(IDLE_SAFETY_SECS)
                looking = woke is not False

    # -- executing ------------------------------------------------------------------------

    async def _run(self, run: dict[str, Any]) -> bool:
        """Execute and finalize a claimed run. Returns False when the run ended and no other
        run of its thread waits (whose sentinel may have been spent on a claim that found it
        blocked behind this one); True when claiming again at once may find work."""
        run_id = run["run_id"]
        progress = progress_for(run)
        self.c.outcomes.track(run_id)
        self.c.broker.claim_local(run_id, progress.seq)
        try:
            return await self._run_here(run, progress)
        finally:
            # Settled with its row by the finalize; here only if it did not get that far.
            self.c.outcomes.settle(run_id, None)
            self.c.broker.release_local(run_id, ended=progress.ended)

    async def _run_here(self, run: dict[str, Any], progress: Progress) -> bool:
        run_id = run["run_id"]
        emitter = EventEmitter(self.c.broker, progress)
        task = asyncio.create_task(self._execute(run, emitter, progress), name=f"run-{run_id}")
        active = self._active[run_id] = Active(run=run, task=task)
        early = self._early_cancels.pop(run_id, None)
        if early and time.monotonic() - early[1] < EARLY_CANCEL_SECS:
            self._cancel(active, early[0])
        status, error = "success", None
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the pool itself is stopping; stop() hands the run back
            if active.lost:
                return True
            status = "interrupted"
        except TimeoutError:
            status = "timeout"
            error = {
                "error": "TimeoutError",
                "message": "run exceeded BG_JOB_TIMEOUT_SECS="
                f"{self.c.settings.BG_JOB_TIMEOUT_SECS}",
            }
        except Exception as exc:
            status = "error"
            error = {"error": type(exc).__name__, "message": str(exc)}
            log.info("run %s failed: %s: %s", run_id, type(exc).__name__, exc)
            delay = retry_delay(run)
            if delay is not None and await self._retry(run, delay):
                return True
        finally:
            self._active.pop(run_id, None)
        if error is not None:
            with contextlib.suppress(Exception):
                await emitter.emit("error", error)
        if status == "interrupted" and active.cancel_action == "rollback":
            await self._forget_checkpoints(run, progress)
        await read_final_state(progress, run["thread_id"])
        return await self._finalize(run, progress, status, error, active.cancel_action)

    async def _forget_checkpoints(self, run: dict[str, Any], progress: Progress) -> None:
        """A rolled-back run's checkpoints go before the thread's state is read, so that the
        thread is settled as it was before the run (its values; idle unless that state
        waits), as LangGraph's server leaves it."""
        with contextlib.suppress(Exception):
            await self.c.checkpoints.delete_run(run["thread_id"], run["run_id"])
        saver = getattr(progress.graph, "checkpointer", None)
        if isinstance(saver, RunCheckpointer):
            saver.forget()  # it still holds the run's last checkpoint

    async def _retry(self, run: dict[str, Any], delay: float) -> bool:
        try:
            retried = await self.c.runs.retry_later(run["run_id"], self.owner, delay)
        except Exception as exc:
            log.warning("run %s could not be rescheduled: %s", run["run_id"], exc)
            return False
        if retried:
            log.info("run %s will be retried in %.1f s", run["run_id"], delay)
            wake_later(self.c, delay)
        return retried

    async def _execute(
        self, run: dict[str, Any], emitter: EventEmitter, progress: Progress
    ) -> None:
        async with asyncio.timeout(self.c.settings.BG_JOB_TIMEOUT_SECS):
            await execute(run, self.c.registry, emitter, progress)

    async def _finalize(
        self,
        run: dict[str, Any],
        progress: Progress,
        status: str,
        error: dict[str, Any] | None,
        cancel_action: str | None,
    ) -> bool:
        """Record the run's end. Returns whether another run of its thread is in flight (True
        when that is not known)."""
        run_id, thread_id = run["run_id"], run["thread_id"]
        inflight = True
        rollback = status == "interrupted" and cancel_action == "rollback"
        temporary = bool(run["kwargs"].get("temporary"))
        in_one_statement = self.c.db.on_driver and not rollback
        # The run's last checkpoint saves, stored by the finalize's own statement (Postgres).
        saves = progress.saves if progress.saves is not None and not progress.saves.stored else None
        if saves is not None and (temporary or not in_one_statement or not self.c.db.is_postgres):
            status, error = await self._store_saves_apart(run, progress, saves, status, error)
            saves = None
        # A database restart must not lose a finished run's outcome: keep trying for a while
        # (the lease is renewed meanwhile only if the heartbeat gets through, so past the lease
        # the sweeper may hand the run to another process, and `finish` then matches nothing).
        deadline = time.monotonic() + FINALIZE_RETRY_SECS
        unstorable = False
        for attempt in itertools.count():
            output = _output(progress, status)
            try:
                if in_one_statement:
                    done, inflight = await self._finish_in_one_statement(
                        run, progress, status, error, output, saves
                    )
                    if saves is not None:
                        saves.stored = True
                    if done is None:
                        log.warning("run %s was taken from this worker; result dropped", run_id)
                        return True
                    break
                async with self.c.db.begin() as conn:
                    done = await Runs.finish(
                        conn, run_id, self.owner, status=status, error=error, output=output
                    )
                    if done is None:
                        log.warning("run %s was taken from this worker; result dropped", run_id)
                        return True
                    if rollback:
                        await Runs.delete(conn, run_id)
                    # A temporary thread goes with its run, unless another run of it waits.
                    if temporary and await Threads.delete_if_idle(conn, thread_id):
                        inflight = False
                    else:
                        inflight = await self.c.runs.thread_has_inflight(conn, thread_id)
                        await Threads.settle(
                            conn,
                            thread_id,
                            status=thread_status_after(
                                status, progress.interrupts, inflight, bool(progress.next_nodes)
                            ),
                            values=progress.values,
                            interrupts=progress.interrupts,
                            error=error,
                        )
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    log.error("run %s could not be finalized: %s", run_id, exc)
                    return True
                if saves is not None:
                    # Whatever failed, the saves go apart from now on, as during the run: a
                    # save the database refuses fails the run, not its finalize.
                    status, error = await self._store_saves_apart(
                        run, progress, saves, status, error
                    )
                    saves = None
                    continue
                if refuses_data(exc) and not unstorable:
                    # What the run produced cannot be stored (a NUL character in a string of
                    # its state or error): sent again it is refused again, so the run fails
                    # with that, and nothing of its state is kept on its row or thread.
                    unstorable = True
                    status, error = await self._fail_unstorable(run, progress, exc)
                    continue
                log.warning("finalizing run %s failed (%s); retrying", run_id, exc)
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        self.finished += 1
        metrics.run_finished(status, time.monotonic() - progress.started)
        if url := run["kwargs"].get("webhook"):
            self.webhooks.send(url, webhook_payload(done, progress.values), run_id=run_id)
        self.c.outcomes.settle(run_id, done)
        progress.seq += 1
        progress.ended = True
        await self.c.broker.publish_end(run_id, progress.seq, status)
        return inflight

    async def _store_saves_apart(
        self,
        run: dict[str, Any],
        progress: Progress,
        saves: HandedSaves,
        status: str,
        error: dict[str, Any] | None,
    ) -> tuple[str, dict[str, Any] | None]:
        """Store the run's last saves with a statement of their own (through an outage, as
        any save); the run's status and error after that: an error if they were refused."""
        try:
            await saves.store()
        except Exception as exc:
            log.info("run %s failed: its checkpoints were refused: %s", run["run_id"], exc)
            return await self._ended_in_error(progress, exc, str(exc))
        return status, error

    async def _fail_unstorable(
        self, run: dict[str, Any], progress: Progress, exc: BaseException
    ) -> tuple[str, dict[str, Any]]:
        log.warning("run %s failed: its outcome could not be stored: %s", run["run_id"], exc)
        progress.values, progress.interrupts, progress.next_nodes = None, {}, []
        return await self._ended_in_error(
            progress, exc, f"The run's outcome could not be stored: {exc}"
        )

    async def _ended_in_error(
        self, progress: Progress, exc: BaseException, message: str
    ) -> tuple[str, dict[str, Any]]:
        """A run found failed while it is finalized: its error, told to its stream too."""
        error = {"error": type(exc).__name__, "message": message}
        with contextlib.suppress(Exception):
            await EventEmitter(self.c.broker, progress).emit("error", error)
        return "error", error

    async def _finish_in_one_statement(
        self,
        run: dict[str, Any],
        progress: Progress,
        status: str,
        error: dict[str, Any] | None,
        output: Any,
        saves: HandedSaves | None,
    ) -> tuple[dict[str, Any] | None, bool]:
        done, inflight = await self.c.runs.finish_settling_thread(
            run,
            self.owner,
            status=status,
            error=error,
            output=output,
            thread_status=thread_status_after(
                status, progress.interrupts, False, bool(progress.next_nodes)
            ),
            values=progress.values,
            interrupts=progress.interrupts,
            saves=saves.document if saves is not None else None,
        )
        if done is not None and inflight and run["kwargs"].get("temporary"):
            # A temporary thread another run of which waits stays, busy.
            async with self.c.db.begin() as conn:
                await Threads.set_fields(
                    conn,
                    run["thread_id"],
                    status="busy",
                    values=progress.values,
                    interrupts=progress.interrupts,
                    error=error,
                )
        return done, inflight

    # -- cancel, heartbeat, sweep ---------------------------------------------------------

    @staticmethod
    def _cancel(active: Active, action: str) -> None:
        if active.cancel_action is None:
            active.cancel_action = action
        active.cancelled_at = time.monotonic()
        active.task.cancel()

    async def _on_control(self, message: dict[str, Any]) -> None:
        if message.get("type") != "cancel":
            return
        run_id = str(message.get("run_id", ""))
        action = message.get("action") or "interrupt"
        active = self._active.get(run_id)
        if message.get("unchecked") and (
            active is None or message.get("thread_id") not in (None, active.run["thread_id"])
        ):
            # Sent before the API read the run: it applies to a run executing here on the
            # thread named, and to nothing else (the checked message follows).
            return
        if active is not None:
            if active.cancel_action is None:
                self._cancel(active, action)
            return
        if self.n_jobs:
            # Claimed here a moment ago and not registered yet, maybe: keep it for the run.
            now = time.monotonic()
            if len(self._early_cancels) >= 10_000:
                self._early_cancels = {
                    k: v for k, v in self._early_cancels.items() if now - v[1] < EARLY_CANCEL_SECS
                }
            self._early_cancels[run_id] = (action, now)

    async def _poll_forever(self) -> None:
        """While workers here are idle, one of them looks for work now and then: runs whose
        wake-up was lost (Redis down or flushed, a process killed) and delayed runs come due."""
        settings = self.c.settings
        while True:
            interval = settings.WAKE_TIMEOUT_SECS
            if not self.c.broker.healthy:
                interval = min(interval, FALLBACK_POLL_SECS)
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            if self.c.broker.wakeups.wanted:
                self.c.broker.wakeups.signal(poll=True)

    async def _heartbeat_forever(self) -> None:
        settings = self.c.settings
        while True:
            await asyncio.sleep(settings.BG_JOB_HEARTBEAT_SECS)
            if not self._active:
                continue
            asked = list(self._active)
            try:
                rows = await self.c.runs.heartbeat(asked, self.owner, settings.BG_JOB_LEASE_SECS)
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            still_ours = {r["run_id"]: r["cancel_requested"] for r in rows}
            now = time.monotonic()
            # Only the runs asked about: one claimed meanwhile is ours but not in the answer.
            for run_id in asked:
                active = self._active.get(run_id)
                if active is None or active.task.done():
                    continue
                if run_id not in still_ours:
                    active.lost = True
                    active.task.cancel()
                elif (action := still_ours[run_id]) and (
                    active.cancel_action is None
                    or now - active.cancelled_at >= settings.BG_JOB_HEARTBEAT_SECS
                ):
                    # The cancel message was lost (Redis down), or it did not stop the run:
                    # Postgres has the request, so ask again.
                    self._cancel(active, action)

    async def _sweep_forever(self) -> None:
        settings = self.c.settings
        interval = max(1.0, settings.BG_JOB_LEASE_SECS / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                requeued, dead = await self.c.runs.sweep_expired(settings.BG_JOB_MAX_ATTEMPTS)
            except Exception as exc:
                log.warning("sweep failed: %s", exc)
                continue
            for run in requeued:
                log.warning(
                    "run %s lost its worker; back to pending (attempt %s)",
                    run["run_id"],
                    run["attempt"],
                )
                await self.c.broker.wake()
            try:
                async with self.c.db.begin() as conn:
                    await idempotency.forget_expired(conn)
            except Exception as exc:
                log.debug("expired idempotency keys not removed: %s", exc)
            try:
                if expired := await thread_service.expire_due(self.c):
                    log.info("deleted %d threads whose time to live ran out", expired)
            except Exception as exc:
                log.warning("expired threads not removed: %s", exc)
            for run in dead:
                log.error(
                    "run %s lost its worker %s times; ended as error", run["run_id"], run["attempt"]
                )
                await self._settle_dead(run)

    async def _settle_dead(self, run: dict[str, Any]) -> None:
        metrics.run_finished("error")
        async with self.c.db.begin() as conn:
            inflight = await self.c.runs.thread_has_inflight(conn, run["thread_id"])
            await Threads.set_fields(
                conn,
                run["thread_id"],
                status=thread_status_after("error", {}, inflight),
                error=run["error"],
            )
        await self.c.broker.publish_end(run["run_id"], run["claims"] * SEQ_PER_ATTEMPT + 1, "error")

    async def _stats_forever(self) -> None:
        while True:
            await asyncio.sleep(self.c.settings.STATS_INTERVAL_SECS)
            try:
                depth: int | None = await self.c.runs.count_pending()
            except Exception:
                depth = None
            fallback = not self.c.broker.healthy
            metrics.record_health(pending=depth, redis_up=not fallback, fallback=fallback)
            stats = {
                "workers": self.n_jobs,
                "busy": len(self._busy),
                "idle": self.n_jobs - len(self._busy),
                "claimed": self.claimed,
                "finished": self.finished,
                "queue_depth": -1 if depth is None else depth,
                "fallback_polling": fallback,
            }
            # As text for reading, and as fields for JSON logs (LOG_JSON).
            log.info("stats %s", serde.dumps_str(stats), extra={"stats": stats})
