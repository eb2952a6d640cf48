#!/usr/bin/env python3
"""The web console in a real browser (headless Chromium through Selenium).

Run against a server that is already running with API-key authentication, e.g. from
`server/tests/e2e_console.rs`, or by hand (docs/UI.md, "The browser test"):

    python console_browser.py --http http://127.0.0.1:PORT --admin-key KEY \
        --reader-key KEY --photos DIR --screenshots OUTDIR

At 1280x800, as admin: signs in; creates a multimodal collection with the form; uploads
a folder of five photos, leaving the page after two files and finishing after picking the
folder again (finished files skipped), then an identical file (reported skipped); searches
by an uploaded photo and checks that the first card's thumbnail is that photo (file hash
and every decoded pixel); a text search with marked words and the explain lists; a
recording and a video (made with espeak-ng and ffmpeg when installed) whose players start
at the matched time; browses and filters the items; drops a collection through the
typed-name dialog (Escape, Tab trap); builds a workflow in the designer (steps added,
connected with the mouse, the keyboard and the "depends on" boxes, a step added in the
YAML, a client-side and a server-side validation error shown on their steps), saves it,
runs it and sees every step succeed; activates and suspends an agent and sees both
changes in the live event tail; sees searches on the operations charts. Every page then
loads without console errors (SEVERE entries) and with every control labelled, at
1280x800 and at 390x844 (no horizontal overflow). As reader: no create/drop/write
controls, and a forged create request from the page is refused with 403.

Exits 0 with a summary, 1 with the failed check's message (and failure.png), 2 when
Chromium cannot start. Saves a PNG of every page into --screenshots.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

PAGES = ["collections", "search", "ingest", "agents", "workflows", "operations"]
PHOTOS = ["chelsea.png", "coffee.png", "horse.png", "rocket.jpg", "astronaut.png"]
QUERY_PHOTO = "coffee.png"


class CheckFailed(Exception):
    pass


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Console:
    def __init__(self, args):
        self.args = args
        self.base = args.http.rstrip("/")
        self.checks = []
        self.shots = []
        self.loads = 0
        options = Options()
        options.binary_location = args.chromium
        for a in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--no-first-run",
            "--window-size=1280,800",
        ]:
            options.add_argument(a)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
        self.driver.set_window_size(1280, 800)
        self.driver.set_script_timeout(30)

    # -- plumbing -------------------------------------------------------------------------

    def ok(self, what):
        self.checks.append(what)
        print(f"  ok  {what}", flush=True)

    def wait(self, condition, what, timeout=20):
        try:
            # Lists re-render on refresh: an element found a moment ago may be replaced.
            return WebDriverWait(
                self.driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
            ).until(condition)
        except TimeoutException:
            raise CheckFailed(f"timed out after {timeout}s waiting for {what}") from None

    def css(self, selector, timeout=20, visible=True):
        cond = EC.visibility_of_element_located if visible else EC.presence_of_element_located
        return self.wait(cond((By.CSS_SELECTOR, selector)), selector, timeout)

    def click(self, selector, timeout=20):
        """Click the element, finding it again if a re-render replaced it."""

        def attempt(d):
            try:
                el = d.find_element(By.CSS_SELECTOR, selector)
                if not el.is_displayed() or not el.is_enabled():
                    return False
                el.click()
                return True
            except (StaleElementReferenceException, WebDriverException):
                return False

        self.wait(attempt, f"{selector} to click", timeout)

    def gone(self, selector):
        return not self.driver.find_elements(By.CSS_SELECTOR, selector)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def js_async(self, script, *args):
        return self.driver.execute_async_script(script, *args)

    def console_errors(self, allowed=()):
        """SEVERE browser log entries since the last call, minus the expected ones."""
        bad = []
        for entry in self.driver.get_log("browser"):
            if entry.get("level") != "SEVERE":
                continue
            message = entry.get("message", "")
            if any(re.search(p, message) for p in allowed):
                continue
            bad.append(message)
        return bad

    def assert_clean_console(self, where, allowed=()):
        bad = self.console_errors(allowed)
        if bad:
            raise CheckFailed(f"console errors on {where}:\n    " + "\n    ".join(bad))

    def screenshot(self, name, scroll_to=None):
        os.makedirs(self.args.screenshots, exist_ok=True)
        # Notifications of earlier steps would cover the page.
        self.js("document.getElementById('toasts')?.replaceChildren()")
        if scroll_to:
            self.js("document.querySelector(arguments[0])?.scrollIntoView({block: 'start'})", scroll_to)
        else:
            self.js("window.scrollTo(0, 0)")
        path = os.path.join(self.args.screenshots, f"{name}.png")
        self.driver.save_screenshot(path)
        self.shots.append(path)

    def goto(self, route):
        """A full page load (a new query string; a changed hash alone would not reload)."""
        self.loads += 1
        self.driver.get(f"{self.base}/ui/?load={self.loads}#/{route}")

    def route(self, route):
        """Navigate inside the page (no reload): keeps the session state."""
        self.js("location.hash = arguments[0]", f"#/{route}")

    def settle(self):
        """Wait until no 'Loading…' placeholder is left in the main area."""
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "main .loading"), "the page to finish loading")

    def no_horizontal_overflow(self, where):
        sw, iw = self.js("return [document.documentElement.scrollWidth, window.innerWidth]")
        if sw > iw:
            wide = self.js(
                """const out = [];
                for (const el of document.querySelectorAll('body *')) {
                  const r = el.getBoundingClientRect();
                  if (r.right > innerWidth + 1 && r.width > 0) out.push(el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className);
                  if (out.length > 5) break;
                }
                return out;"""
            )
            raise CheckFailed(f"{where}: horizontal overflow, scrollWidth {sw} > innerWidth {iw} ({wide})")

    def api(self, method, path, key, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, method=method, data=data)
        req.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    # -- sign-in ----------------------------------------------------------------------------

    def sign_in(self, key, who):
        self.goto("collections")
        field = self.css("#credential")
        # "Is authentication on?" is asked without a credential and answered 200: the
        # sign-in page logs nothing.
        self.assert_clean_console("the sign-in page")
        if self.js("return document.querySelector('#nav').hidden") is not True:
            raise CheckFailed("the navigation is shown before sign-in")
        field.send_keys(key)
        self.css("#signin-submit").click()
        self.css("#collections-table, main p.muted")
        principal = self.css("#whoami .principal").text
        if key in self.driver.current_url or key in self.driver.page_source:
            raise CheckFailed("the credential appears in the URL or the page")
        self.ok(f"signed in as {who} ({principal}); the credential is not in the URL or the page")
        return principal

    def sign_out(self):
        self.css("#whoami button").click()
        self.css("#credential")
        if self.js("return sessionStorage.getItem('agentdb.credential')"):
            raise CheckFailed("the credential is still in sessionStorage after signing out")

    # -- admin flows ----------------------------------------------------------------------------

    def create_collection(self, name):
        self.route("collections")
        self.css("#new-collection").click()
        self.css("#new-collection-name").send_keys(name)
        if not self.css("#kind-multimodal").is_selected():
            raise CheckFailed("multimodal is not the default kind of a new collection")
        self.css("#create-collection-submit").click()
        row = self.css(f'tr[data-collection="{name}"]')
        if "text" not in row.text:
            raise CheckFailed(f"the new collection's row does not show its spaces: {row.text!r}")
        status, body = self.api("GET", f"/v1/collections/{name}", self.args.admin_key)
        if status != 200:
            raise CheckFailed(f"the collection created in the UI is not on the server: {status} {body}")
        self.ok(f"created multimodal collection {name} from the form")

    def choose_files(self, selector, paths):
        self.driver.find_element(By.CSS_SELECTOR, selector).send_keys("\n".join(paths))

    def ingest(self, name):
        paths = [os.path.join(self.args.photos, p) for p in PHOTOS]
        for p in paths:
            if not os.path.isfile(p):
                raise CheckFailed(f"missing test photo {p}")
        # A folder of the five photos, picked with the folder picker.
        folder = os.path.join(tempfile.mkdtemp(prefix="console-ingest-"), "holiday")
        os.makedirs(folder)
        for p in paths:
            shutil.copy2(p, folder)
        self.route("ingest")
        Select(self.css("#ingest-collection")).select_by_value(name)
        self.choose_files("#ingest-folder", [folder])
        self.wait(lambda d: "5 to upload" in d.find_element(By.ID, "ingest-selection").text, "the selection summary")
        # A slow network (300 ms per request), so the batch is surely unfinished when the
        # page is left after two files, as a closed tab or a crash would leave it.
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 300, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        self.css("#ingest-start").click()
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#ingest-results li")) >= 2, "two uploaded files")
        self.driver.refresh()
        self.driver.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        notice = self.css("#ingest-resume .notice")
        done_before = int(re.search(r"(\d+) of 5 files", notice.text).group(1))
        if done_before < 2:
            raise CheckFailed(f"the resume notice says {done_before} files finished, expected at least 2")
        self.ok(f"after a reload mid-batch the page offers to resume ({done_before} of 5 finished)")
        Select(self.css("#ingest-collection")).select_by_value(name)
        self.choose_files("#ingest-folder", [folder])
        summary = self.wait(
            lambda d: re.search(r"(\d+) already uploaded", d.find_element(By.ID, "ingest-selection").text),
            "the skipped-files summary",
        )
        if int(summary.group(1)) != done_before:
            raise CheckFailed(f"{summary.group(1)} files skipped, expected {done_before}")
        self.css("#ingest-start").click()
        self.css('#ingest-progress-text[data-done="true"]', timeout=90)
        statuses = self.js(
            "return [...document.querySelectorAll('#ingest-results li')].map(li => [li.dataset.path, li.dataset.status])"
        )
        if len(statuses) != 5 - done_before:
            raise CheckFailed(f"the second pass uploaded {len(statuses)} files, expected {5 - done_before}: {statuses}")
        if not all(path.startswith("holiday/") for path, _ in statuses):
            raise CheckFailed(f"the files are not named by their place in the folder: {statuses}")
        failed = [s for s in statuses if s[1] not in ("ingested", "skipped")]
        if failed:
            raise CheckFailed(f"files failed to ingest: {failed}; {self.css('#ingest-failures').text}")
        value, maximum = self.js("const p = document.getElementById('ingest-progress'); return [p.value, p.max]")
        if value < maximum:
            raise CheckFailed(f"the progress bar ends at {value} of {maximum}")
        if self.js("return localStorage.getItem('agentdb.ingest.batch')") is not None:
            raise CheckFailed("the finished batch is still remembered in localStorage")
        status, body = self.api("POST", f"/v1/collections/{name}/count", self.args.admin_key, {})
        if body.get("count") != 5:
            raise CheckFailed(f"the collection holds {body.get('count')} items after the upload, expected 5")
        self.screenshot("ingest-done")
        self.ok(f"uploaded a folder of {len(PHOTOS)} photos, the rest of the batch after picking it again ({statuses})")
        shutil.rmtree(os.path.dirname(folder), ignore_errors=True)
        # Identical content again: the server answers "skipped".
        self.choose_files("#ingest-files", [os.path.join(self.args.photos, QUERY_PHOTO)])
        self.wait(lambda d: "1 to upload" in d.find_element(By.ID, "ingest-selection").text, "a one-file selection")
        self.css("#ingest-start").click()
        self.css('#ingest-results li[data-status="skipped"]', timeout=30)
        self.ok("re-uploading an identical file is reported as skipped")

    def search_by_photo(self, name):
        self.route(f"search/{name}")
        self.wait(lambda d: Select(d.find_element(By.ID, "search-collection")).first_selected_option.get_attribute("value") == name, "the collection picker")
        photo = os.path.join(self.args.photos, QUERY_PHOTO)
        self.choose_files("#search-file", [photo])
        self.css("#search-submit").click()
        img = self.css('.result-card[data-rank="1"] .media img.thumb', timeout=60)
        self.wait(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0 && arguments[0].src.startsWith('blob:')", img), "the first thumbnail to load")
        card = self.css('.result-card[data-rank="1"]')
        if os.path.basename(card.get_attribute("data-source")) != QUERY_PHOTO:
            raise CheckFailed(f"the first result is {card.get_attribute('data-source')!r}, expected {QUERY_PHOTO}")
        want = sha256_file(photo)
        if img.get_attribute("data-sha256") != want:
            raise CheckFailed(f"the first thumbnail is file {img.get_attribute('data-sha256')}, the query photo is {want}")
        # The bytes shown are the photo's: decode the query file (as a data: URL) and the
        # thumbnail (the blob the page fetched) and compare every pixel.
        with open(photo, "rb") as f:
            data_url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
        same = self.js_async(
            """const [img, dataUrl, done] = arguments;
            const pixels = (im) => {
              const c = document.createElement('canvas');
              c.width = im.naturalWidth; c.height = im.naturalHeight;
              const x = c.getContext('2d'); x.drawImage(im, 0, 0);
              return x.getImageData(0, 0, c.width, c.height).data;
            };
            const ref = new Image();
            ref.onload = () => {
              const a = pixels(img), b = pixels(ref);
              if (a.length !== b.length) return done(`sizes differ: ${img.naturalWidth}x${img.naturalHeight} vs ${ref.naturalWidth}x${ref.naturalHeight}`);
              for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return done(`pixel byte ${i} differs`);
              done('same');
            };
            ref.onerror = () => done('the query photo did not decode');
            ref.src = dataUrl;""",
            img,
            data_url,
        )
        if same != "same":
            raise CheckFailed(f"the first thumbnail is not the query photo: {same}")
        self.ok(f"search by {QUERY_PHOTO}: the first card's thumbnail is that photo (file sha256 {want[:12]}…, every pixel equal)")
        # A text query: matched words are marked, the explain panel lists the lists.
        self.css("#search-clear-file").click()
        text = self.css("#search-text")
        text.clear()
        text.send_keys("coffee cup")
        self.css("#search-submit").click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '.result-card[data-rank="1"] mark'), "a marked snippet")
        card = self.css('.result-card[data-rank="1"]')
        marks = [m.text.lower() for m in card.find_elements(By.CSS_SELECTOR, "mark")]
        if not any(w in " ".join(marks) for w in ("coffee", "cup")):
            raise CheckFailed(f"the snippet marks {marks}, not the query words")
        card.find_element(By.CSS_SELECTOR, "details.explain summary").click()
        rows = card.find_elements(By.CSS_SELECTOR, "details.explain tbody tr")
        lists = [r.find_element(By.CSS_SELECTOR, "td").text for r in rows]
        if "keyword" not in lists:
            raise CheckFailed(f"the explain panel lists {lists}, without the keyword list")
        self.ok(f"text search: matched words marked ({marks}), explain lists {lists}")
        self.screenshot("search")

    def search_media(self, name):
        """A recording and a video (made here with espeak-ng and ffmpeg, as e2e_video.rs
        does): the cards play the matched passage and show the keyframe."""
        if not (shutil.which("ffmpeg") and shutil.which("espeak-ng")):
            print("  --  skipped the audio/video cards: ffmpeg or espeak-ng is not installed", flush=True)
            return
        tmp = tempfile.mkdtemp(prefix="console-media-")
        raw = os.path.join(tmp, "raw.wav")
        speech = os.path.join(tmp, "forecast.wav")
        clip = os.path.join(tmp, "clip.webm")
        subprocess.run(["espeak-ng", "-w", raw, "The weather forecast says heavy rain along the coast tomorrow."], check=True)
        # Two seconds of silence first, so the passage (and the player) starts at about 2 s.
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", raw, "-af", "adelay=2000", speech], check=True)
        photos = [os.path.join(self.args.photos, p) for p in ("chelsea.png", "rocket.jpg")]
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-t", "3", "-i", photos[0], "-loop", "1", "-t", "3", "-i", photos[1],
             "-i", speech, "-filter_complex",
             "[0:v]scale=320:240,setsar=1[x];[1:v]scale=320:240,setsar=1[y];[x][y]concat=n=2:v=1:a=0,format=yuv420p[v]",
             "-map", "[v]", "-map", "2:a", "-r", "10", "-c:v", "libvpx-vp9", "-c:a", "libopus", clip],
            check=True,
        )
        self.route("ingest")
        Select(self.css("#ingest-collection")).select_by_value(name)
        self.choose_files("#ingest-files", [speech, clip])
        self.wait(lambda d: "2 to upload" in d.find_element(By.ID, "ingest-selection").text, "the media selection")
        self.css("#ingest-start").click()
        self.css('#ingest-progress-text[data-done="true"]', timeout=120)
        statuses = self.js("return [...document.querySelectorAll('#ingest-results li')].map(li => li.dataset.status)")
        if statuses != ["ingested", "ingested"]:
            raise CheckFailed(f"the recording and the video were not ingested: {statuses} {self.css('#ingest-failures').text}")
        shutil.rmtree(tmp, ignore_errors=True)
        self.route(f"search/{name}")
        self.wait(lambda d: Select(d.find_element(By.ID, "search-collection")).first_selected_option.get_attribute("value") == name, "the collection picker")
        text = self.css("#search-text")
        text.clear()
        text.send_keys("heavy rain on the coast")
        self.css("#search-submit").click()
        for source, tag in (("forecast.wav", "audio"), ("clip.webm", "video")):
            sel = f'.result-card[data-source="{source}"] .media {tag}'
            el = self.css(sel, timeout=30, visible=False)
            self.wait(lambda d: d.execute_script("return arguments[0].readyState >= 1 && arguments[0].src.startsWith('blob:')", el), f"the {tag} of {source} to load", timeout=30)
            start = float(el.get_attribute("data-start"))
            if tag == "audio" and not 1.5 < start < 2.5:
                raise CheckFailed(f"the recording's matched passage starts at {start} s, expected about 2 s")
            self.wait(lambda d: abs(d.execute_script("return arguments[0].currentTime", el) - start) < 0.1, f"the {tag} of {source} at {start:.2f} s")
            card = self.css(f'.result-card[data-source="{source}"]')
            if not card.find_elements(By.CSS_SELECTOR, "mark"):
                raise CheckFailed(f"the {source} card marks no matched words")
        self.ok("a recording and a video: the players start at the matched time (the passage at about 2 s) and the transcript's words are marked")
        self.screenshot("search-media", scroll_to="#search-summary")

    def drop_with_confirmation(self):
        name = f"console-drop-{secrets.token_hex(3)}"
        status, body = self.api("POST", "/v1/collections", self.args.admin_key, {"name": name, "spaces": [{"name": "v", "dim": 4}]})
        if status != 200:
            raise CheckFailed(f"could not create a collection to drop: {status} {body}")
        self.route("collections")
        self.click(f'button[data-drop="{name}"]')
        dialog = self.css("dialog[open]")
        confirm = dialog.find_element(By.CSS_SELECTOR, "button.danger")
        if confirm.is_enabled():
            raise CheckFailed("the drop button is enabled before the name is typed")
        self.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"), "Escape to close the dialog")
        if self.api("GET", f"/v1/collections/{name}", self.args.admin_key)[0] != 200:
            raise CheckFailed("Escape dropped the collection")
        self.click(f'button[data-drop="{name}"]')
        field = self.css("dialog[open] input.confirm-name")
        if self.driver.switch_to.active_element != field:
            raise CheckFailed("the confirmation dialog does not focus its name field")
        # Tab stays inside the dialog.
        for _ in range(4):
            self.driver.switch_to.active_element.send_keys(Keys.TAB)
            if not self.js("return document.querySelector('dialog[open]').contains(document.activeElement)"):
                raise CheckFailed("Tab left the open dialog")
        field.send_keys(name[:-1])
        if self.css("dialog[open] button.danger").is_enabled():
            raise CheckFailed("the drop button is enabled with a wrong name")
        field.send_keys(name[-1])
        self.click("dialog[open] button.danger")
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-collection="{name}"]'), "the dropped collection to leave the list")
        if self.api("GET", f"/v1/collections/{name}", self.args.admin_key)[0] != 404:
            raise CheckFailed("the collection is still on the server after the drop")
        self.ok("drop asks for the name (Escape cancels, Tab stays in the dialog) and drops")

    def unlabelled_controls(self):
        return self.js(
            """const out = [];
            for (const el of document.querySelectorAll('main input, main select, main textarea, main button, header button, nav a')) {
              if (el.type === 'hidden' || el.closest('[hidden]')) continue;
              const name = (el.getAttribute('aria-label') || '').trim()
                || (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)?.textContent.trim())
                || (el.closest('label')?.textContent.trim())
                || ((el.tagName === 'BUTTON' || el.tagName === 'A') && el.textContent.trim());
              if (!name) out.push(el.outerHTML.slice(0, 120));
            }
            return out;"""
        )

    def browse(self, name):
        total = self.api("POST", f"/v1/collections/{name}/count", self.args.admin_key, {})[1].get("count")
        self.route(f"collections/{name}")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#items-table tbody tr")) == total, f"{total} items")
        self.wait(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('#items-table img.thumb')].filter(i => i.complete && i.naturalWidth > 0).length"
            ) == 5,
            "five thumbnails",
        )
        self.screenshot("collection-items")
        f = self.css("#items-filter")
        f.send_keys('source = "holiday/horse.png"', Keys.ENTER)
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#items-table tbody tr")) == 1, "the filtered page")
        self.ok(f"browsed the items ({total}, the 5 photos with thumbnails) and filtered them to one")

    def workflow(self):
        name = f"console-flow-{secrets.token_hex(3)}"
        self.route("workflows/new")
        yaml_area = self.css("#workflow-yaml")
        self.css('#dag [data-step="report"]')
        yaml_area.clear()
        yaml_area.send_keys(f"name: {name}\ndescription: built in the browser test\nsteps: []\n")
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "#dag [data-step]"), "the emptied graph")
        for kind in ("sleep", "embed", "notify"):
            Select(self.css("#add-step-kind")).select_by_value(kind)
            self.css("#add-step").click()
        self.css('#dag [data-step="notify-3"]')
        # Parameters through the step editor (notify-3 is selected after adding it).
        msg = self.css("#param-message")
        msg.clear()
        msg.send_keys("embedded into {{ steps.embed-2.output.dim }} dimensions")
        # The template reads a step it does not depend on yet: flagged on that step.
        self.wait(lambda d: "invalid" in d.find_element(By.CSS_SELECTOR, '#dag [data-step="notify-3"]').get_attribute("class"), "notify-3 marked invalid")
        self.css(".step-errors li")
        self.ok("a template reading an unconnected step is flagged on that step")
        self.css('#dag [data-step="sleep-1"]').click()
        dur = self.css("#param-sleep")
        dur.clear()
        dur.send_keys("200ms")
        # Connect sleep-1 -> embed-2 in the graph: the output handle, then the target.
        self.css('#dag [data-handle="sleep-1"]', visible=False).click()
        self.css("#connect-hint")
        self.css('#dag [data-step="embed-2"]').click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#dag .edge-group[data-from="sleep-1"][data-to="embed-2"]'), "the sleep-1 → embed-2 arrow")
        # Connect embed-2 -> notify-3 with the keyboard: the handle, Enter, the target, Enter.
        handle = self.css('#dag [data-handle="embed-2"]', visible=False)
        self.js("arguments[0].focus()", handle)
        handle.send_keys(Keys.ENTER)
        target = self.css('#dag [data-step="notify-3"]')
        self.js("arguments[0].focus()", target)
        target.send_keys(Keys.ENTER)
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#dag .edge-group[data-from="embed-2"][data-to="notify-3"]'), "the embed-2 → notify-3 arrow")
        self.wait(lambda d: "invalid" not in d.find_element(By.CSS_SELECTOR, '#dag [data-step="notify-3"]').get_attribute("class"), "notify-3 valid")
        text = yaml_area.get_attribute("value")
        if "needs: [sleep-1]" not in text or "needs: [embed-2]" not in text:
            raise CheckFailed(f"the YAML does not follow the graph:\n{text}")
        self.ok("steps added and connected in the graph (mouse and keyboard); the YAML follows")
        # The other way round: a step added in the YAML appears in the graph, connected
        # through the "depends on" boxes.
        self.js(
            "const t = arguments[0]; t.value += '  - id: tail\\n    sleep: 10ms\\n'; t.dispatchEvent(new Event('input'));",
            yaml_area,
        )
        self.css('#dag [data-step="tail"]').click()
        self.css('#step-editor input[data-need="notify-3"]').click()
        self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, '#dag .edge-group[data-from="notify-3"][data-to="tail"]'), "the notify-3 → tail arrow")
        self.ok("a step typed into the YAML appears in the graph; 'depends on' connects it")
        # The server's own checks: an agent name only it rejects; its message lands on the step.
        self.js(
            "const t = arguments[0]; t.value += '  - id: bad-call\\n    call_agent: {agent: \"bad name!\", text: hi}\\n'; t.dispatchEvent(new Event('input'));",
            yaml_area,
        )
        self.css('#dag [data-step="bad-call"]')
        if "invalid" in self.css('#dag [data-step="bad-call"]').get_attribute("class"):
            raise CheckFailed("the client flagged bad-call; this check needs a problem only the server finds")
        self.css("#workflow-save").click()
        self.wait(lambda d: "invalid" in d.find_element(By.CSS_SELECTOR, '#dag [data-step="bad-call"]').get_attribute("class"), "the server's error on bad-call")
        self.css('#dag [data-step="bad-call"]').click()
        err = self.css(".step-errors li").text
        if "server:" not in err or "agent name" not in err:
            raise CheckFailed(f"the step shows {err!r}, not the server's message")
        # The refused apply is the one error the browser may log here.
        self.assert_clean_console("the designer", allowed=[r"/v1/workflows - .*status of 400"])
        self.ok(f"the server's validation error is shown on its step ({err[:60]}…)")
        self.css("#remove-step").click()
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, '#dag [data-step="bad-call"]'), "bad-call removed")
        self.css('#dag [data-step="notify-3"]').click()
        self.css("#param-message")
        self.screenshot("workflow-designer")
        self.css("#workflow-save").click()
        self.css("#save-status")
        status, body = self.api("GET", f"/v1/workflows/{name}", self.args.admin_key)
        if status != 200 or body["workflow"]["steps"] != ["sleep-1", "embed-2", "notify-3", "tail"]:
            raise CheckFailed(f"the saved workflow is not what the designer built: {status} {body}")
        self.ok(f"saved {name} (version {body['workflow']['version']})")
        self.css("#workflow-run").click()
        self.css('#run-panel[data-state="succeeded"]', timeout=90)
        states = self.js("return [...document.querySelectorAll('#dag [data-step]')].map(g => g.getAttribute('class'))")
        if not all("state-succeeded" in s for s in states):
            raise CheckFailed(f"not every step is shown succeeded: {states}")
        self.css('#runs-table tr[data-state="succeeded"]')
        self.ok("the run is watched live and every step is shown succeeded")
        self.screenshot("workflow-run", scroll_to="#dag")
        return name

    def agents(self):
        agent = f"console-agent-{secrets.token_hex(3)}"
        status, body = self.api("POST", "/v1/agents", self.args.admin_key, {"card": {"name": agent, "description": "registered by the browser test"}, "noMemory": True})
        if status != 200:
            raise CheckFailed(f"could not register a test agent: {status} {body}")
        status, body = self.api("POST", "/v1/queues", self.args.admin_key, {"name": f"console-q-{secrets.token_hex(3)}", "maxAttempts": 3})
        if status != 200:
            raise CheckFailed(f"could not create a test queue: {status} {body}")
        self.route("agents")
        self.css(f'tr[data-agent="{agent}"]')
        self.wait(lambda d: "live" in d.find_element(By.ID, "event-tail-state").text, "the live event tail")
        self.click(f'tr[data-agent="{agent}"] button[aria-label="Activate {agent}"]')
        self.click(f'tr[data-agent="{agent}"] button[aria-label="Suspend {agent}"]')
        self.wait(lambda d: "suspended" in d.find_element(By.CSS_SELECTOR, f'tr[data-agent="{agent}"]').text, "the agent suspended")
        self.wait(
            lambda d: sum(agent in li.text for li in d.find_elements(By.CSS_SELECTOR, '#event-tail li[data-kind="agent.state_changed"]')) >= 2,
            "the two state changes in the live tail",
        )
        self.css('#queues-table tr[data-queue^="console-q-"]')
        self.ok(f"agent {agent}: activated and suspended from the page; both changes arrived in the live tail")
        self.screenshot("agents-live-events", scroll_to="#event-tail-state")

    # -- reader -----------------------------------------------------------------------------------

    def reader_checks(self, collection, workflow):
        self.route("collections")
        self.css(f'tr[data-collection="{collection}"]')
        if not self.gone("#new-collection") or not self.gone("[data-drop]"):
            raise CheckFailed("the reader sees create or drop buttons")
        self.screenshot("reader-collections")
        self.route("agents")
        self.css("#agents-table")
        if not self.gone("#agents-table button"):
            raise CheckFailed("the reader sees agent actions")
        self.route("ingest")
        self.css("main .notice.not-permitted")
        self.route("workflows")
        self.css(f'tr[data-workflow="{workflow}"]')
        if not self.gone("#new-workflow") or not self.gone("#workflows-table button"):
            raise CheckFailed("the reader sees workflow create or delete controls")
        self.route(f"workflows/{workflow}")
        self.css('#dag [data-step="tail"]')
        if not (self.gone("#workflow-save") and self.gone("#workflow-run") and self.gone("#add-step") and self.gone("#dag .handle")):
            raise CheckFailed("the reader sees save, run or graph editing")
        if self.css("#workflow-yaml").get_attribute("readonly") is None:
            raise CheckFailed("the reader may edit the YAML")
        self.assert_clean_console("the reader's pages")
        status = self.js_async(
            """const done = arguments[0];
            fetch('/v1/collections', {method: 'POST',
              headers: {'Authorization': 'Bearer ' + sessionStorage.getItem('agentdb.credential'), 'Content-Type': 'application/json'},
              body: JSON.stringify({name: 'forged-by-reader', multimodal: true})})
              .then(r => done(r.status)).catch(e => done('error: ' + e));"""
        )
        if status != 403:
            raise CheckFailed(f"a forged create request from the reader got {status}, expected 403")
        self.console_errors()  # the refused request logs its 403
        self.ok("reader: no create/drop/write controls; a forged create request is refused with 403")

    # -- every page -------------------------------------------------------------------------------

    def visit_all(self, suffix, check_overflow):
        for page in PAGES:
            self.goto(page)  # a full page load each time
            self.css("main h1")
            self.settle()
            if page == "operations":
                first = self.wait(lambda d: d.find_element(By.ID, "ops-updated").text, "the first metrics scrape")
                if not suffix:
                    self.operations_follow_traffic(first)
            self.assert_clean_console(f"{page} ({suffix})")
            unlabelled = self.unlabelled_controls()
            if unlabelled:
                raise CheckFailed(f"{page}: controls without a label: {unlabelled}")
            if check_overflow:
                self.no_horizontal_overflow(f"{page} ({suffix})")
            self.screenshot(f"{page}{suffix}")
        self.ok(f"every page loads without console errors{' or horizontal overflow' if check_overflow else ''}, every control labelled ({suffix.strip('-') or '1280x800'})")

    def operations_follow_traffic(self, first_update):
        """Searches made between two scrapes show up as a search rate and latencies."""
        status, body = self.api("GET", "/v1/collections", self.args.admin_key)
        name = next(c["name"] for c in body["collections"] if c["name"].startswith("console-photos-"))
        for q in ("a cat", "a cup of coffee", "a rocket", "a horse", "an astronaut"):
            status, body = self.api("POST", f"/v1/collections/{name}/search", self.args.admin_key, {"text": q, "topK": 3})
            if status != 200:
                raise CheckFailed(f"search for the operations page failed: {status} {body}")
        self.wait(lambda d: d.find_element(By.ID, "ops-updated").text != first_update, "the next metrics scrape", timeout=15)
        rate = self.css("#chart-search-rate .legend strong").text
        p50 = self.css("#chart-latency .legend strong").text
        if not re.match(r"[0-9.]+/s", rate) or float(rate.split("/")[0]) <= 0:
            raise CheckFailed(f"the search-rate chart shows {rate!r} after five searches")
        if not p50.endswith("ms"):
            raise CheckFailed(f"the latency chart shows p50 {p50!r} after five searches")
        self.ok(f"operations charts follow the metrics: {rate} searches, p50 {p50}")

    def run(self):
        collection = f"console-photos-{secrets.token_hex(3)}"
        print(f"console test against {self.base} (collection {collection})", flush=True)
        self.driver.get(f"{self.base}/ui/")
        self.css("#credential")
        self.screenshot("signin")
        self.sign_in(self.args.admin_key, "admin")
        self.create_collection(collection)
        self.ingest(collection)
        self.search_by_photo(collection)
        self.search_media(collection)
        self.browse(collection)
        self.drop_with_confirmation()
        workflow = self.workflow()
        self.agents()
        self.visit_all("", check_overflow=True)
        self.driver.set_window_size(390, 844)
        self.visit_all("-phone", check_overflow=True)
        self.route(f"workflows/{workflow}")
        self.css('#dag [data-step="tail"]')
        self.no_horizontal_overflow("the workflow designer (phone)")
        self.screenshot("workflow-designer-phone")
        self.driver.set_window_size(1280, 800)
        self.sign_out()
        self.sign_in(self.args.reader_key, "reader")
        self.reader_checks(collection, workflow)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", required=True, help="the server's HTTP address, e.g. http://127.0.0.1:7721")
    parser.add_argument("--admin-key", required=True)
    parser.add_argument("--reader-key", required=True)
    parser.add_argument("--photos", required=True, help=f"a folder with {', '.join(PHOTOS)}")
    parser.add_argument("--screenshots", required=True, help="where to save a PNG of every page")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    args = parser.parse_args()
    started = time.monotonic()
    try:
        console = Console(args)
    except WebDriverException as e:
        print(f"FAIL: could not start Chromium ({args.chromium}, {args.chromedriver}): {e.msg}", file=sys.stderr)
        return 2
    try:
        console.run()
    except CheckFailed as e:
        path = os.path.join(args.screenshots, "failure.png")
        try:
            os.makedirs(args.screenshots, exist_ok=True)
            console.driver.save_screenshot(path)
        except WebDriverException:
            path = "(no screenshot)"
        print(f"FAIL: {e}\n  after {len(console.checks)} passed checks; screenshot {path}", file=sys.stderr)
        return 1
    except WebDriverException as e:
        print(f"FAIL: browser error: {e.msg}\n  after {len(console.checks)} passed checks", file=sys.stderr)
        return 1
    finally:
        try:
            console.driver.quit()
        except WebDriverException:
            pass
    print(
        f"PASS: {len(console.checks)} checks in {time.monotonic() - started:.1f}s; "
        f"{len(console.shots)} screenshots in {args.screenshots}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
