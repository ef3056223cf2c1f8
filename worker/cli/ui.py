"""`crackq ui [--address A] [--port P] | --hash-password`: the inspector's console."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from worker.settings import Settings, get_settings

log = logging.getLogger(__name__)


def run_ui(args: argparse.Namespace) -> int:
    # Imported here: the web stack (and torch, through the overlay) stays out of `--help`.
    from worker.ui import auth

    if args.hash_password:
        return _hash_password()
    settings = get_settings()
    address = args.address or settings.ui_address
    port = args.port or settings.ui_port
    accounts = auth.load_accounts(
        settings.ui_users.get_secret_value() if settings.ui_users else None,
        settings.ui_users_file,
    )
    if not accounts and not auth.is_loopback(address):
        raise ValueError(
            f"the console would listen on {address} without a login: set CRACKQ_UI_USERS "
            "(name:role:password, e.g. from `crackq ui --hash-password`) or "
            "CRACKQ_UI_USERS_FILE, or bind it to 127.0.0.1"
        )
    return _serve(settings, address, port, bool(accounts))


def _serve(settings: Settings, address: str, port: int, login: bool) -> int:
    import uvicorn

    from db.session import make_engine, make_sessionmaker
    from worker.services import open_services, redact
    from worker.ui.app import create_app

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # no migration here: the console reads what workers and `crackq migrate` made
    with open_services(settings) as (_, database):
        say(f"database {redact(database)}")
        sessions = make_sessionmaker(make_engine(database, pool_size=4))
        app = create_app(settings, sessions)
        roots = ", ".join(str(r) for r in settings.allowed_roots) or "none (local paths refused)"
        host = f"[{address}]" if ":" in address else address
        who = "login required" if login else "no login: loopback only"
        say(f"console on http://{host}:{port}/ ({who}); photos read from: {roots}")
        uvicorn.run(app, host=address, port=port, log_level="warning", access_log=False)
    return 0


def _hash_password() -> int:
    from worker.ui.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            print("crackq ui: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("crackq ui: an empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
