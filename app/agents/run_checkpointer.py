"""One run's view of the server's checkpointer: what the run itself wrote is not read back.

A run asks its thread's checkpointer for the latest checkpoint twice: when the graph starts,
and when the run ends (its final values, next nodes and interrupts). On a thread the server
made for this very run there is nothing to read at the start, and at the end the latest
checkpoint is the one the run just wrote, with the writes it put after it. Both answers are
known here without a query. Everything else, and every checkpoint the run did not write
itself (other namespaces, explicit checkpoint ids), goes to the wrapped saver unchanged.

With `save_behind` (durability "async", a saver that can save in batches), the run's saves go
through a SaveQueue: they return at once and reach the database in batches behind the run.
Anything read from the saver is read after the queue has drained. At the run's end the saves
still queued (all of a short run's) can be handed over instead (`hand_over`): the run's
finalize stores them in its own statement, one round trip and one commit fewer per run.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_serializable_checkpoint_metadata,
)

from app.agents.save_queue import Save, SaveQueue

log = logging.getLogger(__name__)

_WriteKey = tuple[str, str, int]  # task path, task id, index


class _Memo:
    """The thread's newest root checkpoint as this run wrote it, and the writes put for it."""

    __slots__ = ("new_thread", "latest", "writes")

    def __init__(self, new_thread: bool) -> None:
        self.new_thread = new_thread  # nothing was checkpointed on the thread before this run
        self.latest: CheckpointTuple | None = None
        # By checkpoint id: with durability "async" a checkpoint's writes can be saved before
        # the checkpoint itself is.
        self.writes: dict[str, dict[_WriteKey, tuple[str, str, Any]]] = {}

    @property
    def latest_id(self) -> str:
        return self.latest.config["configurable"]["checkpoint_id"] if self.latest else ""


class HandedSaves:
    """A run's last saves, made but not sent: a batch document of the saver's (`document_of`),
    for the run's finalize to store with the run's end."""

    __slots__ = ("saver", "document", "stored")

    def __init__(self, saver: Any, document: str) -> None:
        self.saver = saver
        self.document = document
        self.stored = False

    async def store(self) -> None:
        """Store them with a statement of their own (once)."""
        if not self.stored:
            await self.saver.store_document(self.document)
            self.stored = True


