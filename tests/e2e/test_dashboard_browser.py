"""The dashboard in a real browser: headless Chromium (Debian's, through its chromedriver) opens the URL
`txpipe dashboard` prints (with its token) over a real local deployment, picks five states by the picker,
the map and the keyboard, and checks every figure shown against `txpipe report --json`; without the
token's cookie it shows the page that says where the URL is. A screenshot is kept in $TXPIPE_ARTIFACTS
(default .artifacts/ in the checkout)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from benchmarks.dashboard import headless_chromium
from tests.support.dashboard import Dashboard, dashboard_home
from tests.support.local_cli import Cli

ARTIFACTS = Path(os.environ.get("TXPIPE_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts"))


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with dashboard_home(tmp_path_factory) as cli:
        yield cli


@pytest.fixture(scope="module")
def browser(dashboard: Dashboard) -> Iterator[webdriver.Chrome]:
    """A browser that opened the printed URL once, as the operator does: it holds the dashboard's cookie."""
    chrome = headless_chromium()
    chrome.get(dashboard.url)
    yield chrome
    chrome.quit()


def wait_ready(browser: webdriver.Chrome, code: str) -> None:
    """Until the page says the state's figures are all rendered (body data-state, data-ready)."""
    WebDriverWait(browser, 15).until(
        lambda b: b.execute_script("return document.body.dataset.ready === '1' && document.body.dataset.state")
        == code, message=f"the page never showed {code}")


def shown(browser: webdriver.Chrome) -> dict[str, Any]:
    text = {name: browser.find_element(By.ID, name).text for name in (
        "state-name", "state-code", "state-rank", "total-pizzas", "gross-sales", "per-capita", "unique-customers")}
    bars = [{"pizza_type": bar.get_attribute("data-pizza-type"), "total_pizzas": int(bar.get_attribute("data-pizzas")),
             "gross_sales": float(bar.get_attribute("data-gross-sales")),
             "labels": [bar.find_element(By.CSS_SELECTOR, f"text.bar-value.{kind}").text
                        for kind in ("pizzas", "sales")]}
            for bar in browser.find_elements(By.CSS_SELECTOR, "#chart g.bar")]
    return {**text, "bars": bars, "url": browser.current_url}


def expected(report: dict[str, Any]) -> dict[str, Any]:
    """What the page must show for one state of `report --json`, formatted as analysts read it."""
    return {"state-name": report["state_name"], "state-code": report["state"], "state-rank": f"#{report['rank']} of 51",
            "total-pizzas": f"{report['total_pizzas']:,}", "gross-sales": f"${report['gross_sales']:,.2f}",
            "per-capita": f"${Decimal(report['gross_sales_per_capita']) * 100_000:,.2f}",
            "unique-customers": f"{report['unique_customers']:,}",
            "bars": [{**p, "labels": [f"{p['total_pizzas']:,} pizza{'' if p['total_pizzas'] == 1 else 's'}",
                                      f"${p['gross_sales']:,.2f}"]} for p in report["top_pizzas"]]}


def pick_by_typing(browser: webdriver.Chrome, text: str) -> None:
    picker = browser.find_element(By.ID, "state-picker")
    picker.clear()
    picker.send_keys(text, Keys.ENTER)


def pick_on_the_map(browser: webdriver.Chrome, code: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f'#map path[data-state="{code}"]').click()


def pick_by_keyboard_on_the_map(browser: webdriver.Chrome, code: str) -> None:
    state = browser.find_element(By.CSS_SELECTOR, f'#map path[data-state="{code}"]')
    browser.execute_script("arguments[0].focus()", state)
    assert browser.switch_to.active_element == state
    state.send_keys(Keys.SPACE)


PICKS = [  # (how, what is typed or clicked, the state it picks)
    (pick_by_typing, "calif", "CA"),
    (pick_by_typing, "ny", "NY"),
    (pick_on_the_map, "WY", "WY"),
    (pick_by_keyboard_on_the_map, "DC", "DC"),
    (pick_by_typing, "Flor", "FL"),
]


