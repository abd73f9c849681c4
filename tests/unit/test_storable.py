"""What the databases cannot store is refused with the place it was found, whether the quick
check (orjson's encoder) or the walk decides; what they can store passes both."""

from __future__ import annotations

from typing import Any

import pytest

from app.api.models import CommandBody, check_storable

INT64 = 2**63
LONG = [{"role": "user", "content": f"{i:04d}" + "x" * 200} for i in range(500)]


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"messages": LONG},
        {"n": INT64 - 1, "m": -INT64, "big": 2**53 + 1, "f": 1e300},
        {"text": "a backslash and u0000: \\u0000", "\\u0000": "key too"},
        {"lone": "\ud800", "tuple": (1, 2)},
        {1: "a key no JSON encoder takes as it is"},
        CommandBody(resume={"ok": [1, 2]}),
    ],
)
def test_storable_values_pass(value: Any) -> None:
    check_storable(value, "input")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"messages": [*LONG, {"content": "a\x00b"}]}, "input.messages[500].content: strings"),
        ({"ok": 1, "a\x00": 2}, "input: strings may not contain NUL"),
        ({"deep": [[{"n": INT64}]]}, "input.deep[0][0].n: integer out of the 64-bit range"),
        ({"deep": [-INT64 - 1]}, "input.deep[0]: integer out of the 64-bit range"),
        ({"big": 2**80, "lone": "\ud800"}, "input.big: integer out"),
        (
            CommandBody.model_construct(resume={"x": "\x00"}),
            "input.resume.x: strings may not contain NUL",
        ),
    ],
)
def test_unstorable_values_are_refused_where_they_are(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_storable(value, "input")
