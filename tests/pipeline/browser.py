"""The report page in a real browser: headless Chromium (Debian's `chromium` package) loads it from disk.

`render` copies the page with a script added that, once the page has loaded, writes into the DOM
every section id and, per image, whether the browser decoded it (``naturalWidth``); Chromium's
``--dump-dom`` prints that DOM, and ``--screenshot`` draws the page as a PNG.
"""

import html
import json
import os
import re
import shutil
import subprocess
from typing import Optional

# The flags these machines need (no sandbox as root, no GPU, nothing fetched in the background).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
_PROBE = """<script>
window.addEventListener("load", function () {
  var out = {sections: Array.from(document.querySelectorAll("section")).map(function (s) { return s.id; }),
             images: Array.from(document.images).map(function (i) {
               return {section: i.closest("section") ? i.closest("section").id : null, width: i.naturalWidth,
                       height: i.naturalHeight, complete: i.complete}; })};
  var pre = document.createElement("pre");
  pre.id = "render-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> Optional[str]:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(report_path: str, work_dir: str, width: int = 1280, height: int = 4000, timeout: int = 120) -> dict:
    """{"sections": [...], "images": [{section, width, height, complete}], "screenshot": PNG path} of the
    page as Chromium rendered it."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH: install it (Debian: apt-get install -y chromium)")
    with open(report_path) as f:
        page = f.read()
    if "</body>" not in page:
        raise ValueError(f"{report_path} has no </body>: not the report page")
    probed = os.path.join(work_dir, "probed.html")
    with open(probed, "w") as f:
        f.write(page.replace("</body>", _PROBE + "</body>", 1))
    common = [browser, *FLAGS, f"--user-data-dir={os.path.join(work_dir, 'profile')}", "--virtual-time-budget=10000"]
    dom = subprocess.run(common + ["--dump-dom", "file://" + probed], capture_output=True, text=True, timeout=timeout)
    found = re.search(r'<pre id="render-probe">(.*?)</pre>', dom.stdout, re.S)
    if dom.returncode or not found:
        raise RuntimeError(f"chromium --dump-dom exited {dom.returncode} without the probe's output; stderr:\n"
                           f"{dom.stderr[-2000:]}")
    result = json.loads(html.unescape(found.group(1)))
    screenshot = os.path.join(work_dir, "report.png")
    shot = subprocess.run(common + [f"--screenshot={screenshot}", f"--window-size={width},{height}",
                                    "file://" + os.path.abspath(report_path)],
                          capture_output=True, text=True, timeout=timeout)
    if shot.returncode or not os.path.exists(screenshot):
        raise RuntimeError(f"chromium --screenshot exited {shot.returncode}; stderr:\n{shot.stderr[-2000:]}")
    return {**result, "screenshot": screenshot}
