"""Every command the README shows is run: by ``.ci/run``, by this file, or by a named test.

The README's shell code blocks are read as a user would copy them. Each simple command in
them (``a && b`` is two) must be covered by one of:

* ``.ci/run``: the same command appears there (``-q`` aside);
* ``RUN_HERE``: this file runs the README's own command line, in a subprocess with the
  venv's ``sync-pipeline``, against an emulator and a test database;
* ``ELSEWHERE``: a short, reasoned list naming the test file that exercises the same path
  (a server that blocks, tables only a dedicated fixture creates);
* ``AFTER_MERGE``: commands whose code lands in parallel work; the test fails once it has
  landed, so that someone moves the entry to one of the lists above.

A README command none of these cover fails the suite. ``export NAME=value`` lines set the
environment (their values are often placeholders such as ``sk_live_...``): each name must be
a setting the README's table documents. Every ``sync-pipeline`` and ``benchmarks.run``
command in the README and in ``docs/`` must also parse with today's command line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sync_pipeline.cli import build_parser
from sync_pipeline.emulator import EmulatorServer
from sync_pipeline.webhooks import inbox

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FIXTURES = Path(__file__).resolve().parent / "clerk_fixtures"

SHELL_FENCE = re.compile(r"^[ \t]*```(?:bash|sh|shell|console)[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)  # in list items too
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
QUIET = {"-q", "--quiet"}

# The README's commands this file runs, in this order (normalized: no .venv/bin/, no -q),
# with the exit code each must end with.
RUN_HERE: dict[str, int] = {
    "sync-pipeline analyze": 0,
    "sync-pipeline sync --dry-run": 0,
    "sync-pipeline sync": 0,
    "sync-pipeline status": 0,
    "sync-pipeline status --check": 0,
    "sync-pipeline webhooks process": 0,
    "sync-pipeline webhooks replay --since 2026-11-21T08:00:00Z": 0,
    "sync-pipeline emulator --port 8765": 0,  # served in the background for the demo-data walkthrough
    # Last: they stop the embedded server (none here: DATABASE_URL is set) and remove the
    # test's own SYNC_PIPELINE_HOME.
    "sync-pipeline stop": 0,
    "sync-pipeline clean --yes": 0,
}

# command -> (test file, text that file must hold to still exercise it, why not run here)
ELSEWHERE: dict[str, tuple[str, str, str]] = {
    "sync-pipeline ui": (
        "sync_pipeline_tests/ui/test_dagster_ui.py",
        "full_sync_job",
        "a server that blocks: the UI test serves the code location with Dagster's dev server, "
        "launches full_sync_job from the Launchpad in a real Chromium and reads the plan",
    ),
    "sync-pipeline webhooks serve --port 8000": (
        "sync_pipeline_tests/faults/support.py",
        '"webhooks", "serve"',
        "a server that blocks: the fault suite starts this very command as a process and posts "
        "10,000 signed deliveries to it (faults/test_webhook_input.py); its answers are webhooks/test_receiver.py",
    ),
    "sync-pipeline app-tables analyze": (
        "sync_pipeline_tests/app_tables/test_cli.py",
        '"app-tables", "analyze"',
        "needs the application's tables: that test creates them in a schema of its own and runs this command",
    ),
    "sync-pipeline app-tables sync --apply": (
        "sync_pipeline_tests/app_tables/test_cli.py",
        '"app-tables", "sync", "--apply"',
        "needs the application's tables: that test creates them in a schema of its own and runs this command",
    ),
}

# command -> what has to land before it can be covered (the test below fails once it has).
AFTER_MERGE: dict[str, str] = {}


@dataclass(frozen=True)
class ReadmeCommand:
    text: str  # normalized
    exports: tuple[tuple[str, str], ...]  # the `export` lines above it in its block


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined."""
    return text.replace("\\\n", " ").splitlines()