class RunCheckpointer(BaseCheckpointSaver):
    """Wraps the server's saver for one run on one thread."""

    def __init__(
        self,
        saver: BaseCheckpointSaver,
        thread_id: str,
        *,
        new_thread: bool,
        save_behind: bool = False,
        before_save: Save | None = None,
    ) -> None:
        # The saver's serializer as it is: the base class would check it against a typing
        # Protocol again, which Python 3.11 does slowly, once per run.
        self.serde = saver.serde
        self.saver = saver
        self.thread_id = thread_id
        self._memo = _Memo(new_thread)
        self._handed: list[HandedSaves] = []  # shared with copies, as the memo is
        # Awaited before anything is saved: the run's events so far reach their replay log
        # before the checkpoint that follows them, so a run taken over from that checkpoint
        # has lost none of them.
        self._before_save = before_save
        self._saves = (
            SaveQueue(saver, before_save)  # type: ignore[arg-type]
            if save_behind and hasattr(saver, "save_together")
            else None
        )

    async def drain(self) -> None:
        """Return once everything the run saved is stored (raises a failed save's error)."""
        if self._saves is not None:
            await self._saves.drain()
        for handed in self._handed:
            await handed.store()

    async def hand_over(self) -> HandedSaves | None:
        """At the run's end: its saves not stored yet, as a batch document for the caller to
        store with the run's end; None when everything is stored (or was, here). Raises a
        failed save's error, as `drain`. Until the caller stores them, a read that needs the
        database stores them first."""
        if self._saves is None or not hasattr(self.saver, "document_of"):
            await self.drain()
            return None
        handing = asyncio.ensure_future(self._hand_over(self._saves))
        try:
            return await asyncio.shield(handing)
        except asyncio.CancelledError:
            # Cancelled at the run's very end (the run is then interrupted): its saves are
            # stored all the same, as a drain's are, and the memo stays the database's.
            try:
                handed = await handing
                if handed is not None:
                    await handed.store()
            except Exception as exc:  # noqa: BLE001 - the cancel is what the run reports
                log.warning("checkpoints of thread %s not stored: %s", self.thread_id, exc)
            raise

    async def _hand_over(self, queue: SaveQueue) -> HandedSaves | None:
        saves = await queue.hand_over()
        if not saves:
            return None
        if self._before_save is not None:
            await self._before_save()
        document = await self.saver.document_of(saves)
        if document is None:  # stored already, the saver's own way
            return None
        handed = HandedSaves(self.saver, document)
        self._handed.append(handed)
        return handed

    def forget(self) -> None:
        """Read everything from the saver from now on."""
        self._memo.latest = None
        self._memo.new_thread = False

    async def stopped(self) -> None:
        """The run stopped midway (an error, a cancel). A save the saver was making may have
        been cut off after it reached the database, so the saver is read from now on. Saves
        behind the run are not cut off: once they are stored, memory still holds what the
        database does, and the final state needs no read."""
        if self._saves is None:
            self.forget()
            return
        try:
            await self._saves.drain()
        except Exception:  # noqa: BLE001 - the run's own error is the one to report
            self.forget()

    def _mine(self, config: RunnableConfig) -> bool:
        """Whether the config names this run's thread, root namespace."""
        configurable = config.get("configurable") or {}
        return str(configurable.get("thread_id")) == self.thread_id and not configurable.get(
            "checkpoint_ns"
        )

    # -- what the run wrote ---------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        if self._mine(config):
            memo = self._memo
            wanted = (config.get("configurable") or {}).get("checkpoint_id")
            if memo.latest is not None:
                if not wanted or wanted == memo.latest_id:
                    writes = memo.writes.get(memo.latest_id, {})
                    return memo.latest._replace(pending_writes=list(writes.values()))
            elif memo.new_thread and not wanted:
                return None
        await self.drain()
        return await self.saver.aget_tuple(config)

    async def _save(self, save: Save) -> Any:
        """Queue the save behind the run (None), or make it now, once the run's events so far
        are logged, and return what the saver answers."""
        if self._saves is not None:
            self._saves.add(save)
            return None
        if self._before_save is not None:
            await self._before_save()
        return await save()

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        saved = await self._save(
            functools.partial(self.saver.aput, config, checkpoint, metadata, new_versions)
        )
        if saved is None:  # queued: what the saver answers once it has stored it
            saved = {
                "configurable": {
                    "thread_id": config["configurable"]["thread_id"],
                    "checkpoint_ns": config["configurable"]["checkpoint_ns"],
                    "checkpoint_id": checkpoint["id"],
                }
            }
        if self._mine(config):
            configurable = config["configurable"]
            parent = configurable.get("checkpoint_id")
            self._memo.latest = CheckpointTuple(
                config=saved,
                checkpoint=checkpoint,
                metadata=get_serializable_checkpoint_metadata(config, metadata),
                parent_config=(
                    {
                        "configurable": {
                            "thread_id": configurable["thread_id"],
                            "checkpoint_ns": "",
                            "checkpoint_id": parent,
                        }
                    }
                    if parent
                    else None
                ),
                pending_writes=[],
            )
            # Checkpoint ids sort in the order they were made: older ones are never read here.
            latest = self._memo.latest_id
            self._memo.writes = {k: v for k, v in self._memo.writes.items() if k >= latest}
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        writes = list(writes)  # as handed over, whatever becomes of the caller's sequence
        await self._save(
            functools.partial(self.saver.aput_writes, config, writes, task_id, task_path)
        )
        checkpoint_id = config["configurable"].get("checkpoint_id")
        if not checkpoint_id or checkpoint_id < self._memo.latest_id or not self._mine(config):
            return
        # As the savers store them: special writes (errors, interrupts, ...) replace an
        # earlier one of the same task, other writes never overwrite.
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        memo = self._memo.writes.setdefault(checkpoint_id, {})
        for index, (channel, value) in enumerate(writes):
            key = (task_path, task_id, WRITES_IDX_MAP.get(channel, index))
            if replace or key not in memo:
                memo[key] = (task_id, channel, value)

    # -- everything else is the saver's ---------------------------------------------------

    @property
    def config_specs(self) -> list:
        return self.saver.config_specs

    def get_next_version(self, current: Any, channel: None) -> Any:
        return self.saver.get_next_version(current, channel)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> RunCheckpointer:
        saver = self.saver.with_allowlist(extra_allowlist)
        if saver is self.saver:
            return self
        clone = RunCheckpointer(
            saver, self.thread_id, new_thread=False, before_save=self._before_save
        )
        clone._memo = self._memo  # one run, one memo
        clone._saves = self._saves  # and one order of saves
        clone._handed = self._handed
        return clone

    def __getattr__(self, name: str) -> Any:
        # Methods BaseCheckpointSaver does not define (a saver's own extras). Not while the
        # instance is being built or copied, before it has a saver.
        if name == "saver" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.saver, name)


def _forward(name: str) -> Any:
    """The saver's method of that name; an async one after the run's saves are stored."""
    kind = getattr(BaseCheckpointSaver, name)
    if inspect.isasyncgenfunction(kind):

        async def listing(self: RunCheckpointer, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            await self.drain()
            async for item in getattr(self.saver, name)(*args, **kwargs):
                yield item

        forward = listing
    elif inspect.iscoroutinefunction(kind):

        async def call(self: RunCheckpointer, *args: Any, **kwargs: Any) -> Any:
            await self.drain()
            return await getattr(self.saver, name)(*args, **kwargs)

        forward = call
    else:

        def plain(self: RunCheckpointer, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.saver, name)(*args, **kwargs)

        forward = plain
    forward.__name__ = name
    return forward


# The rest of BaseCheckpointSaver's interface (listing, sync calls, deletes, copies, prunes,
# delta channel history): straight to the saver, which implements or refuses them itself.
for _name in (
    "alist",
    "adelete_thread",
    "get_tuple",
    "list",
    "put",
    "put_writes",
    "delete_thread",
    "delete_for_runs",
    "copy_thread",
    "prune",
    "adelete_for_runs",
    "acopy_thread",
    "aprune",
    "get_delta_channel_history",
    "aget_delta_channel_history",
):
    if hasattr(BaseCheckpointSaver, _name):
        setattr(RunCheckpointer, _name, _forward(_name))
