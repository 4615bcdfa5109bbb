"""Every page fits a phone and a laptop screen: nothing is wider than the viewport."""

import pytest
from django.urls import get_resolver
from playwright.sync_api import Error as BrowserError

from tests.browser import log_in
from tests.opsconsole.test_access import PUBLIC, SESSION_ONLY, walk

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}

# Pages an operator opens from the nav, without parameters in the URL.
PAGES = sorted(
    "/" + route
    for name, route, _ in walk(get_resolver().url_patterns)
    if "<" not in route and name not in PUBLIC | SESSION_ONLY and not route.endswith(".csv")
)

# Elements wider than the viewport; a scrolling box (a card) may hold wider content.
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) continue;
    let inScroller = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden'].includes(style.overflowX)
          && p.getBoundingClientRect().right <= width + 1) { inScroller = true; break; }
    }
    if (!inScroller) wide.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
  }
  return {page: document.documentElement.scrollWidth, viewport: width, wide: wide.slice(0, 5)};
}"""


def overflowing_pages(page) -> dict[str, dict]:
    found = {}
    for path in PAGES:
        try:
            response = page.goto(path)
        except BrowserError:  # POST-only endpoints answer GET with an empty 405
            continue
        if response is None or response.status != 200:
            continue
        if page.locator("header.topbar").count() == 0:
            continue  # an htmx partial's URL, not a page an operator opens
        page.wait_for_load_state("networkidle")
        layout = page.evaluate(OVERFLOWING)
        if layout["page"] > layout["viewport"] or layout["wide"]:
            found[path] = layout
    return found


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP], ids=["phone", "laptop"])
def test_no_page_is_wider_than_the_screen(page, make_user, viewport):
    admin = make_user("admin", username=f"layout-{viewport['width']}")
    page.set_viewport_size(viewport)
    log_in(page, admin.username, "pw-for-tests-1")
    page.wait_for_selector("h1")

    assert len(PAGES) > 15
    assert overflowing_pages(page) == {}
