"""The chat widget in a real Chromium against a real service process: ask, cite, read, isolate."""

from __future__ import annotations

import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FloatRect,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from eval.service import free_port, running_service
from tests.conftest import ROOT, seed_questions

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt install chromium)"
    ),
]

WIDGET_JS = ROOT / "service" / "static" / "widget.js"
ANSWER_TIMEOUT_MS = 30_000
SIMPLIFIED_QUESTION = "质检总局局长是谁？"
TRADITIONAL_QUESTION = "王岐山在哪裡主持召開質量工作座談會？"
UNANSWERABLE_QUESTION = "火星上有多少只猫？"
ADMIN_KEY = "admin-key-never-in-a-page"
PUBLISHABLE_KEY = "pk-widget-test"
PHONE = ViewportSize(width=375, height=667)
HTML = "text/html; charset=utf-8"

# What a careless site stylesheet might do to an embedded widget.
HOSTILE_CSS = """
  html { font-size: 40px; }
  body { direction: rtl; }
  button, div, textarea, section, form, mark, p { all: unset; font-size: 40px; color: red; }
  rag-chat { display: none; position: absolute; transform: scale(0.2); font-size: 40px; }
"""


def host_page(widget_tags: str) -> str:
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><style>{HOSTILE_CSS}</style></head>
<body><p id="host-text">宿主页面</p><button id="host-button">宿主按钮</button>
{widget_tags}</body></html>"""


# Everything the widget could change about its host page: computed styles of the page's own
# elements, its style sheets and its global names.
HOST_STATE_JS = """() => {
  const styles = (element) => {
    const style = getComputedStyle(element);
    return Array.from(style, (name) => `${name}:${style.getPropertyValue(name)}`).join(";");
  };
  const elements = ["html", "body", "#host-text", "#host-button"];
  return {
    styles: elements.map((selector) => styles(document.querySelector(selector))),
    styleSheets: document.styleSheets.length,
    globals: Object.keys(window).sort(),
  };
}"""


# -- the service -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def keyed_service(demo_index: Path) -> Iterator[str]:
    """The service with an admin and a publishable key, on its own copy of the demo index."""
    index = demo_index.with_name("index-keyed")
    shutil.copytree(demo_index, index)
    keys = {"RAG_ADMIN_KEYS": ADMIN_KEY, "RAG_PUBLISHABLE_KEYS": PUBLISHABLE_KEY}
    with running_service(index, keys) as url:
        yield url


# -- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Opens pages in fresh contexts (options as for `Browser.new_context`); fails on JS errors."""
    contexts: list[BrowserContext] = []
    errors: list[Exception] = []

    def open_page(**options: Any) -> Page:
        context = browser.new_context(locale="zh-CN", **options)
        contexts.append(context)
        page = context.new_page()
        # A lambda: Playwright cannot wrap a builtin method such as `errors.append`.
        page.on("pageerror", lambda error: errors.append(error))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


def route_page(page: Page, url: str, html: str) -> None:
    """Serves `html` at `url` from the test, as if the site at that origin served it."""
    page.route(url, lambda route: route.fulfill(body=html, content_type=HTML))


def part(page: Page, name: str) -> Locator:
    """A widget element by its stable `part` hook (locators pierce the open shadow root)."""
    return page.locator(f"rag-chat [part={name}]")


def open_widget(page: Page) -> None:
    part(page, "launcher").click()
    expect(part(page, "panel")).to_be_visible()


def ask(page: Page, question: str) -> Locator:
    """Asks through the form and waits until the answer has finished streaming."""
    part(page, "input").fill(question)
    part(page, "send").click()
    return finished_answer(page)


def finished_answer(page: Page) -> Locator:
    answer = part(page, "answer").last
    expect(answer).not_to_have_attribute("data-state", "streaming", timeout=ANSWER_TIMEOUT_MS)
    return answer


def screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=path)
    print(f"screenshot: {path}")


