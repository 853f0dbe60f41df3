"""Measure the operator page while a benchmark runs: page load time and update interval.

    .venv/bin/dispatcher bench --subscribers 50000 --var-dir var/bench-probe &
    .venv/bin/python -m tests.ops_probe --var-dir var/bench-probe

It finds the benchmark's API, adds an operator to its database, signs in with a headless
Chromium, then while the campaign is sending loads /ops again and again (Navigation Timing:
request start to load event) and records when the live updates arrive. Not a test: a probe.
"""

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from campaigns.models import Role
from campaigns.people import create_user
from dispatcher.db import make_engine, session_scope
from tests.test_ops_browser import FLAGS


def api_port() -> int:
    """The port of the newest `dispatcher api --port N` process."""
    while True:
        lines = subprocess.run(
            ["ps", "-eo", "pid,args", "--sort=-start_time"], capture_output=True, text=True
        ).stdout.splitlines()
        for line in lines:
            if "-m dispatcher api --port" in line:
                return int(line.split("--port")[1].split()[0])
        time.sleep(0.2)


def sending(api: str, cookie: str) -> bool:
    """Whether the page shows a campaign sending."""
    answer = httpx.get(f"{api}/ops/live", cookies={"dispatcher_ops": cookie}, timeout=5)
    return 'data-status="sending"' in answer.text


def summary(name: str, values: list[float]) -> str:
    """Median, 95th percentile and maximum, in ms."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"{name}: n={len(values)} median {statistics.median(values):.0f} ms, "
        f"p95 {p95:.0f} ms, max {ordered[-1]:.0f} ms"
    )


def main() -> None:
    """Sign in, wait for the campaign, measure for `--seconds`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--var-dir", type=Path, default=Path("var/bench-probe"))
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    port = api_port()
    api = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    engine = make_engine(f"sqlite:///{(args.var_dir / 'dispatcher.db').resolve()}")
    with session_scope(engine) as session:
        _, token = create_user(
            session=session, username="probe", name="Probe", role=Role.OPERATOR, authority=None
        )
    options = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir=/tmp/ops-probe-{port}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{api}/ops")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "sign-in").click()
        cookie = driver.get_cookie("dispatcher_ops")
        assert cookie is not None
        while not sending(api, cookie["value"]):
            time.sleep(0.2)
        print("campaign sending; measuring", flush=True)
        loads, servers, gaps = [], [], []
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            driver.get(f"{api}/ops")
            timing = driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                "return [t.loadEventEnd - t.startTime, t.responseEnd - t.requestStart];"
            )
            loads.append(timing[0])
            servers.append(timing[1])
            time.sleep(2.5)  # let the page update itself a couple of times
            updates = driver.execute_script("return window.opsUpdates")
            gaps += [b - a for a, b in zip(updates, updates[1:], strict=False)]
        print(summary("page load (navigation start → load event)", loads))
        print(summary("of which the server's answer", servers))
        print(summary("interval between live updates", gaps))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
