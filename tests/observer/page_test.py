#!/usr/bin/python3
"""The observer page in headless Chromium, driven over the DevTools protocol.

  page_test.py --app BIN --artifacts DIR --case restart|big

restart: the example app's tree renders; a child killed through the API shows its
         restart on the page, without a reload.
big:     10,000 children under one simple_one_for_one supervisor: the page renders
         them as counts and a paged list (not 10,000 rows), a search finds one, and
         the page answers while the stream runs.

Screenshots go to DIR. Times (render, restart shown) are printed and written to
DIR/<case>.json for docs/benchmarks.md: they are measured here, not asserted.
Exit 77 (ctest SKIP_RETURN_CODE) only when chromium is not installed.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import websocket  # python3-websocket
except ImportError:
    print("FAIL: python3-websocket is not installed (scripts/setup)")
    sys.exit(1)


class Cdp:
    """A DevTools protocol session on one page."""

    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        my = self.next_id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(method + ": " + json.dumps(msg["error"]))
                return msg.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("evaluate " + expr + ": " + json.dumps(r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expr, timeout=15.0):
        """Polls a JS condition every 10 ms; the time it took, or fails at the timeout (a safety net)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.eval(expr):
                return time.monotonic() - start
            time.sleep(0.01)
        raise AssertionError("timed out waiting for: " + expr)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print("screenshot:", path)


def start_app(app, children, tmp):
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen([app, "--children", str(children), "--seconds", "120", "--port-file", port_file],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(port_file) and open(port_file).read().strip():
            return proc, int(open(port_file).read())
        if proc.poll() is not None:
            raise AssertionError("the example app exited with %d" % proc.returncode)
        time.sleep(0.05)
    raise AssertionError("the example app did not start")


def start_chromium(chromium, tmp):
    proc = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-extensions", "--remote-debugging-port=0", "--remote-allow-origins=*",
                             "--window-size=1280,900", "--user-data-dir=" + os.path.join(tmp, "profile"),
                             "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if "DevTools listening on ws://" in line:
            port = int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            break
        if time.monotonic() > deadline:
            raise AssertionError("chromium gave no DevTools address")
    else:
        raise AssertionError("chromium exited before listening")
    # Keep reading its stderr so it never blocks on a full pipe.
    import threading
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    for _ in range(500):
        pages = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port))
        pages = [p for p in pages if p.get("type") == "page"]
        if pages:
            return proc, pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.02)
    raise AssertionError("chromium has no page")


def open_page(cdp, base):
    cdp.call("Page.enable")
    cdp.call("Runtime.enable")
    t0 = time.monotonic()
    cdp.call("Page.navigate", url=base + "/")
    # Rendered: the snapshot applied and the top supervisor's row in the DOM.
    cdp.wait("!!(window.warrenState && warrenState.snapshots > 0 && document.querySelector('#tree li.sup .row'))")
    return time.monotonic() - t0


def case_restart(cdp, base, figures):
    figures["render_s"] = open_page(cdp, base)
    # workers > steady: expand the `workers` supervisor.
    cdp.eval("document.querySelector('li.sup[data-id=\"workers\"] > .row .toggle').click()")
    cdp.wait("!!document.querySelector('li.child[data-id=\"steady\"]')")
    before = cdp.eval("""(() => { const w = [...warrenState.index.values()].find(n => n.id === 'workers');
        const s = w.children.find(c => c.id === 'steady'); window.__noReload = 1;
        return {path: w.path + '.' + s.actor_id, actor: s.actor_id, restarts: s.restarts}; })()""")
    req = urllib.request.Request(base + "/v1/tree/kill?path=" + before["path"], data=b"", method="POST")
    t0 = time.monotonic()
    assert urllib.request.urlopen(req).status == 202
    # The row shows the new actor and one more restart, on the same document.
    shown = cdp.wait("""(() => { const li = document.querySelector('li.child[data-id="steady"]');
        return li && window.__noReload === 1 && Number(li.dataset.actor) !== %d && Number(li.dataset.actor) > 0 &&
          li.querySelector('.restarts').textContent === '%d' && li.querySelector('.state').textContent === 'running'; })()"""
                     % (before["actor"], before["restarts"] + 1))
    figures["restart_shown_s"] = time.monotonic() - t0
    assert cdp.eval("document.querySelector('#timeline').textContent.includes('steady')"), "not in the timeline"
    assert cdp.eval("warrenState.snapshots") == 1, "the page took a new snapshot instead of applying deltas"
    del shown


def case_big(cdp, base, figures):
    figures["render_s"] = open_page(cdp, base)
    pool = cdp.eval("[...warrenState.index.values()].find(n => n.id === 'pool').total")
    assert pool == 10000, "the pool has %s children" % pool
    t0 = time.monotonic()
    cdp.eval("document.querySelector('li.sup[data-id=\"pool\"] > .row .toggle').click()")
    cdp.wait("document.querySelectorAll('li.sup[data-id=\"pool\"] ul.page li.child').length === 50")
    figures["first_page_s"] = time.monotonic() - t0
    rows = cdp.eval("document.querySelectorAll('li').length")
    assert rows < 500, "%d list items: the 10,000 children must be paged" % rows
    assert "10000 children" in cdp.eval("document.querySelector('li.sup[data-id=\"pool\"] .paged').textContent")
    # Search one actor id; then next page.
    some = cdp.eval("document.querySelector('li.sup[data-id=\"pool\"] ul.page li.child').dataset.actor")
    cdp.eval("""(() => { const s = document.querySelector('li.sup[data-id="pool"] input[type=search]');
        s.value = '%s'; s.dispatchEvent(new Event('change')); })()""" % some)
    cdp.wait("[...document.querySelectorAll('li.sup[data-id=\"pool\"] ul.page li.child')].some(li => li.dataset.actor === '%s')"
             " && document.querySelectorAll('li.sup[data-id=\"pool\"] ul.page li.child').length < 50" % some)
    # Responsive: round trips to the page's JS while the stream runs.
    worst = 0.0
    for _ in range(20):
        t = time.monotonic()
        assert cdp.eval("1 + 1") == 2
        worst = max(worst, time.monotonic() - t)
    figures["eval_worst_s"] = worst
    assert cdp.eval("warrenState.connected"), "the stream is not live"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--case", choices=["restart", "big"], required=True)
    a = ap.parse_args()
    chromium = shutil.which("chromium")
    if not chromium:
        print("SKIP: chromium is not installed (scripts/setup installs it)")
        return 77
    os.makedirs(a.artifacts, exist_ok=True)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="warren-page-") as tmp:
        app, port = start_app(a.app, 10000 if a.case == "big" else 3, tmp)
        browser = None
        try:
            browser, url = start_chromium(chromium, tmp)
            cdp = Cdp(url)
            base = "http://127.0.0.1:%d" % port
            try:
                (case_restart if a.case == "restart" else case_big)(cdp, base, figures)
            finally:
                cdp.screenshot(os.path.join(a.artifacts, a.case + ".png"))
        finally:
            for p in (browser, app):
                if p and p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    with open(os.path.join(a.artifacts, a.case + ".json"), "w") as f:
        json.dump(figures, f)
    print(a.case + ":", ", ".join("%s %.3f" % kv for kv in sorted(figures.items())))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
