#!/usr/bin/env python3
"""The web console in a real browser (Debian's chromium, headless, driven by Playwright).

Usage: console_test.py URL ADMIN_KEY CA_FILE OUT_DIR

The coordinator at URL is fresh (the Rust test `coordinator/tests/console.rs` starts it).
This script fills it through the REST API (segments, a policy, two enrolled nodes, members,
flow records, a viewer key), then checks the console as an admin and as a viewer, records
every request the browser makes, and saves a screenshot of each page in OUT_DIR.
Playwright never downloads a browser here: it launches /usr/bin/chromium.
"""

import base64
import json
import os
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from playwright.sync_api import expect, sync_playwright

URL, ADMIN, CA, OUT = sys.argv[1:5]
TLS = ssl.create_default_context(cafile=CA)
CHROMIUM = os.environ.get("SEGWIRE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-default-apps", "--disable-extensions"]
SEG = "shop"
NODES = {}  # node name -> node credential, filled by setup()


def call(method, path, key, body=None):
    """One API request; returns (status, parsed JSON or text)."""
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=TLS, timeout=10) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def ok(method, path, key, body=None, want=(200, 201, 204)):
    status, out = call(method, path, key, body)
    assert status in want, f"{method} {path}: {status} {out}"
    return out


def wg_key():
    return base64.b64encode(secrets.token_bytes(32)).decode()


def setup():
    """A segment with a policy, three nodes (one online), three members, flows, a viewer key."""
    ok("POST", "/v1/segments", ADMIN, {"name": SEG, "cidr": "100.64.20.0/24", "default": "deny"})
    ok("POST", "/v1/segments", ADMIN, {"name": "lab", "cidr": "100.64.21.0/24"})
    ok("PUT", f"/v1/segments/{SEG}/policy", ADMIN, {"default": "deny", "rules": [
        {"name": "web-to-db", "from": {"labels": {"app": "web"}}, "to": {"labels": {"app": "db"}},
         "ports": ["tcp/5432"]},
        {"name": "ping", "from": "*", "to": "*", "ports": ["icmp"]}]})
    token = ok("POST", "/v1/tokens", ADMIN, {"segments": [SEG], "uses": 3})["token"]
    tok = json.loads(base64.urlsafe_b64decode(token[5:] + "=" * (-len(token[5:]) % 4)))
    creds = {}
    for i, host in enumerate(["host-a", "host-b", "spare"]):
        r = ok("POST", "/v1/enroll", "", {"token_id": tok["i"], "token_secret": tok["s"], "name": host,
                                          "public_key": wg_key(), "endpoints": [f"198.18.0.{i + 2}"]})
        creds[host] = r["credential"]
    for host, name, app in [("host-a", "web-1", "web"), ("host-b", "db-1", "db"), ("host-b", "cache-1", "cache")]:
        ok("POST", "/v1/node/members", creds[host], {
            "segment": SEG, "workload": f"netns:{name}", "public_key": wg_key(), "listen_port": 51820 + len(name),
            "name": name, "labels": {"app": app}})
    ok("GET", "/v1/node/netmap?wait=0", creds["host-a"])  # host-a counts as online
    now = int(time.time())
    flow = {"segment": SEG, "direction": "ingress", "protocol": "tcp", "count": 3,
            "first_seen": now - 30, "last_seen": now - 5}
    ok("POST", "/v1/node/flows", creds["host-b"], {"flows": [
        dict(flow, member="db-1", verdict="allowed", src="100.64.20.1", dst="100.64.20.2", dst_port=5432,
             peer="web-1", rule="web-to-db"),
        dict(flow, member="cache-1", verdict="denied", src="100.64.20.1", dst="100.64.20.3", dst_port=6379,
             peer="web-1")]})
    viewer = ok("POST", "/v1/apikeys", ADMIN, {"role": "viewer", "description": "console test viewer"})["key"]
    NODES.update(creds)
    return viewer


