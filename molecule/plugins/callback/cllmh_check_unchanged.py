"""Fail an ansible-playbook --check run in which any task (or handler) reports `changed`.

Molecule's `check` step runs the converge playbook with --check after `idempotence`: on a converged host a
check-mode run must change nothing, yet ansible-playbook exits 0 whatever tasks report. This callback lists
every changed result and ends the run with exit code 2 once the stats are printed. Without --check it
disables itself, so converge and idempotence are untouched. Enabled for every scenario by molecule/base.yml.
"""

from __future__ import annotations

import sys

from ansible import context
from ansible.executor.stats import AggregateStats
from ansible.executor.task_result import CallbackTaskResult
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: cllmh_check_unchanged
type: aggregate
short_description: fail a --check run when any task would change something
description:
  - In check mode (--check), records every task or handler result with changed=true and, after the
    play recap, exits with code 2 listing them. Does nothing without --check.
requirements:
  - enabled in callbacks_enabled (molecule/base.yml)
"""

# ansible-playbook's own code for "some hosts failed".
EXIT_CHANGED = 2


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "cllmh_check_unchanged"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.disabled = not context.CLIARGS.get("check", False)
        self._changed: list[str] = []

    def v2_runner_on_ok(self, result: CallbackTaskResult) -> None:
        # Handlers come here too; a loop's result is changed when any of its items is.
        if result.result.get("changed", False):
            self._changed.append(f"{result.host.get_name()}: {result.task.get_name()}")

    def v2_playbook_on_stats(self, stats: AggregateStats) -> None:
        if not self._changed:
            self._display.display("cllmh_check_unchanged: check mode, no task would change anything")
            return
        lines = "\n".join(f"  - {item}" for item in self._changed)
        self._display.error(
            f"check mode: {len(self._changed)} task result(s) would change the host "
            f"(a converged host must report none):\n{lines}"
        )
        # Callback exceptions only become warnings; SystemExit is not an Exception, so it ends
        # ansible-playbook with this code (after its `finally` clean-up) and Molecule's step fails.
        sys.exit(EXIT_CHANGED)
