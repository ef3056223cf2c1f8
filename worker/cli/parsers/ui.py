"""Arguments of `crackq ui`, the inspector's console."""

from __future__ import annotations

from worker.cli import ui
from worker.cli.parsers import Add


def add_ui(add: Add) -> None:
    p = add(
        "ui",
        ui.run_ui,
        help="the inspector's console in a browser: review queue, assets, models",
        description="Serve the console (review queue with one-key answers, asset timelines "
        "with crack-map overlays, model versions with promote and rollback) on "
        "CRACKQ_UI_ADDRESS:CRACKQ_UI_PORT (127.0.0.1:8600). Without CRACKQ_UI_USERS it needs "
        "no login and serves loopback only. Photos are read like a worker reads them: only "
        "below CRACKQ_ALLOWED_ROOTS, URLs through the same guard.",
    )
    p.add_argument("--address", help="listen here instead of CRACKQ_UI_ADDRESS")
    p.add_argument("--port", type=int, help="listen here instead of CRACKQ_UI_PORT")
    p.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (prompted, or one line of stdin) and print its hash for "
        "CRACKQ_UI_USERS, then exit",
    )
