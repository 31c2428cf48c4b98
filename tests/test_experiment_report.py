"""Report rendering (report.md, results.json, CSVs) on synthetic result dicts."""
import csv
import io
import json
import math
import statistics

import pytest

from lcl_jax.studies import paper_numbers, report, stats

ACCURACY = {  # (dataset, objective) -> per-seed test accuracy (fractions, as the trainer)
    ("isear", "ce"): [0.70, 0.71, 0.72],
    ("isear", "lcl"): [0.73, 0.74, 0.735],
    ("emoint", "ce"): [0.85],
    ("emoint", "lcl"): [0.86, 0.87],
}


def _results(accuracy: float) -> dict:
  return {"test": {"accuracy": accuracy, "weighted_f1": accuracy - 0.01},
          "validation": {"accuracy": accuracy + 0.01, "weighted_f1": accuracy},
          "synthetic": False, "best_epoch": 2}


def _observations():
  return [report.Observation(d, o, seed, _results(v), f"{d}/{o}/seed{seed}")
          for (d, o), values in ACCURACY.items() for seed, v in enumerate(values)]


def _report():
  cells = report.build_cells(_observations(), columns=["isear", "emoint"],
                             methods=["ce", "scl", "lcl"], metrics=["accuracy", "weighted_f1"],
                             split="test",
                             paper=report.table_paper_lookup(paper_numbers.TABLE1))
  return report.Report(
      name="table1", title="Table 1 test", split="test", columns=["isear", "emoint"],
      methods=["ce", "scl", "lcl"], metrics=["accuracy", "weighted_f1"], cells=cells,
      comparisons=report.compare(cells), settings={"encoder": "minilm", "seeds": [0, 1, 2]},
      runs=[report.run_record(o) for o in _observations()], missing=["isear/scl/seed0"],
      failed={"emoint/scl/seed0": "RuntimeError: boom"})


def test_cells_hold_percent_values_summaries_and_paper_numbers():
  r = _report()
  cell = r.cell("isear", "lcl", "accuracy")
  assert cell.values == pytest.approx({0: 73.0, 1: 74.0, 2: 73.5})
  assert cell.summary.mean == pytest.approx(73.5)
  assert cell.summary.sd == pytest.approx(statistics.stdev([73.0, 74.0, 73.5]))
  assert cell.paper == 72.4  # Table 1, ISEAR, ELECTRA + LCL accuracy
  assert cell.difference == pytest.approx(73.5 - 72.4)
  assert r.cell("isear", "scl", "accuracy").summary.n == 0
  assert r.cell("emoint", "ce", "weighted_f1").paper == 85.5
  assert r.cell("emoint", "ce", "weighted_f1").values == pytest.approx({0: 84.0})


def test_comparisons_are_lcl_against_each_baseline():
  r = _report()
  keys = {(c.column, c.metric, c.method_b) for c in r.comparisons}
  assert keys == {(d, m, b) for d in ("isear", "emoint") for m in ("accuracy", "weighted_f1")
                  for b in ("ce", "scl")}
  isear = next(c for c in r.comparisons
               if (c.column, c.metric, c.method_b) == ("isear", "accuracy", "ce"))
  expected = stats.welch_ttest([73.0, 74.0, 73.5], [70.0, 71.0, 72.0])
  assert isear.welch.statistic == pytest.approx(expected.statistic)
  assert isear.welch.pvalue == pytest.approx(expected.pvalue)
  assert isear.paired.n_a == 3


def test_markdown_puts_ours_beside_the_paper():
  md = report.render_markdown(_report())
  assert "# Table 1 test" in md
  # Overview cell: ours mean (sd) / paper.
  assert "73.50 (0.50) / 72.4" in md
  assert "85.00 / 85.5" in md  # one seed: no sd
  # Detail: ours, paper, difference.
  assert "| 73.50 (0.50) | 72.4 | +1.10 |" in md
  assert "| 71.00 (1.00) | 71.4 | -0.40 |" in md
  # Significance table row with t and p, and n/a for the one-seed baseline.
  welch = stats.welch_ttest([73.0, 74.0, 73.5], [70.0, 71.0, 72.0])
  assert f"{welch.statistic:+.2f}" in md
  assert "n/a" in md
  assert "FAILED `emoint/scl/seed0`: RuntimeError: boom" in md
  assert "not finished: `isear/scl/seed0`" in md
  assert "- encoder: `minilm`" in md


def test_smoke_and_synthetic_banners():
  r = _report()
  assert "SMOKE" not in report.render_markdown(r)
  r.settings["smoke"] = True
  r.runs[0]["synthetic"] = True
  md = report.render_markdown(r)
  assert "SMOKE RUN" in md and "SYNTHETIC DATA" in md


def test_reference_rows_are_rendered_for_the_reference_metric():
  r = _report()
  r.reference_rows = {"RoBERTa": {"isear": 56.2, "emoint": None}}
  md = report.render_overview(r, "accuracy")
  assert "| RoBERTa (published) | – / 56.2 | – / – |" in md
  assert "RoBERTa" not in report.render_overview(r, "weighted_f1")


def test_written_files_parse_back(tmp_path):
  r = _report()
  paths = report.write_report(r, tmp_path / "out")
  data = json.loads(paths["json"].read_text())  # strict JSON: NaN written as null
  assert data["name"] == "table1" and data["missing"] == ["isear/scl/seed0"]
  one_seed = next(c for c in data["cells"] if (c["column"], c["method"], c["metric"])
                  == ("emoint", "ce", "accuracy"))
  assert one_seed["n"] == 1 and one_seed["sd"] is None and one_seed["values"] == {"0": 85.0}
  assert len(data["tests"]) == 8 and len(data["runs"]) == 9
  rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
  assert len(rows) == len(r.cells) == 12
  row = next(x for x in rows if (x["column"], x["method"], x["metric"])
             == ("isear", "lcl", "accuracy"))
  assert float(row["mean"]) == pytest.approx(73.5) and float(row["paper"]) == 72.4
  assert row["seeds"] == "0;1;2" and [float(v) for v in row["values"].split(";")] == \
      pytest.approx([73.0, 74.0, 73.5])
  tests = list(csv.DictReader(io.StringIO(paths["tests_csv"].read_text())))
  assert len(tests) == 8
  undefined = next(t for t in tests if (t["column"], t["metric"], t["method_b"])
                   == ("emoint", "accuracy", "ce"))
  assert undefined["welch_p"] == "" and int(undefined["n_b"]) == 1
  assert paths["markdown"].read_text() == report.render_markdown(r)


def test_duplicate_seed_and_bad_split_are_errors():
  obs = _observations()
  with pytest.raises(ValueError, match="two runs"):
    report.build_cells(obs + obs[:1], columns=["isear"], methods=["ce"], metrics=["accuracy"],
                       split="test")
  with pytest.raises(ValueError, match="split"):
    report.build_cells(obs, columns=["isear"], methods=["ce"], metrics=["accuracy"],
                       split="train")


def test_json_safe_replaces_non_finite_numbers():
  import numpy as np
  out = report.json_safe({"a": float("nan"), "b": np.float32(1.5), "c": [np.inf, 2],
                          "d": np.arange(3)})
  assert out == {"a": None, "b": 1.5, "c": [None, 2], "d": [0, 1, 2]}
  assert math.isnan(float("nan"))