def inside_viewport(box: FloatRect | None, viewport: ViewportSize) -> bool:
    assert box is not None, "element not rendered"
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"]
        and box["y"] + box["height"] <= viewport["height"]
    )


# -- the tests --------------------------------------------------------------------------------


def test_demo_page_answers_with_citations_and_opens_the_cited_paragraph(
    page: Page, live_service: str, tmp_path: Path
) -> None:
    seed = next((q for q in seed_questions() if q["answers"]), None)
    if seed is None:
        pytest.skip("../shared/qa/seeds-dev.jsonl not found")
    question, golds = str(seed["question"]), cast(list[str], seed["answers"])
    expected = httpx.post(f"{live_service}/v1/ask", json={"question": question}, timeout=30).json()
    assert expected["citations"], expected

    page.goto(live_service)
    open_widget(page)
    answer = ask(page, question)

    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator("[part=answer-text]")).to_have_text(expected["answer"])
    text = "".join((answer.locator("[part=answer-text]").text_content() or "").split())
    assert any(gold in text for gold in golds), text
    citations = answer.locator("[part=citation]")
    expect(citations).to_have_count(len(expected["citations"]))
    cited = expected["citations"][0]
    expect(citations.first).to_have_text(f"[{cited['n']}] {cited['file']} ¶{cited['paragraph']}")
    screenshot(page, tmp_path / "widget-answer.png")

    citations.first.click()
    reader = part(page, "reader")
    expect(reader).to_be_visible()
    path = f"/v1/documents/{urllib.parse.quote(cited['file'])}/paragraphs/{cited['paragraph']}"
    paragraph = httpx.get(f"{live_service}{path}").json()["paragraph"]
    expect(reader).to_contain_text(paragraph["text"])
    expect(reader.locator("mark")).to_have_text(cited["quote"])
    screenshot(page, tmp_path / "widget-citation.png")

    part(page, "back").click()
    expect(reader).to_be_hidden()
    expect(citations.first).to_be_focused()


def test_a_traditional_question_gets_a_cited_answer(page: Page, live_service: str) -> None:
    page.goto(live_service)
    open_widget(page)
    answer = ask(page, TRADITIONAL_QUESTION)

    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator("[part=answer-text]")).to_contain_text("北京")
    expect(answer.locator("[part=citation]")).not_to_have_count(0)


def test_an_unanswerable_question_is_shown_as_not_found_without_citations(
    page: Page, live_service: str
) -> None:
    page.goto(live_service)
    open_widget(page)
    answer = ask(page, UNANSWERABLE_QUESTION)

    expect(answer).to_have_attribute("data-state", "done")
    expect(answer).to_have_attribute("data-abstained", "")
    expect(answer.locator("[part=citation]")).to_have_count(0)


def test_the_widget_and_a_hostile_host_page_leave_each_other_alone(
    page: Page, live_service: str, tmp_path: Path
) -> None:
    # Both pages come from the service's own origin, as the demo page does.
    with_widget = host_page('<script src="/widget.js" defer></script>' * 2)
    route_page(page, f"{live_service}/with-widget.html", with_widget)
    route_page(page, f"{live_service}/without-widget.html", host_page(""))
    page.goto(f"{live_service}/without-widget.html")
    untouched = page.evaluate(HOST_STATE_JS)
    page.goto(f"{live_service}/with-widget.html")

    expect(page.locator("rag-chat")).to_have_count(1)  # the second copy of the script did nothing
    box, viewport = part(page, "launcher").bounding_box(), page.viewport_size
    assert box is not None and viewport is not None
    assert (box["width"], box["height"]) == (56, 56)
    assert box["x"] > viewport["width"] / 2  # bottom-right, whatever the page's direction
    open_widget(page)
    expect(part(page, "input")).to_have_css("font-size", "15px")
    expect(part(page, "panel")).to_have_css("direction", "ltr")
    answer = ask(page, SIMPLIFIED_QUESTION)
    expect(answer).to_have_attribute("data-state", "done")
    expect(answer.locator("[part=citation]")).not_to_have_count(0)
    screenshot(page, tmp_path / "widget-hostile-page.png")

    assert page.evaluate(HOST_STATE_JS) == untouched