def _simple_commands(line: str) -> list[list[str]]:
    """A shell line as its simple commands' words: comments dropped, split at && || ; | ( )."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set("&|;()"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [words for words in commands if words]


def _normalized(words: list[str]) -> list[str]:
    """Leading VAR=value assignments, a .venv/bin/ prefix and quiet flags do not change what runs."""
    while words and ASSIGNMENT.match(words[0]):
        words = words[1:]
    return [word.removeprefix(".venv/bin/") for word in words if word not in QUIET]


def shell_blocks(markdown: str) -> list[str]:
    return SHELL_FENCE.findall(markdown)


def readme_commands(markdown: str | None = None) -> list[ReadmeCommand]:
    found = []
    for block in shell_blocks(markdown if markdown is not None else README.read_text()):
        exports: list[tuple[str, str]] = []
        for line in _logical_lines(block):
            for words in _simple_commands(line):
                if words[0] == "export":
                    exports += [tuple(word.split("=", 1)) for word in words[1:] if "=" in word]
                    continue
                tokens = _normalized(words)
                if tokens:
                    found.append(ReadmeCommand(" ".join(tokens), tuple(exports)))
    return found


def ci_commands() -> set[str]:
    return {
        " ".join(_normalized(words))
        for line in _logical_lines(CI_SCRIPT.read_text())
        for words in _simple_commands(line)
    }


def documented_settings() -> set[str]:
    section = README.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    return {name for row in section.splitlines() if row.startswith("| `") for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def exported_names(markdown: str) -> set[str]:
    return {
        word.split("=", 1)[0]
        for block in shell_blocks(markdown)
        for line in _logical_lines(block)
        for words in _simple_commands(line)
        if words[0] == "export"
        for word in words[1:]
    }


def _subcommands() -> set[str]:
    parser = build_parser()
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction) for name in action.choices}


# == the lists =============================================================================


def test_the_readme_is_a_guide_of_at_most_300_lines() -> None:
    assert len(README.read_text().splitlines()) <= 300


def test_every_readme_command_is_run_somewhere() -> None:
    in_ci = ci_commands()
    uncovered = [
        command.text
        for command in readme_commands()
        if command.text not in in_ci and command.text not in RUN_HERE and command.text not in ELSEWHERE and command.text not in AFTER_MERGE
    ]
    assert not uncovered, (
        f"README commands nothing runs: {uncovered}. Run each in .ci/run or in this file (RUN_HERE), "
        "or name the test that exercises it (ELSEWHERE)."
    )


def test_the_lists_hold_only_readme_commands_and_nothing_twice() -> None:
    shown = {command.text for command in readme_commands()}
    in_ci = ci_commands()
    for listed in (RUN_HERE, ELSEWHERE, AFTER_MERGE):
        assert not set(listed) - shown, f"no longer in the README, remove: {set(listed) - shown}"
    assert not (set(ELSEWHERE) | set(AFTER_MERGE)) & in_ci, "covered by .ci/run now: remove it from the list"


def test_the_tests_named_for_commands_still_exercise_them() -> None:
    for command, (path, needle, reason) in ELSEWHERE.items():
        assert reason
        file = ROOT / path
        assert file.is_file(), f"{command}: {path} is gone"
        assert needle in file.read_text(), f"{command}: {path} no longer holds {needle!r}"


def test_commands_waiting_for_parallel_work_have_not_landed_yet() -> None:
    """Once the code exists this fails on purpose: run the command here or in .ci/run instead."""
    for command, awaiting in AFTER_MERGE.items():
        words = command.split()
        if words[0] == "sync-pipeline":
            assert words[1] not in _subcommands(), f"{awaiting} exists now: move {command!r} to the end of RUN_HERE (or .ci/run)"


def test_exported_names_are_documented_settings() -> None:
    settings = documented_settings()
    assert {"CLERK_SECRET_KEY", "DATABASE_URL", "CLERK_WEBHOOK_SECRET"} <= settings
    exported = exported_names(README.read_text())
    assert exported and not exported - settings, f"exported but not in the settings table: {exported - settings}"


def test_the_extraction_reads_a_block_as_a_user_would() -> None:
    markdown = "```bash\nexport A=x B=y\nX=1 .venv/bin/pip install -q -e '.[test]' && .venv/bin/sync-pipeline sync \\\n  --dry-run   # note\n```\n"
    commands = readme_commands(markdown)
    assert [c.text for c in commands] == ["pip install -e .[test]", "sync-pipeline sync --dry-run"]
    assert commands[0].exports == (("A", "x"), ("B", "y"))


def _documented_command_lines() -> list[tuple[str, list[str]]]:
    lines = []
    for path in [README, *DOCS]:
        for block in shell_blocks(path.read_text()):
            for line in _logical_lines(block):
                for words in _simple_commands(line):
                    lines.append((path.name, _normalized(words)))
    return lines


def test_every_documented_command_parses_with_todays_command_line() -> None:
    from benchmarks.run import _parse_args as parse_benchmark_args

    checked = set()
    for source, words in _documented_command_lines():
        command = " ".join(words)
        if command in AFTER_MERGE:
            continue
        if words[:1] == ["sync-pipeline"]:
            try:
                build_parser().parse_args(words[1:])
            except SystemExit:  # argparse exits 2 on a flag or command it does not know
                pytest.fail(f"{source}: {command!r} does not parse with today's command line")
            checked.add(command)
        elif words[:3] in (["python", "-m", "benchmarks.run"], ["python3", "-m", "benchmarks.run"]):
            parse_benchmark_args(words[3:])
            checked.add(command)
    assert set(RUN_HERE) <= checked


LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_in_the_readme_and_docs_lead_somewhere() -> None:
    for path in [README, *DOCS]:
        text = path.read_text()
        anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
        for target in LINK.findall(text):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            if file:
                assert (path.parent / file).exists(), f"{path.name}: {target} leads nowhere"
            elif anchor:
                assert anchor in anchors, f"{path.name}: no heading for #{anchor}"


# == running them ==========================================================================


def _sync_pipeline() -> list[str]:
    script = Path(sys.executable).with_name("sync-pipeline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sync_pipeline.cli"]


def _run(command: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    assert words[0] == "sync-pipeline"
    return subprocess.run([*_sync_pipeline(), *words[1:]], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "SYNC_APP_TABLES")}
    env.update(SYNC_PIPELINE_HOME=str(tmp_path / "home"), **settings)
    return env


def _readme_has(command: str) -> ReadmeCommand:
    matches = [c for c in readme_commands() if c.text == command]
    assert matches, f"the README no longer shows {command!r}"
    return matches[0]


def _store_a_user_event(engine: sa.Engine, schema: str, user_id: str) -> None:
    payload = json.loads((FIXTURES / "webhook_user.updated.json").read_text())
    payload["data"]["id"] = user_id
    inbox.store_delivery(engine, schema, svix_id="msg_readme_user_updated", svix_timestamp=None, payload=payload)


def test_the_readme_commands_run_against_clerk_and_a_database(
    clerk_emulator: EmulatorServer, database_url: str, schema: str, engine: sa.Engine, tmp_path: Path
) -> None:
    env = _environment(
        tmp_path,
        CLERK_SECRET_KEY=clerk_emulator.secret_key,
        CLERK_API_URL=clerk_emulator.base_url,
        DATABASE_URL=database_url,
        SYNC_SCHEMA=schema,
    )
    outputs = {}
    for command, expected_exit in RUN_HERE.items():
        if command.startswith("sync-pipeline emulator"):
            continue  # the next test serves it
        _readme_has(command)
        if command.startswith("sync-pipeline webhooks process"):
            _store_a_user_event(engine, schema, next(iter(clerk_emulator.store.iter_users()))["id"])
        result = _run(command, env)
        assert result.returncode == expected_exit, f"{command}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        outputs[command] = result.stdout

    assert "drift found" in outputs["sync-pipeline analyze"]  # the mirror was empty
    assert "Dry run" in outputs["sync-pipeline sync --dry-run"]
    assert "Mirror rows written" in outputs["sync-pipeline sync"]
    assert "Mirror: OK" in outputs["sync-pipeline status"]
    with engine.connect() as connection:
        live_users = connection.execute(sa.text(f'SELECT count(*) FROM "{schema}".users WHERE deleted_at IS NULL')).scalar_one()
        statuses = connection.execute(sa.text(f'SELECT status FROM "{schema}".webhook_events')).scalars().all()
    assert live_users == sum(1 for _user in clerk_emulator.store.iter_users())
    assert statuses == ["processed"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_clerk_is_served_and_reached_as_the_readme_says(database_url: str, schema: str, tmp_path: Path) -> None:
    emulator_command = _readme_has("sync-pipeline emulator --port 8765").text
    analyze = [c for c in readme_commands() if c.text == "sync-pipeline analyze" and dict(c.exports).get("CLERK_API_URL")]
    assert analyze, "the README's demo walkthrough no longer exports CLERK_API_URL before analyze"
    exported = dict(analyze[0].exports)
    assert exported["CLERK_API_URL"] == "http://127.0.0.1:8765/v1", "the URL must name the port the emulator command serves"

    port = _free_port()  # the README's port may be taken here; argparse keeps the last --port
    env = _environment(tmp_path, DATABASE_URL=database_url, SYNC_SCHEMA=schema)
    words = shlex.split(emulator_command)
    emulator = subprocess.Popen(
        [*_sync_pipeline(), *words[1:], "--port", str(port), "--users", "40", "--orgs", "4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        url = exported["CLERK_API_URL"].replace(":8765/", f":{port}/")
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"{url}/users", params={"limit": 1}, headers={"Authorization": f"Bearer {exported['CLERK_SECRET_KEY']}"}, timeout=2)
                break
            except httpx.TransportError:
                assert emulator.poll() is None, emulator.stderr.read()
                assert time.monotonic() < deadline, "the emulator did not answer within 60 s"
                time.sleep(0.2)
        assert answer.status_code == 200, "the README's key is not the emulator's"

        result = _run("sync-pipeline analyze", {**env, **exported, "CLERK_API_URL": url})
        assert result.returncode == 0, result.stderr
        assert "drift found" in result.stdout
        assert re.search(r"^users\s+40\b", result.stdout, re.M), result.stdout  # the 40 users it serves, all missing
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