def cell(page, scope, frm, to):
    return page.locator(f"#{scope} td[data-from='{frm}'][data-to='{to}']")


def shot(page, name, full_page=True):
    page.screenshot(path=os.path.join(OUT, f"{name}.png"), full_page=full_page)


def sign_in(page, key):
    page.goto(URL + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def sign_in_by_keyboard(page, key):
    """The key field has focus on load; Enter submits; Tab reaches the segment link."""
    page.goto(URL + "/")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name=SEG)).to_be_visible()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == SEG:
            break
    else:
        raise AssertionError("Tab never reached the segment link")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Segment {SEG}")).to_be_visible()
    page.get_by_role("link", name="Overview").first.click()


def admin_session(browser):
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: d.accept())

    # A wrong key gets a sentence, not a blank page.
    page.goto(URL + "/")
    fcp = page.evaluate("""() => new Promise((done) => new PerformanceObserver((l) => {
        const e = l.getEntries().find((x) => x.name === 'first-contentful-paint');
        if (e) done(e.startTime); }).observe({type: 'paint', buffered: true}))""")
    print(f"first contentful paint of the sign-in page: {fcp:.0f} ms")
    # The target is 1 s on loopback (measured and printed above); the check leaves room
    # for a loaded CI machine so that it fails only when the page is really slow.
    assert fcp < 3000, fcp
    shot(page, "signin")
    page.get_by_label("API key").fill("swk_nosuchkey.notasecret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("did not accept this API key")
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("API keys start with swk_")
    shot(page, "signin-wrong-key")

    started = time.monotonic()
    sign_in(page, ADMIN)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator(".stat.ok .num")).to_have_text("1")  # host-a online
    expect(page.get_by_role("link", name=SEG)).to_be_visible()
    expect(page.get_by_role("cell", name="host-b", exact=True)).to_be_visible()
    print(f"sign-in to overview: {time.monotonic() - started:.2f} s")
    assert page.evaluate("sessionStorage.getItem('segwire.apikey')") == ADMIN
    assert page.context.cookies() == [], "the console sets no cookies"
    shot(page, "overview")

    # Segment page: members, rules, the matrix; rows reach columns.
    page.get_by_role("link", name=SEG).click()
    expect(page.get_by_role("heading", name=f"Segment {SEG}")).to_be_visible()
    for m in ["web-1", "db-1", "cache-1"]:
        expect(page.locator("section", has=page.get_by_role("heading", name="Members")).get_by_text(m, exact=True)).to_be_visible()
    assert "web-to-db" in page.get_by_label("Policy (JSON)").input_value()
    expect(cell(page, "matrix-live", "web-1", "db-1")).to_have_text("tcp/5432, icmp")
    expect(cell(page, "matrix-live", "db-1", "web-1")).to_have_text("icmp")
    expect(cell(page, "matrix-live", "web-1", "cache-1")).to_have_text("icmp")
    expect(page.locator("svg.topo path.edge")).to_have_count(3)

    # The check box asks the policy check API.
    box = page.get_by_role("form", name="Check a connection")
    box.get_by_label("From").select_option("web-1")
    box.get_by_label("To").select_option("cache-1")
    box.get_by_label("Port").fill("tcp/6379")
    box.get_by_role("button", name="Check").click()
    expect(box.locator(".verdict")).to_contain_text("Denied")
    shot(page, "segment")

    # Editor: a bad draft shows the API's message inline; a good one previews, then saves.
    editor = page.get_by_label("Policy (JSON)")
    editor.fill('{"default":"deny","rules":[{"name":"x","from":"*","to":"*","ports":["tcp/99999"]}]}')
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#policy-msg [role=alert]")).to_contain_text("tcp/99999")
    draft = {"default": "deny", "rules": [
        {"name": "web-to-db", "from": {"labels": {"app": "web"}}, "to": {"labels": {"app": "db"}}, "ports": ["tcp/5432"]},
        {"name": "web-to-cache", "from": {"labels": {"app": "web"}}, "to": {"labels": {"app": "cache"}}, "ports": ["tcp/6379"]}]}
    editor.fill(json.dumps(draft, indent=2))
    page.get_by_role("button", name="Preview").click()
    expect(cell(page, "matrix-preview", "web-1", "cache-1")).to_have_text("tcp/6379")
    expect(cell(page, "matrix-live", "web-1", "cache-1")).to_have_text("icmp")  # not saved yet
    shot(page, "policy-preview")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_text("Saved: policy version 2 is in force.")).to_be_visible()
    expect(cell(page, "matrix-live", "web-1", "cache-1")).to_have_text("tcp/6379")
    expect(cell(page, "matrix-live", "db-1", "web-1")).to_have_text("\u2014")
    verdict = ok("POST", f"/v1/segments/{SEG}/policy/check", ADMIN, {"from": "web-1", "to": "cache-1", "port": "tcp/6379"})
    assert verdict["allowed"] and verdict["rule"] == "web-to-cache", verdict
    verdict = ok("POST", f"/v1/segments/{SEG}/policy/check", ADMIN, {"from": "db-1", "to": "web-1", "port": "icmp"})
    assert not verdict["allowed"], verdict

    # A join token, shown once with a copy button.
    page.get_by_role("button", name="Create join token").click()
    dlg = page.get_by_role("dialog")
    dlg.get_by_label("Labels for its members").fill("app=web")
    dlg.get_by_role("button", name="Create token").click()
    token = dlg.get_by_label("Join token").input_value()
    assert token.startswith("swt1_"), token
    expect(dlg.get_by_role("button", name="Copy")).to_be_visible()
    shot(page, "join-token", full_page=False)
    page.keyboard.press("Escape")

    # A stock WireGuard peer: key pair made in the browser, config downloaded.
    page.get_by_role("button", name="Add WireGuard peer").click()
    dlg = page.get_by_role("dialog")
    dlg.get_by_label("Name").fill("laptop")
    dlg.get_by_label("Labels").fill("app=web")
    dlg.get_by_role("button", name="Add peer").click()
    link = dlg.get_by_role("link", name="Download laptop.conf")
    with page.expect_download() as dl:
        link.click()
    conf = open(dl.value.path()).read()
    assert "[Interface]" in conf and "PrivateKey = " in conf and "<your private key>" not in conf, conf
    assert conf.count("[Peer]") == 2, conf  # web label: reaches db-1 and cache-1
    shot(page, "wireguard-peer", full_page=False)
    page.keyboard.press("Escape")
    expect(page.locator("section", has=page.get_by_role("heading", name="Members")).get_by_text("laptop", exact=True)).to_be_visible()

    page.get_by_role("button", name="Rotate key").click()
    expect(page.get_by_text("Key rotated: preshared key v2 is in force.")).to_be_visible()

    # Flows, denied first; filters.
    page.get_by_role("link", name="Flows").first.click()
    expect(page.get_by_role("heading", name="Flows")).to_be_visible()
    rows = page.locator("section table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("denied")
    page.get_by_label("Member").fill("db-1")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("allowed")
    page.get_by_label("Member").fill("")
    page.get_by_label("Segment").select_option(SEG)
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    # Live: a record an agent ships now appears without a reload, denied ones first.
    now = int(time.time())
    ok("POST", "/v1/node/flows", NODES["host-b"], {"flows": [{
        "segment": SEG, "member": "db-1", "direction": "ingress", "verdict": "denied", "protocol": "udp",
        "src": "100.64.20.3", "dst": "100.64.20.2", "dst_port": 53, "peer": "cache-1", "count": 1,
        "first_seen": now, "last_seen": now}]})
    expect(rows).to_have_count(3, timeout=10_000)
    expect(rows.nth(0)).to_contain_text("100.64.20.2:53")
    expect(rows.nth(2)).to_contain_text("allowed")
    shot(page, "flows")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.get_by_role("cell", name="policy.set").first).to_be_visible()
    expect(page.get_by_role("cell", name="segment.rotate_key").or_(page.get_by_role("cell", name="segment.rotate-key")).first).to_be_visible()
    shot(page, "audit")

    # Create and delete a segment; revoke a node.
    page.get_by_role("link", name="Overview").click()
    form = page.get_by_role("form", name="Create a segment")
    form.get_by_label("Name").fill("scratch")
    form.get_by_label("Network").fill("100.64.30.0/24")
    form.get_by_role("button", name="Create segment").click()
    expect(page.get_by_role("link", name="scratch")).to_be_visible()
    page.get_by_role("link", name="scratch").click()
    page.get_by_role("button", name="Delete segment").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("link", name="scratch")).to_have_count(0)
    nodes = page.get_by_role("region", name="Nodes")
    nodes.get_by_role("row", name="spare").get_by_role("button", name="Revoke").click()
    expect(nodes.get_by_role("cell", name="spare", exact=True)).to_have_count(0)
    expect(nodes.get_by_role("cell", name="host-a", exact=True)).to_have_count(1)

    # Phone width: the overview still works.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    shot(page, "overview-phone")
    ctx.close()
    return requests


