"""`python -m harness.console_shots URL OUT [--asset ID]`: the README's console screenshots.

Opens a running console (`crackq ui`, loopback without a login) in headless Chromium and
saves the review queue, one asset and the models page as OUT/console-{review,asset,models}.png.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from urllib.parse import quote

from harness import browser


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.console_shots", description=__doc__)
    p.add_argument("url", help="the console, e.g. http://127.0.0.1:8600")
    p.add_argument("out", type=Path, help="folder for the PNGs")
    p.add_argument("--asset", default="demo-wall", help="the asset page to show")
    p.add_argument("--reason", default="", help="the review queue filtered to this reason")
    args = p.parse_args(argv)
    why = browser.missing()
    if why:
        print(why, file=sys.stderr)
        return 2
    from selenium.webdriver.support.ui import WebDriverWait

    args.out.mkdir(parents=True, exist_ok=True)
    driver = browser.chromium(1280, 900)
    wait = WebDriverWait(driver, 30)
    try:
        pages = [
            ("review", f"/review?reason={quote(args.reason)}", "photo"),
            ("asset", f"/assets/{quote(args.asset)}", "latest-photo"),
            ("models", "/models", None),
        ]
        for name, path, photo in pages:
            driver.get(args.url.rstrip("/") + path)
            if photo:
                wait.until(partial(browser.loaded, element_id=photo))
            if name == "models":
                driver.execute_script(
                    "const d = document.querySelector('details'); if (d) d.open = true;"
                )
                wait.until(lambda d: d.execute_script(
                    "return [...document.querySelectorAll('details[open] img.report')]"
                    ".every(i => i.complete && i.naturalWidth > 0)"
                ))  # fmt: skip
            target = args.out / f"console-{name}.png"
            driver.save_screenshot(str(target))
            print(target)
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
