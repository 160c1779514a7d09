"""The dualbus exception tree. Every error a user can cause or meet derives from DualbusError.

    DualbusError                     exit code 1 unless stated
    ├── InputError                   exit 2: bad YAML, bad field, bad CLI argument
    │   ├── ConfigError              dualbus.yaml problems (one line each in .problems)
    │   └── SpecError                slo/*.yaml problems (one line each in .problems)
    ├── StackError                   the reference stack could not start/stop
    ├── ProbeError                   a probe could not run at all (not a failed sample)
    ├── WarehouseError               the DuckDB warehouse cannot be used
    │   └── WarehouseLockedError     another process holds the write lock
    └── PipelineError                the pipeline itself failed (not a breached target)

A failed *measurement* (timeout, refused connection, 500) is never an exception: it is a
failed sample with a reason. Exceptions are for when the tool cannot do its job.
"""

from __future__ import annotations


class DualbusError(Exception):
    exit_code = 1

    def lines(self) -> list[str]:
        """The message as printed by the CLI, one problem per line."""
        return [str(self)]


class InputError(DualbusError):
    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self) -> list[str]:
        return self.problems


class ConfigError(InputError):
    pass


class SpecError(InputError):
    pass


class StackError(DualbusError):
    pass


class ProbeError(DualbusError):
    pass


class WarehouseError(DualbusError):
    pass


class WarehouseLockedError(WarehouseError):
    pass


class PipelineError(DualbusError):
    pass