def test_five_states_picked_three_ways_show_the_report_figures(cli: Cli, dashboard: Dashboard,  # noqa: F811
                                                                browser: webdriver.Chrome) -> None:
    browser.get(dashboard.url + "&state=TX")  # the printed URL, with its token
    wait_ready(browser, "TX")
    assert browser.current_url == f"{dashboard.base}?state=TX"  # the token is gone from the address bar
    assert shown(browser) | {"url": None} == expected(cli.json("report", "-s", "TX")["states"][0]) | {"url": None}
    for how, what, code in PICKS:
        how(browser, what)
        wait_ready(browser, code)
        page = shown(browser)
        assert page.pop("url").endswith(f"?state={code}"), f"the URL does not carry {code}"
        assert page == expected(cli.json("report", "-s", code)["states"][0]), f"{how.__name__}({what!r})"
    freshness = browser.find_element(By.ID, "freshness").text
    assert "Views refreshed" in freshness and "every stored order is in them" in freshness, freshness

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    print(f"\nscreenshot: {ARTIFACTS / 'dashboard.png'}")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors


def test_a_shared_link_opens_on_its_state_and_back_returns(dashboard: Dashboard,  # noqa: F811
                                                           browser: webdriver.Chrome) -> None:
    browser.get(dashboard.base + "?state=ny")  # no token: the browser's cookie lets it in
    wait_ready(browser, "NY")
    pick_by_typing(browser, "TX")
    wait_ready(browser, "TX")
    browser.back()
    wait_ready(browser, "NY")


def picker_message(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.ID, "picker-message").text


def test_what_names_no_state_is_said_and_the_state_shown_stays(cli: Cli, dashboard: Dashboard,  # noqa: F811
                                                               browser: webdriver.Chrome) -> None:
    """As `report --state` takes them: ?state=tex opens Texas (its code in the URL); ?state=ZZ opens the top
    state with the line saying ZZ is not a US state; a typed "new" or "ZZ" says why and keeps the state shown."""
    browser.get(dashboard.base + "?state=tex")
    wait_ready(browser, "TX")
    assert browser.current_url == f"{dashboard.base}?state=TX" and picker_message(browser) == ""

    top = cli.json("report", "--all")["states"][0]["state"]
    browser.get(dashboard.base + "?state=ZZ")
    wait_ready(browser, top)
    assert picker_message(browser).startswith("ZZ is not a US state (")
    assert browser.current_url == f"{dashboard.base}?state={top}"

    pick_by_typing(browser, "wyo")
    wait_ready(browser, "WY")
    assert picker_message(browser) == ""
    for typed, said in (("new", "new matches New Hampshire, New Jersey, New Mexico, New York ("),
                        ("ZZ", "ZZ is not a US state (")):
        pick_by_typing(browser, typed)
        WebDriverWait(browser, 15).until(lambda b, said=said: picker_message(b).startswith(said),
                                         message=f"the page never said {said!r}")
        wait_ready(browser, "WY")
        assert browser.current_url.endswith("?state=WY") and shown(browser)["state-name"] == "Wyoming"
        assert browser.find_element(By.ID, "state-picker").get_attribute("value") == typed  # left to correct
        assert browser.find_element(By.ID, "picker-message").is_displayed()
    pick_by_typing(browser, "new y")
    wait_ready(browser, "NY")
    assert picker_message(browser) == ""


def test_the_token_lives_in_an_httponly_strict_cookie_and_without_it_the_page_says_where_the_url_is(
        dashboard: Dashboard, browser: webdriver.Chrome) -> None:  # noqa: F811
    [cookie] = browser.get_cookies()
    assert (cookie["name"], cookie["value"]) == (f"txpipe_dashboard_{dashboard.port}", dashboard.token)
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")
    assert browser.execute_script("return document.cookie") == ""  # no script on the page can read it
    browser.delete_all_cookies()
    try:
        browser.get(dashboard.base + "?state=TX")
        text = browser.find_element(By.TAG_NAME, "body").text
        assert "operator's alone" in text and "txpipe dashboard printed in the terminal" in text, text
        assert browser.find_elements(By.ID, "map") == []
    finally:
        browser.get(dashboard.url + "&state=TX")  # the cookie back, for whatever runs next
    wait_ready(browser, "TX")
