"""Open web pages in headless Chromium as a person would see them (no Playwright: Debian's
``chromium`` binary alone). A page is served over HTTP from its folder and loaded in an iframe of
a small same-origin check page, which waits for it, runs an optional script in it (to click), and
writes into its own DOM whether every image decoded; Chromium prints that DOM (``--dump-dom``) and
logs the page's console messages to stderr (``--enable-logging``). The server records every
request that failed (a missing stylesheet, script or figure)."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--hide-scrollbars"]
CHECK_PAGE = "__browser_check.html"
# console messages of third-party code that are not errors: Snakemake's report embeds Tailwind's
# in-browser build, which warns that it is not meant for production
KNOWN_CONSOLE = ("cdn.tailwindcss.com should not be used in production",)

CHECK_HTML = """<!doctype html><html><body style="margin:0"><pre id="out" style="display:none">pending</pre>
<iframe id="f" src="%(path)s" width="1280" height="1000"></iframe>
<script>
const f = document.getElementById('f');
f.addEventListener('load', () => {
  const doc = f.contentDocument, win = f.contentWindow;
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const byText = (text) => [...doc.querySelectorAll('a,button,li,span,div,td')]
      .filter(e => e.children.length <= 2 && e.textContent.trim() === text);
  const waitFor = async (find, ms = 8000) => {
    for (let t = 0; t < ms; t += 100) { const r = find(); if (r && (r.length === undefined || r.length)) return r; await sleep(100); }
    return null;
  };
  let run;
  try { run = Promise.resolve((async function (document, window) { %(script)s })(doc, win)); }
  catch (e) { run = Promise.resolve('ERROR ' + e); }
  run.catch(e => 'ERROR ' + e).then(clicked => setTimeout(() => {
    const imgs = [...f.contentDocument.images];
    const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 120));
    const text = f.contentDocument.body ? f.contentDocument.body.innerText.slice(0, 4000) : '';
    document.getElementById('out').textContent = 'RESULT ' + JSON.stringify({images: imgs.length, bad: bad, clicked: clicked, text: text});
  }, %(wait_ms)d));
});
</script></body></html>"""


@dataclass
class PageCheck:
    images: int
    broken_images: list[str]
    console: list[str]
    failed_requests: list[str]
    clicked: object = None
    text: str = ""
    screenshot: Path | None = None
    log: str = field(default="", repr=False)


class _Handler(http.server.SimpleHTTPRequestHandler):
    failed: list[str]

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def send_error(self, code, message=None, explain=None):
        if not self.path.startswith("/favicon.ico"):
            self.failed.append(f"{code} {self.path}")
        super().send_error(code, message, explain)


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=timeout)


def check_page(root: Path, path: str, *, script: str = "return null;", wait_ms: int = 1500,
               screenshot: Path | None = None, timeout: float = 120) -> PageCheck:
    """Serve ``root`` and open ``path`` (e.g. ``/results/``) in headless Chromium. ``script`` is
    the body of an async function of ``document`` and ``window`` (the page's), run once the page
    has loaded, with ``sleep(ms)``, ``byText(text)`` (elements showing exactly that text) and
    ``waitFor(find, ms)`` (polls ``find()`` until it returns something non-empty, else null) at hand; what it returns comes back as ``clicked``."""
    assert CHROMIUM, "chromium is not installed"
    (root / CHECK_PAGE).write_text(CHECK_HTML % {"path": path, "script": script, "wait_ms": wait_ms})
    failed: list[str] = []
    handler = type("Handler", (_Handler,), {"failed": failed})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        proc = _chromium(["--enable-logging=stderr", "--v=0", f"--virtual-time-budget={wait_ms + 8000}",
                          "--dump-dom", f"{base}/{CHECK_PAGE}"], timeout)
        if screenshot is not None:  # the check page: the page as the script left it
            _chromium([f"--screenshot={screenshot}", "--window-size=1300,1040",
                       f"--virtual-time-budget={wait_ms + 8000}", f"{base}/{CHECK_PAGE}"], timeout)
    finally:
        server.shutdown()
        (root / CHECK_PAGE).unlink()
    found = re.search(r"RESULT (\{.*\})</pre>", proc.stdout, re.S)
    assert found, f"the check page did not finish:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    import html

    result = json.loads(html.unescape(found.group(1)))
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line
               and not any(known in line for known in KNOWN_CONSOLE)]
    return PageCheck(images=result["images"], broken_images=result["bad"], console=console,
                     failed_requests=failed, clicked=result["clicked"], text=result["text"],
                     screenshot=screenshot if screenshot is not None and screenshot.exists() else None,
                     log=proc.stderr)
