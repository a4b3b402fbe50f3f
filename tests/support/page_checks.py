"""What every page is checked for in the browser tests: no serious accessibility violation
(axe-core, bundled by axe-playwright-python, run in the page) and no English on a Chinese page.
One implementation for every browser test module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from axe_playwright_python.sync_playwright import Axe

# ASCII words a Chinese page may show: codes, units and names people use as they are.
ALLOWED_WORDS = {
    "PDF", "JPG", "JPEG", "PNG", "OFD", "ID", "QR", "CSV", "API", "URL", "EMS", "GB", "MB", "KB",
    "SFTP", "SOAP", "REST", "HTTP", "HTTPS", "TLS", "SM2", "SM3", "SHA", "RSA", "ECDSA", "UTC", "CST", "OK", "EN", "English",
    "lnrydz",  # the search box's example of pinyin initials (老年人优待证)
}  # fmt: skip
TOKEN = re.compile(r"[A-Za-z0-9]+")
WORD = re.compile(r"[A-Za-z]{3,}")
DIGEST = re.compile(r"[0-9a-f]{8,}")

# what people read: the page's own words, not data shown as data (codes, file names, digests,
# configured names — marked <code>, <kbd>, <samp> or translate="no", the HTML way to say "not words")
_READ = """() => {
  const data = 'code, kbd, samp, [translate=no], script, style';
  const out = [document.title];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (el && !el.closest(data) && el.checkVisibility()) out.push(n.textContent);
  }
  for (const el of document.querySelectorAll('[aria-label],[title],[alt],[placeholder]')) {
    if (el.closest('[translate=no]')) continue;
    for (const a of ['aria-label', 'title', 'alt', 'placeholder']) out.push(el.getAttribute(a) || '');
  }
  for (const t of document.querySelectorAll('svg title')) out.push(t.textContent);
  return out.join('\\n');
}"""


def english_words(text: str) -> set[str]:
    """Words of three or more Latin letters that are not a code or an allowed name: an English
    tail, a raw state or an untranslated label. 办件号 and hex digests never match."""
    return {
        w
        for token in TOKEN.findall(text)
        if not DIGEST.fullmatch(token)
        for w in WORD.findall(token)
        if w not in ALLOWED_WORDS and w.upper() not in ALLOWED_WORDS
    }


def english_on(page) -> list[str]:
    """The English words a Chinese page shows, each with a little of the text around it."""
    text = page.evaluate(_READ)
    return [
        text[max(0, text.find(w) - 20) : text.find(w) + len(w) + 10].replace("\n", " ")
        for w in sorted(english_words(text))
    ]


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    return [
        f"axe {v['id']} ({v['impact']}): {v['help']} at {[', '.join(n['target']) for n in v['nodes'][:3]]}"
        for v in Axe().run(page).response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def no_english(page) -> None:
    found = english_on(page)
    assert not found, f"English on a Chinese page: {found}"


def accessible(page) -> None:
    found = serious_violations(page)
    assert not found, found


LOOPBACK_ONLY = re.compile(r"^(?!https?://127\.0\.0\.1[:/]).*")


@contextmanager
def loopback_page(browser, timeout_ms: float, **context_options) -> Iterator[object]:
    """A page in a fresh context (zh-CN, Beijing time, `context_options` for the device): nothing
    but 127.0.0.1 is reachable, and a script error on the page fails the test when it ends."""
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **context_options)
    context.set_default_timeout(timeout_ms)
    context.route(LOOPBACK_ONLY, lambda route: route.abort())
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def no_sideways_scroll(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide on a {widths[1]} px screen"
