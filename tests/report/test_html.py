"""The pytest-html block (html_report): structure, charts, escaping, offline-ness, warnings, headline."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from pytest_qwencmp.report import html as html_report
from pytest_qwencmp.report.charts import nice_ticks
from pytest_qwencmp.report.html import html_summary

SUBJECTS = [f"subject_{i:02d}" for i in range(57)]
HOSTILE = "<script>alert(1)</script>"
PARAMS_A, PARAMS_B = 1_543_714_304, 7_615_616_512


def record(benchmark, title, item, metric, a, b, *, n=200, order=0, benchmark_order=0, sig="better",
           passed=True, examples=None, generation=None, label_a="Qwen2.5-1.5B", label_b="Qwen2.5-7B"):
    sa = math.sqrt(a / 100 * (1 - a / 100) / n) * 100
    sb = math.sqrt(b / 100 * (1 - b / 100) / n) * 100
    sd = math.hypot(sa, sb) * 0.8
    d, half = b - a, 2.8 * sd
    if sig == "better":  # an adjusted interval that agrees with the verdict, as the run makes them
        adjusted = (max(0.01, d - half), d + half)
    elif sig == "worse":
        adjusted = (d - half, min(-0.01, d + half))
    else:
        adjusted = (min(d - half, -0.01), max(d + half, 0.01))
    r = {
        "benchmark": benchmark, "benchmark_title": title, "item": item, "metric": metric,
        "model_a": label_a, "model_b": label_b, "a": a, "a_stderr": sa, "b": b, "b_stderr": sb, "n": n,
        "delta": d, "delta_stderr": sd, "ci_low": d - 1.96 * sd, "ci_high": d + 1.96 * sd,
        "p_value": 0.001, "alpha": 0.05, "adjusted_ci_low": adjusted[0], "adjusted_ci_high": adjusted[1],
        "adjusted_p": 0.01 if sig in ("better", "worse") else 0.5, "adjusted_level": 0.05 / 57, "correction": "holm",
        "family_size": 57, "mde": 2.8 * sd, "mde_level": 0.05 / 57, "underpowered": False, "power_notes": [],
        "test": "mcnemar", "significance": sig,
        "passed": passed, "failures": [] if passed else ["improvement -6.00 < min_improvement -5.00"],
        "checked": ["improvement ≥ -5.00"], "outcome": "passed" if passed else "failed",
        "order": order, "benchmark_order": benchmark_order,
    }
    if examples is not None:
        r["examples"] = examples
    if generation is not None:
        r["generation"] = generation
    return r


def example(a_answer=" A", b_answer=" B", prompt="Question?\nAnswer:", target="B", a_score=0.0, b_score=1.0, doc="7"):
    return {"doc": doc, "prompt": prompt, "target": target, "a_answer": a_answer, "b_answer": b_answer,
            "a_score": a_score, "b_score": b_score}


def make_records(*, mbpp_a=0.0, mbpp_generation=True, hostile=True):
    rows = []
    for i, subject in enumerate(SUBJECTS):
        a = 40 + (i * 7) % 35
        b = a + ((i * 5) % 23) - 4
        sig = "better" if b - a > 6 else "worse" if b - a < -3 else "no detectable difference"
        rows.append(record("mmlu", "MMLU", subject, "acc", a, b, order=i, sig=sig, passed=b - a >= -3,
                           examples=[example()] if i % 2 else None))
    rows.append(record("mmlu", "MMLU", "overall", "acc", 59.74, 71.90, n=14042, order=57))
    rows.append(record("hellaswag", "HellaSwag", "acc", "acc", 50.19, 60.01, n=10042, order=0, benchmark_order=1))
    rows.append(record("hellaswag", "HellaSwag", "acc_norm", "acc_norm", 67.73, 80.22, n=10042, order=1, benchmark_order=1))
    never_stops = "def f(x):\n    return x\n\nYou are an expert Python programmer, and here is your task: " + "more " * 100
    mbpp_examples = [
        example(a_answer=never_stops, b_answer="def f(x):\n    return x\n", target="def f(x): ...", doc="11"),
        example(a_answer=HOSTILE if hostile else "pass", b_answer="def g(): pass", doc="12"),
    ]
    rows.append(record("mbpp", "MBPP", "pass@1", "pass_at_1", mbpp_a, 38.4, n=500, benchmark_order=2,
                       examples=mbpp_examples, generation=mbpp_generation))
    if hostile:
        rows[3]["examples"] = [example(a_answer=HOSTILE, prompt='<img src=x onerror="alert(2)"> & "quotes"', target="</pre></td>")]
        rows[4]["failures"] = [HOSTILE]
        rows[4]["passed"] = False
    return rows


def run_info(*, shots_mbpp=0, params=(PARAMS_A, PARAMS_B)):
    def model(label, path, revision, n):
        return {"label": label, "name_or_path": path, "revision": revision, "backend": "deepspeed", "dtype": "float16",
                "requested_dtype": "float16", "device": "cuda:0", "parameters": n, "notice": None}

    return {
        "models": {"a": model("Qwen2.5-1.5B", "Qwen/Qwen2.5-1.5B", "8faed761", params[0]),
                   "b": model("Qwen2.5-7B", "Qwen/Qwen2.5-7B", "d1497293", params[1])},
        "num_fewshot": {"mmlu": 0, "hellaswag": 0, "mbpp": shots_mbpp},
        "limit": None, "generation": {"do_sample": True, "temperature": 0.1, "top_p": 0.95}, "seed": 1234,
        "data": "Hugging Face hub", "lm_eval_version": "0.4.8", "correction": "holm", "machine": "runner (x86_64)",
    }


STATS = {"model_loads": 2, "evaluations": 6, "cache_hits": 0, "evaluation_seconds": 2841.3, "wall_seconds": 2903.7}


@pytest.fixture(scope="module")
def page() -> str:
    return html_summary(make_records(), run_info(), STATS)


class TagBalance(HTMLParser):
    VOID = {"br", "img", "input", "meta", "link", "hr", "wbr", "col", "area", "base", "embed", "source", "track", "param"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(attributes["id"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.append(attributes["id"])

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(fragment: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(fragment)
    parser.close()
    return parser


def table(page: str, benchmark: str) -> str:
    match = re.search(rf'<table class="qc-table" id="qwencmp-{benchmark}".*?</table>', page, re.S)
    assert match, benchmark
    return match.group(0)


def test_tags_balance_and_ids_are_unique(page):
    parser = parse(page)
    assert parser.errors == [] and parser.stack == []
    assert len(parser.ids) == len(set(parser.ids))
    assert page.startswith('<div class="qwencmp"') and page.endswith("</div>")


def test_one_table_per_benchmark_with_model_labels_and_pinned_overall(page):
    assert len(re.findall(r'<table class="qc-table"', page)) == 3
    mmlu = table(page, "mmlu")
    heads = re.findall(r'<th scope="col"[^>]*>(.*?)<span', mmlu)
    assert heads == ["Task", "Qwen2.5-1.5B acc ± stderr", "Qwen2.5-7B acc ± stderr", "Improvement",
                     "95% CI (paired)", "p", "holm CI (×57)", "adj. p", "MDE", "Verdict and reason"]
    rows = re.findall(r'<tr class="(qc-item[^"]*)"', mmlu)
    assert len(rows) == 58
    assert "qc-overall" in rows[0] and sum("qc-overall" in r for r in rows) == 1
    assert len(re.findall(r'<tr class="qc-detail"', mmlu)) == 58
    assert sum("qc-fail" in r for r in rows) == sum(1 for r in make_records() if r["benchmark"] == "mmlu" and not r["passed"])
    hellaswag = table(page, "hellaswag")
    assert len(re.findall(r'<tr class="qc-item', hellaswag)) == 2 and "qc-overall" not in hellaswag
    assert 'data-type="num"' in mmlu and "<script>" in page  # sorting: numeric columns, inline script


def test_no_row_contradicts_itself(page):
    """Per row: the adjusted CI excludes 0 exactly when the verdict is better or worse, and on the right side."""
    for name in ("mmlu", "hellaswag", "mbpp"):
        for row in re.findall(r'<tr class="qc-item[^"]*".*?</tr>', table(page, name), re.S):
            cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            adjusted = re.match(r"\[([+-][\d.]+), ([+-][\d.]+)\]", cells[6])
            badge = re.search(r"(B better|B worse|no detectable difference)", cells[9]).group(1)
            if adjusted is None:  # overall: tested alone, its own CI is the verdict's
                assert "qc-overall" in row and "— (alone)" in cells[6]
                adjusted = re.match(r"\[([+-][\d.]+), ([+-][\d.]+)\]", cells[4])
            low, high = float(adjusted.group(1)), float(adjusted.group(2))
            expected = "B better" if low > 0 else "B worse" if high < 0 else "no detectable difference"
            assert badge == expected, (name, cells[0], low, high, badge)


def test_every_benchmark_says_what_no_detectable_difference_means(page):
    for name in ("mmlu", "hellaswag"):
        section = re.search(rf'<section class="qc-section" id="qwencmp-sec-{name}">.*?<table', page, re.S).group(0)
        assert re.search(r'class="qc-noise">&quot;No detectable difference&quot; here means: with [\d,–]+ documents per '
                         r"item, true differences smaller than about ±[\d.]+ points", section), name
        assert "form one family, adjusted together (holm)" in section
    assert "overall: lm-eval&#x27;s group score, a size-weighted micro-average over all 14,042 questions; tested alone, unadjusted" in page


def test_css_and_script_are_the_package_assets_inlined(page):
    from pytest_qwencmp.report.html import ASSETS

    css, js = (ASSETS / "report.css").read_text(), (ASSETS / "report.js").read_text()
    assert f"<style>{css}</style>" in page and f"<script>{js}</script>" in page
    assert "qc-table" in css and "sortTable" in js


def test_rows_expand_to_examples_side_by_side(page):
    mmlu = table(page, "mmlu")
    detail = re.search(r'<tr class="qc-detail" id="qwencmp-mmlu-d2" hidden>(.*?)</tr>', mmlu, re.S).group(1)
    assert 'aria-controls="qwencmp-mmlu-d2"' in mmlu
    assert "prompt (tail)" in detail and "target" in detail
    assert "Qwen2.5-1.5B (A) · score 0" in detail and "Qwen2.5-7B (B) · score 1" in detail
    assert "Expected:" in detail
    no_examples = re.search(r'<tr class="qc-detail" id="qwencmp-mmlu-d1" hidden>(.*?)</tr>', mmlu, re.S).group(1)
    assert "No per-document examples" in no_examples


def test_charts_have_one_mark_per_subject_and_parse_as_xml(page):
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    dumbbells = [s for s in svgs if 'id="qwencmp-mmlu-dumbbell"' in s]
    assert len(dumbbells) == 1
    svg = ET.fromstring(dumbbells[0])
    assert svg.find("title") is not None and "Qwen2.5-1.5B" in svg.find("title").text
    rows = [g for g in svg.iter("g") if g.get("class") == "qc-row"]
    assert len(rows) == 57
    assert sorted(g.get("data-item") for g in rows) == SUBJECTS
    assert all(g.find("title") is not None for g in rows)
    assert len([c for c in svg.iter("circle") if c.get("class") == "qc-a"]) == 57
    assert len([c for c in svg.iter("circle") if c.get("class") == "qc-b"]) == 57
    assert len([r for r in svg.iter("rect") if r.get("class") == "qc-d"]) == 57
    deltas = [float(re.search(r"Δ ([+-]\d+\.\d+)", g.find("title").text).group(1)) for g in rows]
    assert deltas == sorted(deltas, reverse=True)
    hist = ET.fromstring(next(s for s in svgs if 'id="qwencmp-mmlu-hist"' in s))
    bars = [r for r in hist.iter("rect") if r.get("class") == "qc-bar"]
    assert sum(int(b.find("title").text.split()[0]) for b in bars) == 57
    assert "Δ = B − A" in "".join(hist.itertext())
    # benchmarks with fewer than 3 items get no charts
    assert 'id="qwencmp-hellaswag-dumbbell"' not in page and 'id="qwencmp-mbpp-hist"' not in page


def test_hostile_strings_render_as_text():
    rows = make_records()
    rows[5]["item"] = '<b onmouseover="x()">evil</b>'
    run = run_info()
    run["models"]["a"]["name_or_path"] = HOSTILE
    run["models"]["b"]["notice"] = '"><script>alert(3)</script>'
    rows = [dict(r, model_b='B"<i>') for r in rows]
    out = html_summary(rows, run, STATS)
    assert "<script>alert" not in out and "<img" not in out and "<b onmouseover" not in out and "<i>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&lt;/pre&gt;&lt;/td&gt;" in out
    assert len(re.findall(r"<script>", out)) == 1  # ours
    parser = parse(out)
    assert parser.errors == [] and parser.stack == []
    assert HOSTILE in "".join(parser.text)  # the text a reader sees is the model's output, verbatim
    for svg in re.findall(r"<svg.*?</svg>", out, re.S):
        ET.fromstring(svg)


def test_no_external_resources(page):
    assert "http://" not in page and "https://" not in page
    parser = parse(page)
    links = [value for _, attrs in parser.tags for name, value in attrs.items()
             if name in ("src", "href", "xlink:href", "action", "data", "poster", "srcset")]
    assert links and all(link.startswith("#") for link in links)  # in-page anchors only
    assert {tag for tag, _ in parser.tags}.isdisjoint({"img", "link", "iframe", "object", "embed", "image", "use"})
    assert "<link" not in page and "@import" not in page and "url(" not in page and "<img" not in page
    assert not re.search(r"<script[^>]*\bsrc=", page)


def test_near_zero_generation_warning_with_samples_and_fewshot_advice(page):
    section = re.search(r'<section class="qc-section" id="qwencmp-sec-mbpp">.*?</section>', page, re.S).group(0)
    warnings = re.findall(r'<div class="qc-warning".*?<table', section, re.S)
    assert len(warnings) == 1
    warning = warnings[0]
    assert "Qwen2.5-1.5B scores 0.00" in warning
    assert "--num-fewshot mbpp=2" in warning and "[DONE]" in warning and "zero-shot" in warning
    assert "You are an expert Python programmer" in warning  # the model's own sample output
    assert "&lt;script&gt;" in warning
    assert page.count('class="qc-warning"') == 1
    assert "near-zero score" in page  # flagged in the headline


@pytest.mark.parametrize(
    "records",
    [
        pytest.param(make_records(mbpp_a=31.0), id="both-models-fine"),
        pytest.param(make_records(mbpp_generation=False), id="not-a-generation-benchmark"),
        pytest.param([record("mmlu", "MMLU", s, "acc", 0.0, 1.0, order=i) for i, s in enumerate(SUBJECTS[:4])],
                     id="log-likelihood-benchmark-at-zero"),
    ],
)
def test_no_warning_otherwise(records):
    out = html_summary(records, run_info(), STATS)
    assert 'class="qc-warning"' not in out and "near-zero score" not in out


def test_warning_without_examples_or_generation_key_and_with_fewshot():
    rows = [r for r in make_records() if r["benchmark"] == "mbpp"]
    for r in rows:
        r.pop("examples")
        r.pop("generation")  # older records: pass@ metrics are generation benchmarks
    out = html_summary(rows, run_info(shots_mbpp=2), None)
    assert 'class="qc-warning"' in out and "No sample outputs" in out
    assert "Already 2-shot" in out and "zero-shot (" not in out
    assert "--num-fewshot mbpp=2" not in out  # it is 2-shot already: no advice to make it 2-shot
    one_shot = html_summary(rows, run_info(shots_mbpp=1), None)
    assert "Already 1-shot" in one_shot and "the study ran it 2-shot (<code>--num-fewshot mbpp=2</code>)" in one_shot


def test_toy_models_get_the_ratio_without_the_qwen_yardstick():
    out = html_summary(make_records(), run_info(params=(123_520, 690_688)), STATS)
    assert "<b>5.59×</b>" in out and "124K → 691K" in out
    assert "reference: Qwen2.5" not in out and "at 5.59× params" not in out
    assert parse(out).errors == []


def test_headline_numbers_and_parameter_ratio(page):
    headline = re.search(r'<table class="qc-headline">.*?</table>(.*?)<div class="qc-top">', page, re.S)
    table_html, after = headline.group(0), headline.group(1)
    assert html_report.parameter_ratio(run_info()) == pytest.approx(PARAMS_B / PARAMS_A)
    ratio = f"{PARAMS_B / PARAMS_A:.2f}×"
    assert ratio == "4.93×"
    assert f"<b>{ratio}</b>" in after and "1.54B → 7.62B" in after
    assert "params" not in table_html  # the ratio is said once, below the table, not in every cell
    assert "reference: Qwen2.5 1.5B → 7B" in after  # real language models: the study's pair as a yardstick
    mmlu_row = re.search(r"<tr><th scope=\"row\"><a href=\"#qwencmp-sec-mmlu\">MMLU</a>.*?</tr>", table_html, re.S).group(0)
    text = re.sub(r"<[^>]+>", "", mmlu_row)
    assert re.search(r"59.74 ± \d\.\d\d71.90 ± \d\.\d\d\+12.16", text), text
    records = make_records()
    subjects = [r for r in records if r["benchmark"] == "mmlu" and r["item"] != "overall"]
    better = sum(r["significance"] == "better" for r in subjects)
    worse = sum(r["significance"] == "worse" for r in subjects)
    assert f"▲ {better}</span> / <span class=\"qc-worse\">▼ {worse}</span>" in mmlu_row
    assert f"of {len(subjects)} subjects" in mmlu_row
    failed = sum(not r["passed"] for r in records if r["benchmark"] == "mmlu")
    assert f"{58 - failed} passed" in mmlu_row and f"{failed} failed" in mmlu_row
    assert "HellaSwag" in table_html and "acc_norm" in table_html and "pass@1" in table_html
    assert "48 min 24 s" in page and "8faed761" in page and "deepspeed" in page and "1,543,714,304" in page
    assert "mbpp=0" in page and "temperature=0.1" in page


def test_headline_without_parameter_counts_or_stats():
    out = html_summary(make_records(), run_info(params=(None, None)), None)
    assert "params" not in out and "Scale:" not in out and "wall time" not in out
    assert html_report.parameter_ratio({}) is None


def test_degenerate_inputs_render():
    assert "No comparison results" in html_summary([], {}, None)
    bare = {"benchmark": "x", "item": "only", "metric": "acc", "a": 10.0, "b": 12.0, "delta": 2.0, "passed": True}
    out = html_summary([bare], {}, {"wall_seconds": None})
    assert parse(out).errors == [] and "+2.00" in out


def test_benchmark_ids_are_slugged_and_unique():
    rows = [dict(r, benchmark="a b") for r in make_records()[:3]] + [dict(r, benchmark="a-b", benchmark_order=1) for r in make_records()[:3]]
    out = html_summary(rows, run_info(), STATS)
    ids = parse(out).ids
    assert 'id="qwencmp-a-b"' in out and 'id="qwencmp-a-b-2"' in out and len(ids) == len(set(ids))


def test_nice_ticks_cover_the_range():
    for low, high in [(-7.3, 22.1), (0, 1), (35.2, 96.8), (-0.4, 0.0), (5, 5)]:
        ticks = nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and ticks == sorted(ticks)


@pytest.mark.parametrize("with_baseline", [False, True])
def test_every_row_has_as_many_cells_as_the_header(with_baseline):
    records = make_records()
    if with_baseline:
        for r in records:
            r["baseline"] = {"baseline": "main", "delta": -1.25, "significance": "no detectable difference", "regressed": False}
        records[0]["baseline"].update(delta=-9.5, significance="worse", regressed=True)
    out = html_summary(records, run_info(), STATS)
    for name in ("mmlu", "hellaswag", "mbpp"):
        section = table(out, name)
        heads = re.findall(r'<th scope="col"', section)
        assert ("B − baseline &#x27;main&#x27;" in section) == with_baseline
        for row in re.findall(r'<tr class="qc-item[^"]*".*?</tr>', section, re.S):
            assert len(re.findall(r"<td[^>]*>", row)) == len(heads), row[:200]
    if with_baseline:
        assert "-9.50 (worse) REGRESSED" in out and "-1.25</td>" in out
