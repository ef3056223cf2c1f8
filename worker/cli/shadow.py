"""`crackq models shadow V [--fraction F] | --off` and `crackq models compare V [--json]`."""

from __future__ import annotations

import argparse
import getpass
import sys

from db import registry, shadow
from worker.cli.output import sessions, to_json
from worker.settings import get_settings
from worker.shadowreport import compare, render


def run_shadow(args: argparse.Namespace) -> int:
    if args.verb == "compare":
        return _compare(args)
    by = args.by or getpass.getuser()
    with sessions()() as session, session.begin():
        if args.off:
            stopped = shadow.stop(session, by, args.reason)
            print(f"stopped shadowing {stopped}" if stopped else "no version was shadowed")
            return 0
        if not args.version:
            current = shadow.active(session)
            if current is None:
                print("no version is shadowed (crackq models shadow VERSION [--fraction F])")
            else:
                print(
                    f"shadowing {current.version} on {current.fraction:g} of live photos, "
                    f"since {current.started_at:%Y-%m-%d %H:%M:%S} by {current.started_by}"
                )
            return 0
        fraction = 1.0 if args.fraction is None else args.fraction
        if not 0 < fraction <= 1:
            raise ValueError(f"--fraction must be in (0, 1], not {fraction:g}")
        live = registry.promoted(session)
        if live is not None and live.version == args.version:
            raise ValueError(f"{args.version} is the promoted version: nothing to compare with")
        started = shadow.start(session, args.version, fraction, by, args.reason)
        version = started.version
    poll = get_settings().model_poll_s
    print(f"shadowing {version} on {fraction:g} of live photos")
    print(
        f"inference workers load it within {poll:g} s (plus its load time); "
        f"`crackq models compare {version}` reports on it",
        file=sys.stderr,
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    if not args.version:
        raise ValueError("models compare needs a VERSION")
    with sessions()() as session:
        registry.get(session, args.version)  # a typo is an error, not an empty report
        report = compare(session, args.version, args.flips)
    as_json = args.json or args.format == "json"
    print(to_json(report, indent=2) if as_json else render(report))
    return 0
