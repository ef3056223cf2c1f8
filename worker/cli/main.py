"""The `crackq` command's top-level parser and `main()`; worker/cli/parsers/ adds each command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from worker.cli.parsers import (
    Add,
    assets,
    deadletters,
    demo,
    finetune,
    inspect,
    labels,
    maps,
    models,
    rescore,
    review,
    service,
    ui,
)
from worker.settings import get_settings

EPILOG = """\
Settings come from CRACKQ_* environment variables or a .env file (see .env.example).
Start Flower (the operators' dashboard) with `crackq flower` (basic auth from
CRACKQ_FLOWER_BASIC_AUTH=user:password), or `celery -A worker.app flower`.
"""

# In the order `crackq --help` lists them.
COMMANDS: tuple[Callable[[Add], None], ...] = (
    inspect.add_submit,
    inspect.add_classify,
    inspect.add_results,
    maps.add_map,
    assets.add_assets,
    service.add_worker,
    service.add_flower,
    ui.add_ui,
    service.add_migrate,
    finetune.add_finetune,
    models.add_models,
    labels.add_label,
    review.add_review,
    demo.add_demo,
    deadletters.add_dead_letters,
    inspect.add_status,
    inspect.add_requeue,
    rescore.add_rescore,
    service.add_schema,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crackq",
        description="Asynchronous crack inspection: Redis queue -> Celery -> ResNet50 -> PostgreSQL.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, run: Callable[[argparse.Namespace], int], **kw: Any
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, **kw)
        p.set_defaults(run=run)
        return p

    for add_command in COMMANDS:
        add_command(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from kombu.exceptions import OperationalError as BrokerUnavailable
    from kombu.utils.url import maybe_sanitize_url
    from redis.exceptions import RedisError

    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError, LookupError) as exc:
        print(f"crackq {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (RedisError, BrokerUnavailable) as exc:  # wrong password, TLS, unreachable
        broker = maybe_sanitize_url(settings.broker())  # password masked
        print(f"crackq {args.command}: error: broker {broker}: {exc}", file=sys.stderr)
        return 2
