"""Debian's Chromium through its chromedriver, headless: the browser tests' and screenshots'."""

from __future__ import annotations

import shutil
from typing import Any

ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu")


def missing() -> str | None:
    """Why no browser can start here (what to install), or None when one can."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    return "chromium and chromedriver not installed (Debian packages chromium, chromium-driver)"


def chromium(width: int = 1280, height: int = 960) -> Any:
    """A headless Chromium WebDriver; Selenium never downloads a browser or a driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in (*ARGS, f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def loaded(driver: Any, element_id: str) -> bool:
    """Whether the <img id=element_id> finished loading a picture (not a broken one)."""
    return bool(
        driver.execute_script(
            "const i = document.getElementById(arguments[0]);"
            "return !!i && i.complete && i.naturalWidth > 0",
            element_id,
        )
    )
