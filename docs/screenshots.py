"""`make ui-screenshots`: the MLflow UI in a real (headless) browser, saved as docs/img/*.png.

    python docs/screenshots.py [--tracking-uri sqlite:///mlflow/mlflow.db] [--sweeps sentiment,sunspots]

The pictures show the first of ``--sweeps`` whose experiment holds a sweep (a parent run with
trial runs nested under it); its latest sweep is the one pictured:

  runs_table.png        the experiment's runs table, the sweep's trials expanded under it
  cells_chart.png       the chart view grouped by cell: the objective per cell
  registered_model.png  the registered model named after the sweep (#/models/<name>)

It starts ``mlflow ui`` on a free 127.0.0.1 port (an http:// tracking URI is a server with its
own UI, used as it is), finds the sweep through the server's REST API and drives Debian's
``chromium`` with Playwright (``pip install -e '.[ui]'``; Playwright's own browsers are never
downloaded). The view (Model training, the chart mode, a filter on the sweep) comes from the
page's URL; the rest are clicks a user would make: columns chosen, the parent run expanded,
runs grouped by cell.
Exit 2 (one line) when chromium, Playwright, the store, a sweep or its registered model is
missing; exit 1 when a page never shows what the script waits for (the UI changed).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WINDOW = {"width": 1600, "height": 1000}
PARENT_TAG = "mlflow.parentRunId"
TIMEOUT_MS = 90_000  # the UI answers slowly while a sweep keeps both cores busy


class Stop(Exception):
    """A one-line reason to exit 2."""


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow/mlflow.db")
    parser.add_argument("--sweeps", default="sentiment,sunspots",
                        help="experiment names, comma-separated: the first with a sweep is pictured")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="where the PNGs go (default docs/img)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    return parser.parse_args(argv)


class UI:
    """``mlflow ui`` over a tracking URI on a free port, its output read to the end (and kept for errors)."""

    def __init__(self, uri: str):
        self.uri, self.proc, self.tail = uri, None, collections.deque(maxlen=30)
        self.url = uri.rstrip("/") if uri.startswith(("http://", "https://")) else None

    def __enter__(self) -> "UI":
        if self.url:
            return self
        db = self.uri[len("sqlite:///"):] if self.uri.startswith("sqlite:///") else None
        if db is not None and not Path(db).exists():
            raise Stop(f"{self.uri}: no such store; run `make sweep` first")
        from lstm_models.tracking.server import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", self.uri,
                                      "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        threading.Thread(target=self.tail.extend, args=(self.proc.stdout,), daemon=True).start()
        self._wait_healthy(180.0)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Stop(f"mlflow ui exited with code {self.proc.returncode}: {self.last_line()}")
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise Stop(f"mlflow ui: {self.url}/health did not answer within {timeout:.0f}s")

    def last_line(self) -> str:
        return next((line.strip() for line in reversed(self.tail) if line.strip()), "no output")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def api(self, endpoint: str, body: dict | None = None, **query) -> dict | None:
        """One REST call (``ajax-api/2.0/mlflow/...``); None when the server answers 404 (no such thing)."""
        url = f"{self.url}/ajax-api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.load(answer)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


def find_sweep(ui: UI, names: list[str]) -> dict:
    """The first name's experiment with a sweep: its id, its latest parent run, its objective and model."""
    for name in names:
        found = ui.api("experiments/get-by-name", experiment_name=name)
        if found is None:
            print(f"{name}: no experiment in {ui.uri}", flush=True)
            continue
        experiment_id = found["experiment"]["experiment_id"]
        runs = ui.api("runs/search", {"experiment_ids": [experiment_id], "max_results": 1000,
                                      "order_by": ["attributes.start_time DESC"]}).get("runs", [])
        parent, trial = _latest_sweep(runs)
        if parent is None:
            print(f"{name}: experiment {experiment_id} holds no sweep with trials", flush=True)
            continue
        if ui.api("registered-models/get", name=name) is None:
            raise Stop(f"{name}: no registered model {name!r} in {ui.uri}; a finished sweep registers one")
        params = {p["key"]: p["value"] for p in parent["data"].get("params", [])}
        return {"name": name, "experiment_id": experiment_id, "parent": parent["info"]["run_id"],
                "trial": trial["info"]["run_id"], "objective": params.get("objective", "val_loss"), "model": name}
    raise Stop(f"no sweep found in {ui.uri} among {', '.join(names)}; run `make sweep` first")


