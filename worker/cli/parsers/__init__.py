"""Each `crackq` command's arguments: one module per command group, one `add_*` per command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol


class Add(Protocol):
    """Adds subcommand `name`, which runs `run(args)`; returns its parser for the arguments."""

    def __call__(
        self, name: str, run: Callable[[argparse.Namespace], int], **kw: Any
    ) -> argparse.ArgumentParser: ...
