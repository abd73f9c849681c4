"""Every setting is documented, with its default, in .env.example and docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
CONFIG_DOC = ROOT / "docs" / "configuration.md"

# `NAME=value`, or `# NAME=` for a setting that is unset by default.
ENV_LINE = re.compile(r"^(?P<commented>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def expected_env_value(name: str) -> str | None:
    """The value .env.example must show for a setting; None when it is unset by default."""
    default = Settings.model_fields[name].default
    return None if default is None else str(default)


def expected_doc_default(name: str) -> str:
    default = Settings.model_fields[name].default
    return "unset" if default is None else f"`{default}`"


def read_env_example() -> dict[str, tuple[bool, str]]:
    """{name: (commented_out, value)} for every assignment line of .env.example."""
    entries: dict[str, tuple[bool, str]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            entries[match["name"]] = (bool(match["commented"]), match["value"].strip())
    return entries


def read_doc_table(doc: Path = CONFIG_DOC) -> dict[str, str]:
    """{name: default cell} for every row of a document's settings table (3+ columns)."""
    rows: dict[str, str] = {}
    for line in doc.read_text().splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) < 3 or cells[0] == "Setting" or set(cells[0]) <= set("-: "):
            continue
        rows[cells[0].strip("`")] = cells[1]
    return rows


def test_env_example_lists_every_setting_with_its_default() -> None:
    entries = read_env_example()
    fields = set(Settings.model_fields)

    missing = sorted(fields - set(entries))
    assert not missing, f".env.example lacks these settings: {', '.join(missing)}"
    unknown = sorted(set(entries) - fields)
    assert not unknown, f".env.example names settings that Settings lacks: {', '.join(unknown)}"

    wrong = []
    for name in sorted(fields):
        commented, value = entries[name]
        expected = expected_env_value(name)
        if expected is None:
            if not commented or value:
                wrong.append(f"{name}: expected '# {name}=' (unset by default)")
        elif commented or value != expected:
            shown = f"# {name}={value}" if commented else f"{name}={value}"
            wrong.append(f"{name}: expected '{name}={expected}', found '{shown}'")
    assert not wrong, ".env.example shows wrong defaults:\n" + "\n".join(wrong)


def test_env_example_loads_as_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    from_file = Settings(_env_file=ENV_EXAMPLE)
    defaults = Settings(_env_file=None)
    differ = sorted(
        name
        for name in Settings.model_fields
        if getattr(from_file, name) != getattr(defaults, name)
    )
    assert not differ, f".env.example does not load as the defaults for: {', '.join(differ)}"


@pytest.mark.parametrize("doc", [CONFIG_DOC, ROOT / "README.md"], ids=lambda p: p.name)
def test_configuration_doc_lists_every_setting_with_its_default(doc: Path) -> None:
    rows = read_doc_table(doc)
    fields = set(Settings.model_fields)

    missing = sorted(fields - set(rows))
    assert not missing, f"{doc.name}'s table lacks these settings: {', '.join(missing)}"
    unknown = sorted(set(rows) - fields)
    assert not unknown, (
        f"{doc.name}'s table names settings that Settings lacks: {', '.join(unknown)}"
    )

    wrong = [
        f"{name}: expected {expected_doc_default(name)}, found {rows[name]}"
        for name in sorted(fields)
        if rows[name] != expected_doc_default(name)
    ]
    assert not wrong, f"{doc.name} shows wrong defaults:\n" + "\n".join(wrong)