def _latest_sweep(runs: list[dict]) -> tuple[dict | None, dict | None]:
    """The newest parent run that has trials nested under it (``runs`` newest first), and one trial."""
    children: dict[str, dict] = {}
    for run in runs:
        parent = next((t["value"] for t in run["data"].get("tags", []) if t["key"] == PARENT_TAG), None)
        if parent is not None:
            children.setdefault(parent, run)
    for run in runs:
        nested = any(t["key"] == PARENT_TAG for t in run["data"].get("tags", []))
        if run["info"]["run_id"] in children and not nested:
            return run, children[run["info"]["run_id"]]
    return None, None


def main(argv: list[str] | None = None) -> int:
    """Check the tools, start the UI, find the sweep, take the pictures; returns the exit code."""
    args = _args(argv)
    try:
        if not Path(args.chromium).exists():
            raise Stop(f"{args.chromium}: chromium not found; apt-get install -y chromium (make ui-screenshots does)")
        try:
            import playwright.sync_api
        except ImportError:
            raise Stop("playwright is not installed; pip install -e '.[ui]' (make ui-screenshots does)") from None
        names = [n.strip() for n in args.sweeps.split(",") if n.strip()]
        with UI(args.tracking_uri) as ui:
            sweep = find_sweep(ui, names)
            print(f"picturing sweep {sweep['name']!r} (experiment {sweep['experiment_id']}, parent run "
                  f"{sweep['parent']}) from {ui.url}", flush=True)
            try:
                shots = take(ui.url, sweep, Path(args.out), args.chromium)
            except playwright.sync_api.Error as exc:  # a timeout: a page never showed what was waited for
                first = str(exc).strip().splitlines()[0]
                print(f"ui-screenshots: the MLflow UI did not show what was expected ({first}); its last "
                      f"output: {ui.last_line()}", file=sys.stderr)
                return 1
    except Stop as exc:
        print(f"ui-screenshots: {exc}", file=sys.stderr)
        return 2
    for path in shots:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
              f"({path.stat().st_size / 1024:.0f} KB)")
    return 0


