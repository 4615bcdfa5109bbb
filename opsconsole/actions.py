"""The registry of audited service actions: every function that changes something.

Each mutating service function is decorated with `@audited_action(...)`, naming
the audit event it writes when the action is accepted. The audit-rule test
(tests/opsconsole/test_audit_rule.py) walks this registry and the jobs registry,
runs an example of each, and checks the events the rule asks for
(docs/architecture.md, "The audit rule"). A new action without an example fails it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class AuditedAction:
    key: str  # module.qualname of the service function
    event: str  # the audit action written when it is accepted
    long: bool  # returns a Run: its outcome is the runner's `job.end` event


ACTIONS: dict[str, AuditedAction] = {}


def audited_action(event: str, *, long: bool = False) -> Callable[[F], F]:
    """Register the decorated service function as an audited action.

    `event` is the accepted event it writes; `long` marks a launch whose outcome
    event is written by the runner when the run ends. Changes nothing at call time."""

    def register(func: F) -> F:
        key = f"{func.__module__}.{func.__qualname__}"
        ACTIONS[key] = AuditedAction(key, event, long)
        return func

    return register
