"""The durability a run's graph runs with."""

from __future__ import annotations

from app.worker.execute import durability_of


def test_a_temporary_thread_is_saved_at_its_end_unless_its_steps_are_shown_or_asked() -> None:
    assert durability_of({"temporary": True}) == "exit"
    assert durability_of({"temporary": True, "stream_mode": ["custom", "values"]}) == "exit"
    assert durability_of({"temporary": True, "stream_mode": ["values", "checkpoints"]}) is None
    assert durability_of({"temporary": True, "stream_mode": ["debug"]}) is None
    assert durability_of({"temporary": True, "durability": "sync"}) == "sync"


def test_a_kept_thread_keeps_the_run_s_durability_or_langgraph_s_default() -> None:
    assert durability_of({}) is None
    assert durability_of({"durability": "exit"}) == "exit"
