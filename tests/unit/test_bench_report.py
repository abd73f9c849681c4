"""The benchmark's report flags repetitions during which the hypervisor took the cores, and
names the interpreter's build."""

from __future__ import annotations

from bench.machine import python_build
from bench.measure import Measurement
from bench.report import stolen_share, summarize, table
from bench.scenarios.runs import WAIT
from bench.scenarios.streams import STREAMS_1000


def _burst(steal: float) -> Measurement:
    parts = {"server_cpu_s": 10.0, "client_cpu_s": 6.0, "others_cpu_s": 2.0, "idle_cpu_s": 2.0}
    return Measurement(figures={"wall_s": 11.0, **parts, "steal_s": steal})


def test_the_stolen_share_is_of_the_whole_machine_time() -> None:
    assert stolen_share(_burst(20.0).figures) == 0.5
    per_run = {
        "server_cpu_ms_per_run": 4.0,
        "client_cpu_ms_per_run": 3.0,
        "others_cpu_ms_per_run": 1.0,
        "idle_cpu_ms_per_run": 1.0,
        "steal_ms_per_run": 1.0,
    }
    assert stolen_share(per_run) == 0.1
    assert stolen_share({"wall_s": 1.0}) is None  # a scenario without the machine's side


def test_only_repetitions_with_much_steal_are_flagged() -> None:
    result = summarize(STREAMS_1000, "production", False, [_burst(0.1), _burst(20.0)])
    assert result.machine_warnings == [
        "repetition 2: 50% of the machine's time went to other guests (steal): its figures "
        "are the host's as much as the server's"
    ]
    assert "repetition 2: 50%" in table([result])
    calm = summarize(WAIT, "production", False, [_burst(0.1)])
    assert calm.machine_warnings == []


def test_the_python_build_says_whether_libpython_is_shared_and_optimised() -> None:
    shared_maps = "7f00-7f10 r-xp 0 08:01 12 /opt/python/lib/libpython3.11.so.1.0\n"
    static_maps = "5600-5610 r-xp 0 08:01 12 /usr/bin/python3.11\n"
    plain = python_build(shared_maps, "'--enable-shared' '--prefix=/opt/python'")
    assert plain.endswith("shared libpython, no --enable-optimizations")
    tuned = python_build(shared_maps, "'--enable-shared' '--enable-optimizations' '--with-lto'")
    assert tuned.endswith("shared libpython, --enable-optimizations --with-lto")
    inside = python_build(static_maps, "'--enable-shared' '--enable-optimizations'")
    assert inside.endswith("libpython in the executable")


def test_the_profile_can_leave_out_samples_ending_in_a_socket_write() -> None:
    from collections import Counter

    from bench.profiling import without_writes

    loop = "Runner.run (asyncio/runners.py:118)"
    stacks = Counter(
        {
            (loop, "run_graph (app/agents/executor.py:165)"): 5,
            (loop, "RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:9)"): 3,
            (loop, "Connection._do_execute (asyncpg/connection.py:2000)"): 2,
            # A write further up the stack is not the sample's own.
            (loop, "StreamWriter.writelines (asyncio/streams.py:1)", "dumps (json:1)"): 1,
        }
    )
    kept = without_writes(stacks)
    assert sum(kept.values()) == 6
    assert (loop, "run_graph (app/agents/executor.py:165)") in kept