def viewer_session(browser, viewer):
    ctx = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    page = ctx.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    sign_in_by_keyboard(page, viewer)
    expect(page.get_by_text("viewer", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=SEG)).to_be_visible()
    assert page.get_by_role("form", name="Create a segment").count() == 0
    assert page.get_by_role("button", name="Revoke").count() == 0
    page.get_by_role("link", name=SEG).click()
    expect(cell(page, "matrix-live", "web-1", "cache-1")).to_have_text("tcp/6379")
    expect(page.get_by_label("Policy in force")).to_contain_text("web-to-cache")
    for name in ["Create join token", "Add WireGuard peer", "Rotate key", "Delete segment", "Save policy"]:
        assert page.get_by_role("button", name=name).count() == 0, f"viewer sees {name}"
    assert page.locator("textarea").count() == 0
    # The check box is a read; viewers may use it.
    box = page.get_by_role("form", name="Check a connection")
    box.get_by_label("To").select_option("cache-1")
    box.get_by_label("Port").fill("tcp/6379")
    box.get_by_role("button", name="Check").click()
    expect(box.locator(".verdict")).to_contain_text("Allowed")
    shot(page, "segment-viewer")
    # Trying anyway, from the page with the viewer's key: the API refuses.
    status = page.evaluate("""async () => {
        const r = await fetch('/v1/segments/shop/policy', {method: 'PUT',
            headers: {Authorization: 'Bearer ' + sessionStorage.getItem('segwire.apikey')},
            body: '{"default":"allow","rules":[]}'});
        return r.status; }""")
    assert status == 403, status
    status = page.evaluate("""async () => (await fetch('/v1/segments/shop/rotate-key', {method: 'POST',
            headers: {Authorization: 'Bearer ' + sessionStorage.getItem('segwire.apikey')}})).status""")
    assert status == 403, status
    assert ok("GET", f"/v1/segments/{SEG}", ADMIN)["psk_version"] == 2
    ctx.close()
    return requests


def main():
    os.makedirs(OUT, exist_ok=True)
    viewer = setup()
    # launch() gives the browser a fresh temporary --user-data-dir of its own and removes it.
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            requests = admin_session(browser) + viewer_session(browser, viewer)
        finally:
            browser.close()
    origin = urlsplit(URL)
    off = [u for u in requests if not u.startswith(("blob:", "data:")) and
           (urlsplit(u).scheme, urlsplit(u).netloc) != (origin.scheme, origin.netloc)]
    assert not off, f"requests off the coordinator's origin: {off}"
    assert not any(ADMIN in u or viewer in u for u in requests), "an API key went into a URL"
    print(f"console browser tests passed: {len(requests)} requests, all to {URL}; screenshots in {OUT}")


if __name__ == "__main__":
    main()
