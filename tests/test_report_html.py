"""``cascade report STORE --html DIR``: one self-contained page, loaded in a real browser."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cascade import Cascade, Plan, Settings, Store, Tier, Verdict
from cascade.backends import Reply, Request, ScriptedBackend
from cascade.backends.scripted import Item, Script
from cascade.cli import main
from cascade.errors import ServerError
from cascade.money import Price, Usage
from cascade.store.alarms import DriftAlarms
from tests.browser import Browser, opened_browser
from tests.helpers import NO_WAIT

PRICE = Price(1.0, 2.0)
TOKENS = Usage(1000, 500)


def _json_object(attempt: Any) -> Verdict:
    try:
        value = json.loads(attempt.output)
    except ValueError:
        return Verdict(False, reason="not JSON", validator="json")
    if not isinstance(value, dict) or "name" not in value:
        return Verdict(False, reason="'name' is missing", validator="not_missing")
    return Verdict(True, validator="json")


def _run(store: Store, tasks: int = 24) -> None:
    """A run of ``tasks`` tasks into ``store``, in a thread of its own.

    The browser's driver, once started (a module fixture), keeps an event loop running in the
    test's thread, where ``Cascade.run`` refuses to start one.
    """
    with ThreadPoolExecutor(1) as pool:
        pool.submit(_run_here, store, tasks).result()


def _run_here(store: Store, tasks: int) -> None:
    """Tasks on a priced three-tier ladder: some accepted low, some climb, some fail through."""

    def number(request: Request) -> int:
        return int(str(request.messages[-1]["content"]).rsplit(" ", 1)[-1])

    def small(request: Request) -> Item:  # right on 3 tasks of 5, prose or {} on the rest
        n = number(request)
        return Reply('{"name": "Ada"}' if n % 5 < 3 else "prose" if n % 5 == 3 else "{}",
                     usage=TOKENS)  # fmt: skip

    def mid(request: Request) -> Item:  # down for every 4th task, else right half the time
        n = number(request)
        if n % 4 == 0:
            return ServerError("503 <b>down</b>")
        return Reply('{"name": "Bob"}' if n % 2 else "no", usage=TOKENS)

    def big(request: Request) -> Item:  # wrong once in a while
        return Reply("no" if number(request) % 7 == 0 else '{"name": "Cy"}', usage=TOKENS)

    script: dict[str, Script] = {"small": small, "mid": mid, "big": big}
    ladder = [Tier(model, price=PRICE, retries=0) for model in ("small", "mid", "big")]
    settings = Settings(backend=ScriptedBackend(script), log=False, retry=NO_WAIT, store=store,
                        run_id="run-1", max_outage_s=0.0)  # fmt: skip
    cascade = Cascade(Plan(ladder, _json_object), settings=settings)
    for n in range(tasks):
        cascade.run({"id": f"t<{n}>", "type": "contacts", "input": f"person {n}"})
    DriftAlarms(store).raise_("run-1", "contacts", 0, "acceptance", "tier 0 accepts less",
                              escalate=True)  # fmt: skip


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, Path]:
    """A store with one run, and the folder its HTML report was written to."""
    with Store(tmp_path / "s.db") as store:
        _run(store)
    out = tmp_path / "html"
    assert main(["report", str(tmp_path / "s.db"), "--html", str(out)]) == 0
    return tmp_path / "s.db", out / "index.html"


def test_the_page_holds_what_the_terminal_report_says(
    report: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Statuses, tiers, rejections by check, health and alarms are on the page, escaped."""
    store, page = report
    text = page.read_text()
    capsys.readouterr()
    assert main(["report", str(store), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    facts = dict(re.findall(r"<tr><td>([^<]*)</td><td class=\"n\">([^<]*)</td></tr>",
                            text.split('data-table="facts"')[1].split("</table>")[0]))  # fmt: skip
    assert facts["tasks"] == str(data["tasks"])
    assert facts["escalation rate"] == f"{data['escalation_rate']:.1%}"
    assert facts["spent in all (audits, retries and cut-off calls included)"] == (
        f"${data['spent_usd']:.6f}"
    )
    for status, count in data["statuses"].items():
        assert f'<tr><td>{status}</td><td class="n">{count}</td></tr>' in text
    for words in ("acceptance rate", "review queue", "not_missing", "tier 0 accepts less",
                  "Provider health", "dollars spent over the run"):  # fmt: skip
        assert words in text
    assert "t&lt;0&gt;" in text
    assert "<0>" not in text
    assert "<b>down</b>" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing to fetch


def test_the_report_still_prints_and_says_where_the_page_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--html adds the page; the terminal report is printed as before."""
    with Store(tmp_path / "s.db") as store:
        _run(store, tasks=3)
    assert main(["report", str(tmp_path / "s.db"), "--html", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "acceptance rate" in said
    assert f"wrote {tmp_path / 'out' / 'index.html'}" in said


def test_a_big_run_is_aggregated_not_listed(tmp_path: Path) -> None:
    """Thousands of tasks: the page lists a bounded sample of them, and stays small."""
    with Store(tmp_path / "s.db") as store:
        _run(store, tasks=1500)
    out = tmp_path / "html"
    assert main(["report", str(tmp_path / "s.db"), "--html", str(out)]) == 0
    text = (out / "index.html").read_text()
    assert text.count('class="task"') <= 60
    assert len(text) < 400_000


def test_an_empty_store_makes_a_page_that_says_so(tmp_path: Path) -> None:
    """No results yet: every chart says there is nothing to draw."""
    Store(tmp_path / "s.db").close()
    assert main(["report", str(tmp_path / "s.db"), "--html", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "index.html").read_text()
    assert "nothing to draw" in text
    assert "No task has a result." in text


def test_a_folder_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--html at a file, not a folder: exit 2 naming it."""
    with Store(tmp_path / "s.db") as store:
        _run(store, tasks=2)
    (tmp_path / "taken").write_text("")
    assert main(["report", str(tmp_path / "s.db"), "--html", str(tmp_path / "taken")]) == 2
    assert "taken" in capsys.readouterr().err


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by playwright."""
    with opened_browser() as opened:
        yield opened


def test_the_page_renders_in_a_browser_with_its_charts_and_task_links(
    report: tuple[Path, Path], browser: Browser, tmp_path: Path
) -> None:
    """No console errors, the charts carry their series, and a task link opens its steps."""
    _, page = report
    with browser.page(page) as loaded:
        charts = loaded.eval_on_selector_all(
            "svg.chart",
            "cs => cs.map(c => [c.dataset.chart, "
            "[...c.querySelectorAll('g.series')].map(g => g.dataset.series)])",
        )
        named = dict(charts)
        assert named["cost"] == ["dollars spent"]
        assert named["statuses"] == ["bars"]
        assert named["drift"] == ["alarms"]
        assert "acceptance-contacts" in named
        spent = loaded.eval_on_selector_all(
            "svg[data-chart=cost] circle", "cs => cs.map(c => +c.dataset.y)"
        )
        assert spent == sorted(spent)
        assert spent[-1] > 0
        link = loaded.locator("table[data-table=tasks] a").first
        target = link.get_attribute("href")
        assert target is not None
        assert target.startswith("#task-")
        link.click()
        assert loaded.evaluate("location.hash") == target
        shown = loaded.locator(f"{target}")
        assert shown.is_visible()
        assert "step" in shown.inner_text()
        assert loaded.evaluate(f"getComputedStyle(document.querySelector('{target}'))"
                               ".backgroundColor") != "rgba(0, 0, 0, 0)"  # fmt: skip
        loaded.screenshot(path=str(Browser.artifacts() / "report-run.png"), full_page=True)
    assert browser.errors == []


def test_the_page_opens_with_the_network_off(report: tuple[Path, Path], browser: Browser) -> None:
    """Every request the page makes is for the file itself: nothing from any host."""
    _, page = report
    with browser.page(page) as loaded:
        assert loaded.title().startswith("cascade report")
    assert [url for url in browser.requests if not url.startswith("file://")] == []


SHARED = Path(__file__).resolve().parents[2] / "shared"
BFCL = SHARED / "datasets" / "bfcl-simple"
LADDERS = ["policies/function_call.toml", "policies/ladders/function_call_agreement.toml"]


@pytest.fixture(scope="module")
def bench_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """``cascade bench --report`` over the recorded bfcl-simple and two shipped ladders."""
    if not BFCL.is_dir():
        pytest.skip("../shared is not beside the repo")
    out = tmp_path_factory.mktemp("bench")
    args = ["bench", str(BFCL), "--json", "--report", str(out)]
    for policy in LADDERS:
        args += ["--policy", str(Path(__file__).resolve().parents[1] / policy)]
    with ThreadPoolExecutor(1) as pool:  # the bench runs its own event loop
        status = pool.submit(_quiet_main, args, out / "results.json").result()
    assert status == 0
    return json.loads((out / "results.json").read_text()), out / "index.html"


def _quiet_main(args: list[str], keep: Path) -> int:
    """``main(args)`` with what it prints kept in ``keep``."""
    with keep.open("w") as file, contextlib.redirect_stdout(file):
        return main(args)


def test_the_bench_page_has_every_model_the_oracle_and_each_ladder(
    bench_page: tuple[dict[str, Any], Path], browser: Browser
) -> None:
    """The frontier chart carries each point with its intervals, and the columns are defined."""
    results, page = bench_page
    with browser.page(page) as loaded:
        marks = loaded.eval_on_selector_all(
            "svg[data-chart=frontier] [data-label]",
            "ms => ms.map(m => [m.closest('g.series').dataset.series, m.dataset.label])",
        )
        assert sorted(label for group, label in marks if group == "ladder") == sorted(
            results["ladders"]
        )
        priced = [name for name, s in results["models"].items() if s["cost_per_task_usd"] > 0]
        assert sorted(label for group, label in marks if group == "model") == sorted(priced)
        assert [label for group, label in marks if group == "oracle"] == ["oracle"]
        whiskers = loaded.locator("svg[data-chart=frontier] line.whisker").count()
        assert whiskers >= len(marks)  # an interval on each axis where it has width
        legend = loaded.locator("dl.legend").inner_text()
        assert "false accepts" in legend
        assert "savings vs a model as good" in legend
        labels = loaded.eval_on_selector_all(
            "svg[data-chart=frontier] text.label",
            "ts => ts.map(t => { const b = t.getBBox(); return [b.x, b.y, b.width, b.height]; })",
        )
        for n, a in enumerate(labels):  # no label covers another
            for b in labels[n + 1 :]:
                apart = (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1]
                         or b[1] + b[3] <= a[1])  # fmt: skip
                assert apart, (a, b)
        loaded.screenshot(path=str(Browser.artifacts() / "report-bench.png"), full_page=True)
    assert browser.errors == []


def test_a_run_that_cost_nothing_has_no_negative_dollars() -> None:
    """All calls free: the money axis starts at 0."""
    from cascade.html.svg import Series, lines  # noqa: PLC0415

    chart = lines("cost", "t", [Series("dollars", [(0.0, 0.0), (1.0, 0.0)])], "s", "$")
    ticks = re.findall(r'class="tick">([^<]*)<', chart)
    assert ticks
    assert all(not tick.startswith("-") for tick in ticks)


def test_long_task_types_keep_their_rows_apart() -> None:
    """The tier and signal come first, so a long task type cannot make rows look the same."""
    from cascade.html.svg import Span, timeline  # noqa: PLC0415

    kind = "customer-support-triage-v2-with-a-long-name"
    spans = [Span(f"tier {t} acceptance: {kind}", 0.0, None) for t in range(3)]
    shown = re.findall(r'class="tick">([^<]*)</text><rect', timeline("d", "t", spans, 0.0, 1.0))
    assert len(set(shown)) == 3


def test_the_bench_page_says_which_models_it_leaves_out() -> None:
    """Partial and unpriced models are named under the table, as the terminal table does."""
    from cascade.html.bench_page import bench_page  # noqa: PLC0415

    score = {"pass_rate": 0.9, "pass_rate_ci95": [0.8, 0.95], "cost_usd": 0.0,
             "cost_per_task_usd": 0.0, "cost_per_task_ci95": [0.0, 0.0], "latency_p50_s": 1.0,
             "latency_p95_s": 2.0}  # fmt: skip
    results = {"dataset": "d", "tasks": 10, "models": {"free": score}, "oracle": score,
               "ladders": {}, "partial_models": {"half": 5},
               "unpriced_models": {"nameless": {"pass_rate": 0.5}}}  # fmt: skip
    text = bench_page(results)
    assert "half (5 of 10)" in text
    assert "nameless" in text
    assert "Not on the chart (a log axis has no 0): free." in text


def test_crowded_points_never_get_labels_over_each_other(browser: Browser, tmp_path: Path) -> None:
    """Many marks close together: labels that find no free spot are left to the tooltips."""
    from cascade.html.page import document, write_page  # noqa: PLC0415
    from cascade.html.svg import Mark, scatter  # noqa: PLC0415

    marks = [Mark(f"model-number-{n}-with-a-name", 1e-3 * (1 + n / 50), 0.9 + n / 1000, "model")
             for n in range(14)]  # fmt: skip
    page = write_page(
        tmp_path, document("t", "s", [("c", "c", scatter("c", "c", marks, "x", "y"))])
    )
    with browser.page(page) as loaded:
        boxes = loaded.eval_on_selector_all(
            "text.label",
            "ts => ts.map(t => { const b = t.getBBox(); return [b.x, b.y, b.width, b.height]; })",
        )
    assert 0 < len(boxes) < 14
    for n, a in enumerate(boxes):
        for b in boxes[n + 1 :]:
            assert (
                a[0] + a[2] <= b[0]
                or b[0] + b[2] <= a[0]
                or a[1] + a[3] <= b[1]
                or b[1] + b[3] <= a[1]
            )