def test_on_a_phone_the_panel_fits_the_screen(
    new_page: Callable[..., Page], live_service: str, tmp_path: Path
) -> None:
    page = new_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(live_service)
    open_widget(page)
    ask(page, TRADITIONAL_QUESTION)

    for name in ("panel", "answer", "input", "send", "close"):
        assert inside_viewport(part(page, name).bounding_box(), PHONE), name
    screenshot(page, tmp_path / "widget-phone.png")


def test_the_widget_works_from_the_keyboard(page: Page, live_service: str) -> None:
    page.goto(live_service)
    launcher, panel, field = part(page, "launcher"), part(page, "panel"), part(page, "input")
    for _ in range(10):  # past the demo page's links to the widget, which comes last
        page.keyboard.press("Tab")
        if launcher.evaluate("(e) => e.getRootNode().activeElement === e"):
            break
    expect(launcher).to_be_focused()

    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(launcher).to_have_attribute("aria-label", "关闭问答")
    expect(field).to_be_focused()

    page.keyboard.type("质检总局局长")
    page.keyboard.press("Shift+Enter")
    expect(field).to_have_value("质检总局局长\n")
    page.keyboard.press("Backspace")
    page.keyboard.type("是谁？")
    page.keyboard.press("Enter")
    expect(finished_answer(page)).to_have_attribute("data-state", "done")
    expect(field).to_have_value("")

    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_have_attribute("aria-label", "打开问答")


def test_an_unreachable_service_is_reported_in_the_chat(page: Page) -> None:
    # The page and the script come from an origin where nothing listens, so the widget's
    # own requests there cannot connect.
    origin = f"http://127.0.0.1:{free_port()}"
    route_page(page, f"{origin}/", host_page('<script src="/widget.js" defer></script>'))
    page.route(f"{origin}/widget.js", lambda route: route.fulfill(path=WIDGET_JS))
    page.goto(f"{origin}/")
    open_widget(page)
    answer = ask(page, SIMPLIFIED_QUESTION)

    expect(answer).to_have_attribute("data-state", "error")
    expect(answer).to_contain_text("无法连接到问答服务，请稍后再试。")
    expect(part(page, "send")).to_be_enabled()  # the visitor may try again


def test_the_served_page_and_script_hold_only_the_publishable_key(keyed_service: str) -> None:
    page_html = httpx.get(keyed_service).text
    script = httpx.get(f"{keyed_service}/widget.js").text

    assert ADMIN_KEY not in page_html
    assert ADMIN_KEY not in script
    assert f'data-key="{PUBLISHABLE_KEY}"' in page_html


def test_the_publishable_key_asks_and_reads_citations_on_the_demo_page(
    page: Page, keyed_service: str
) -> None:
    page.goto(keyed_service)
    open_widget(page)
    answer = ask(page, SIMPLIFIED_QUESTION)

    expect(answer).to_have_attribute("data-state", "done")
    answer.locator("[part=citation]").first.click()
    expect(part(page, "reader").locator("mark")).to_be_visible()


def test_a_refused_key_gets_a_friendly_message(page: Page, keyed_service: str) -> None:
    html = host_page('<script src="/widget.js" data-key="not-a-key" defer></script>')
    route_page(page, f"{keyed_service}/wrong-key.html", html)
    page.goto(f"{keyed_service}/wrong-key.html")
    open_widget(page)
    answer = ask(page, SIMPLIFIED_QUESTION)

    expect(answer).to_have_attribute("data-state", "error")
    expect(answer).to_contain_text("问答服务需要有效的访问密钥。")
