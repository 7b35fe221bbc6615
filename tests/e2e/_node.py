"""Running the Node scripts of tests/e2e/client (the official @trpc/client) against a server.

A missing Node or missing npm packages fail the test with what to do: these tests are part of
the contract's check, so they never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CLIENT_DIR = Path(__file__).parent / "client"
#: The scripts built on client/lib.mjs stop themselves after 75 s and report what they saw;
#: this only catches a Node that hangs.
NODE_TIMEOUT = 100


def node_command(script: str) -> list[str]:
    """`node <script>`; fails (never skips) when Node or the npm packages are missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20+, then run `make test`")
    if not (CLIENT_DIR / "node_modules" / "@trpc" / "client").is_dir():
        pytest.fail(
            f"{CLIENT_DIR / 'node_modules'} is missing: run `make test`, which installs it "
            "(npm ci --prefix tests/e2e/client)"
        )
    return [node, str(CLIENT_DIR / script)]


class Scenarios:
    """Runs each scenario of one script once against one server and keeps its report (or its
    failure), so the tests of a module share one run."""

    def __init__(self, script: str, base_url: str, argument: Any = None) -> None:
        self.script = script
        self.base_url = base_url
        self.argument = argument
        self._reports: dict[str, dict[str, Any] | str] = {}

    def run(self, scenario: str) -> dict[str, Any]:
        """The whole report: {result, requests}."""
        if scenario not in self._reports:
            self._reports[scenario] = self._run(scenario)
        report = self._reports[scenario]
        if isinstance(report, str):
            pytest.fail(report)
        return report

    def result(self, scenario: str) -> Any:
        return self.run(scenario)["result"]

    def _run(self, scenario: str) -> dict[str, Any] | str:
        command = [*node_command(self.script), self.base_url, scenario]
        if self.argument is not None:
            command.append(json.dumps(self.argument))
        done = subprocess.run(
            command, cwd=CLIENT_DIR, capture_output=True, text=True, timeout=NODE_TIMEOUT
        )
        if done.returncode != 0:
            return f"{self.script} {scenario} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        report: dict[str, Any] = json.loads(done.stdout)
        return report