def take(base: str, sweep: dict, out: Path, chromium: str) -> list[Path]:
    """Open each page in a headless Chromium window of 1600x1000 and save it as ``out/<name>.png``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            for name, show in (("runs_table", runs_table), ("cells_chart", cells_chart),
                               ("registered_model", registered_model)):
                page = browser.new_page(viewport=WINDOW)
                page.set_default_timeout(TIMEOUT_MS)
                show(page, base, sweep)
                page.mouse.move(WINDOW["width"] - 2, WINDOW["height"] // 2)  # no hover tooltip in the picture
                time.sleep(1.0)
                page.screenshot(path=str(out / f"{name}.png"))
                shots.append(out / f"{name}.png")
                page.close()
        finally:
            browser.close()
    return shots


def _open(page, url: str, ready: str) -> None:
    """Go to ``url``, wait for ``ready`` (a selector), and close the MLflow Assistant panel 3.17 opens."""
    page.goto(url)
    page.locator(ready).first.wait_for()
    from playwright.sync_api import TimeoutError as NotShown

    close = page.locator('button[data-component-id="mlflow.assistant.chat_panel.close"]')
    try:
        close.wait_for(timeout=5000)
        close.click()
    except NotShown:  # no panel this time
        pass


def _experiment_url(base: str, sweep: dict, chart: bool = False) -> str:
    # workflowType: the "Model training" side of 3.17's GenAI / Model training switch (Runs, Models).
    mode = "&compareRunsMode=CHART" if chart else ""
    return f"{base}/#/experiments/{sweep['experiment_id']}/runs?workflowType=machine_learning{mode}"


def _metric(sweep: dict) -> str:
    """``val_accuracy`` -> ``accuracy``: the objective without its split."""
    return re.sub(r"^val_", "", sweep["objective"])


def runs_table(page, base: str, sweep: dict) -> None:
    """The runs table: a few columns chosen, the parent run's expand control clicked."""
    parent = f'a[href$="/runs/{sweep["parent"]}"]'
    _open(page, _experiment_url(base, sweep), parent)
    metric = _metric(sweep)
    _columns(page, off=["Dataset", "Source", "Models"],
             on=["cell", "units", "depth", "dropout", f"val_{metric}", f"test_{metric}"])
    page.locator('[role="gridcell"]', has=page.locator(parent)).locator("button").first.click()
    page.locator(f'a[href$="/runs/{sweep["trial"]}"]').wait_for()
    for column, by in (("attributes.`Run Name`", 120), (f"metrics.`val_{metric}`", 40),
                       (f"metrics.`test_{metric}`", 40)):
        _widen(page, column, by)


def _columns(page, off: list[str], on: list[str]) -> None:
    """Tick and untick columns in the Columns dropdown (a tree of checkboxes, filtered by its search box)."""
    page.get_by_role("button", name="Columns").click()
    search = page.get_by_placeholder("Search columns")
    for name in off + on:
        search.fill(name)
        # The search highlights the match inside the title, so the title's whole text is compared.
        node = page.get_by_role("dialog").locator('[class*="tree-treenode"]').filter(
            has=page.locator('[class*="tree-title"]', has_text=re.compile(f"^{re.escape(name)}$"))).first
        node.locator('[class*="tree-checkbox"]').first.click()
    search.fill("")
    page.keyboard.press("Escape")


def _widen(page, col_id: str, by: int) -> None:
    """Drag a column header's resize handle ``by`` pixels to the right (ag-grid wants small mouse steps)."""
    handle = page.locator(f'.ag-header-cell[col-id="{col_id}"] .ag-header-cell-resize')
    handle.hover()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + by * step / 20, y)
        time.sleep(0.02)
    page.mouse.up()


def cells_chart(page, base: str, sweep: dict) -> None:
    """The chart view grouped by the ``cell`` parameter, its charts filtered to the objective's metric."""
    search = urllib.parse.quote(f"tags.`{PARENT_TAG}` = '{sweep['parent']}'")  # this sweep's trials only
    _open(page, _experiment_url(base, sweep, chart=True) + f"&searchFilter={search}",
          f'a[href$="/runs/{sweep["parent"]}"]')
    page.get_by_role("button", name="Group by").click()
    page.get_by_placeholder("Search").last.fill("cell")
    page.get_by_role("menuitemcheckbox", name="cell", exact=True).last.click()  # Params, after Tags
    page.keyboard.press("Escape")
    metric = _metric(sweep)
    page.get_by_placeholder("Search metric charts").fill(f"^(final_)?val_{metric}$|^test_{metric}$")
    page.get_by_text("Group: ").first.wait_for()
    page.locator(".js-plotly-plot").nth(2).wait_for()  # three charts: final, test and per-epoch values
    time.sleep(2.0)  # plotly's transition


def registered_model(page, base: str, sweep: dict) -> None:
    """The registered model's page: its versions, each linked to the run that logged it."""
    name = urllib.parse.quote(sweep["model"])
    _open(page, f"{base}/#/models/{name}?workflowType=machine_learning", f'a[href*="/models/{name}/versions/"]')


if __name__ == "__main__":
    sys.exit(main())
