"""The fault suite's shared pieces: the session report, and counting what each test injected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dagster import DagsterInstance

from sync_pipeline_tests.faults.report import FaultReport

REPORT_KEY = pytest.StashKey[FaultReport]()


@pytest.fixture(scope="session")
def fault_report(request: pytest.FixtureRequest) -> FaultReport:
    """The one report every fault test adds to; printed at the end of the run."""
    return request.config.stash.setdefault(REPORT_KEY, FaultReport())


@pytest.fixture(scope="module")
def dagster_instance() -> Iterator[DagsterInstance]:
    """In memory: the runs are the same, without a SQLite commit per event (a fault case makes
    many events, and the machine's disk is shared). The security tests read a real DAGSTER_HOME."""
    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture(autouse=True)
def _count_emulator_faults(request: pytest.FixtureRequest, fault_report: FaultReport) -> Iterator[None]:
    """After each test, add the faults its Clerk emulator fired to the report."""
    # Asked for here, not after the test: so the emulator outlives this fixture's teardown.
    emulator = request.getfixturevalue("clerk_emulator") if "clerk_emulator" in request.fixturenames else None
    yield
    if emulator is not None:
        for kind, count in emulator.faults.fired.items():
            fault_report.fault(f"clerk {kind.value}", count)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001 - pytest's hook
    report = config.stash.get(REPORT_KEY, None)
    if report is None or report.empty:
        return
    terminalreporter.section("fault suite: nothing lost, nobody let in")
    for line in report.lines():
        terminalreporter.write_line(line)
