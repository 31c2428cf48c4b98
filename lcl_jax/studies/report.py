"""Reports: our mean (sd) over seeds beside the paper's value, the difference, the tests.

A table is a grid of :class:`Cell` s -- (column, method, metric) -> one value per
seed -- built from the runs' results.json files (:func:`build_cells`), plus the
t-tests between LCL and the baselines (:func:`compare`). :func:`write_report` renders
it as

* `report.md`: an overview in the paper's layout ("ours mean (sd) / paper" per cell),
  one detail table per column (n, ours, paper, difference in points), the
  significance tests, any extra sections (selected subsets, figures, grids), the
  runs that are missing or failed, and how every number was computed;
* `results.json`: settings, cells (per-seed values and summaries), tests, per-run
  records, and any table-specific extras;
* `results.csv` (one row per cell) and `tests.csv` (one row per test).

Values are percentages (the trainer's fractions x 100), as the paper prints them.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import pathlib
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from lcl_jax.studies import paper_numbers, stats

PaperLookup = Callable[[str, str, str], "float | None"]


@dataclasses.dataclass(frozen=True)
class Observation:
  """The results.json of one run, placed in a table (column, method, seed)."""
  column: str
  method: str
  seed: int
  results: Mapping[str, Any]
  key: str = ""
  workdir: str | None = None  # the run directory (for links to its plots)


@dataclasses.dataclass
class Cell:
  """One (column, method, metric) entry: our per-seed values and the paper's number."""
  column: str
  method: str
  metric: str
  split: str
  values: dict[int, float]
  paper: float | None = None

  @property
  def summary(self) -> stats.Summary:
    return stats.summarize([self.values[s] for s in sorted(self.values)])

  @property
  def difference(self) -> float | None:
    """Our mean minus the paper's value, in points (None without either)."""
    mean = self.summary.mean
    if self.paper is None or math.isnan(mean):
      return None
    return mean - self.paper

  def as_dict(self) -> dict[str, Any]:
    s = self.summary
    return {"column": self.column, "method": self.method, "metric": self.metric,
            "split": self.split, "n": s.n, "mean": _nan_to_none(s.mean),
            "sd": _nan_to_none(s.sd), "paper": self.paper, "difference": self.difference,
            "values": {str(k): v for k, v in sorted(self.values.items())}}


@dataclasses.dataclass(frozen=True)
class Comparison:
  """t-tests of `method_a` against `method_b` on one (column, metric)."""
  column: str
  metric: str
  method_a: str
  method_b: str
  welch: stats.TTest
  paired: stats.TTest

  def as_dict(self) -> dict[str, Any]:
    return {"column": self.column, "metric": self.metric, "method_a": self.method_a,
            "method_b": self.method_b,
            "welch": {k: _nan_to_none(v) for k, v in self.welch.as_dict().items()},
            "paired": {k: _nan_to_none(v) for k, v in self.paired.as_dict().items()}}


def metric_value(results: Mapping[str, Any], split: str, metric: str) -> float | None:
  """`results[split][metric]` in percent, or None if the run did not report it."""
  value = results.get(split, {}).get(metric)
  return None if value is None else 100.0 * float(value)


def build_cells(observations: Iterable[Observation], *, columns: Sequence[str],
                methods: Sequence[str], metrics: Sequence[str], split: str,
                paper: PaperLookup | None = None) -> list[Cell]:
  """Every (column, method, metric) cell, with the values of the runs that reported it."""
  if split not in ("validation", "test"):
    raise ValueError(f"split must be 'validation' or 'test'; got {split!r}")
  cells = {(c, m, k): Cell(c, m, k, split, {}, paper(c, m, k) if paper else None)
           for c in columns for m in methods for k in metrics}
  for obs in observations:
    for metric in metrics:
      cell = cells.get((obs.column, obs.method, metric))
      if cell is None:
        continue
      value = metric_value(obs.results, split, metric)
      if value is not None:
        if obs.seed in cell.values:
          raise ValueError(f"two runs for {obs.column}/{obs.method}/seed{obs.seed}")
        cell.values[obs.seed] = value
  return list(cells.values())


def compare(cells: Sequence[Cell], *, method_a: str = "lcl",
            against: Sequence[str] = ("ce", "scl")) -> list[Comparison]:
  """The paper's tests: `method_a` (LCL) against each baseline, per column and metric."""
  index = {(c.column, c.method, c.metric): c for c in cells}
  out = []
  for cell in cells:
    if cell.method != method_a:
      continue
    for other in against:
      b = index.get((cell.column, other, cell.metric))
      if b is None:
        continue
      a_values = [cell.values[s] for s in sorted(cell.values)]
      b_values = [b.values[s] for s in sorted(b.values)]
      out.append(Comparison(cell.column, cell.metric, method_a, other,
                            stats.welch_ttest(a_values, b_values),
                            stats.paired_ttest(cell.values, b.values)))
  return out


def table_paper_lookup(table: paper_numbers.PaperTable) -> PaperLookup:
  return lambda column, method, metric: paper_numbers.paper_value(table, column, method, metric)


@dataclasses.dataclass
class Report:
  """Everything `write_report` renders.

  Attributes:
    name: short id ("table1"); title: the heading.
    split: the split the cells come from.
    columns, methods, metrics: the grid, in display order.
    cells, comparisons: see build_cells / compare.
    settings: what the numbers depend on (encoder, seeds, root, command, smoke ...).
    column_labels, method_labels: display names (default: paper_numbers' labels).
    reference_rows: paper-only rows of the overview (label -> column -> value) for
      `reference_metric` (Table 2's published baselines).
    sections: extra (heading, markdown) sections.
    extra: extra JSON fields.
    runs: per-run records (JSON).
    missing: runs not finished; failed: key -> error.
    interrupted: why the sweep stopped early (SIGTERM/SIGINT), or None; an
      interrupted report is marked INCOMPLETE and lists the runs still to do.
    notes: extra lines for the "How to read" section.
  """
  name: str
  title: str
  split: str
  columns: list[str]
  methods: list[str]
  metrics: list[str]
  cells: list[Cell]
  comparisons: list[Comparison] = dataclasses.field(default_factory=list)
  settings: dict[str, Any] = dataclasses.field(default_factory=dict)
  column_labels: dict[str, str] = dataclasses.field(default_factory=dict)
  method_labels: dict[str, str] = dataclasses.field(default_factory=dict)
  reference_rows: dict[str, dict[str, float | None]] = dataclasses.field(default_factory=dict)
  reference_metric: str = "accuracy"
  sections: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)
  runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  missing: list[str] = dataclasses.field(default_factory=list)
  failed: dict[str, str] = dataclasses.field(default_factory=dict)
  interrupted: str | None = None
  notes: list[str] = dataclasses.field(default_factory=list)

  def column_label(self, column: str) -> str:
    return self.column_labels.get(column, paper_numbers.dataset_label(column))

  def method_label(self, method: str) -> str:
    return self.method_labels.get(method, paper_numbers.method_label(method))

  def cell(self, column: str, method: str, metric: str) -> Cell | None:
    for c in self.cells:
      if (c.column, c.method, c.metric) == (column, method, metric):
        return c
    return None


def run_record(obs: Observation) -> dict[str, Any]:
  """The per-run summary kept in results.json."""
  r = obs.results
  keys = ("dataset", "objective", "encoder", "weighting_encoder", "seed", "synthetic",
          "best_epoch", "epochs_trained", "stopped_early", "steps", "sequences_per_second",
          "num_devices", "split_sizes", "validation", "test")
  record = {"key": obs.key, "column": obs.column, "method": obs.method,
            **{k: r.get(k) for k in keys}}
  if obs.workdir and r.get("plots"):
    record["plots"] = {name: str(pathlib.Path(obs.workdir) / path)
                       for name, path in r["plots"].items()}
  return record


# ---------------------------------------------------------------------------------------
# Formatting.


def _nan_to_none(value: Any) -> Any:
  if isinstance(value, float) and math.isnan(value):
    return None
  return value


def format_mean_sd(summary: stats.Summary) -> str:
  if summary.n == 0:
    return "–"
  if summary.n == 1:
    return f"{summary.mean:.2f}"
  return f"{summary.mean:.2f} ({summary.sd:.2f})"


def format_paper(value: float | None) -> str:
  return "–" if value is None else f"{value:.1f}"


def format_difference(value: float | None) -> str:
  return "–" if value is None else f"{value:+.2f}"


def format_p(p: float) -> str:
  if not math.isfinite(p):
    return "n/a"
  return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_t(test: stats.TTest) -> str:
  return "n/a" if not test.defined else f"{test.statistic:+.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def _metric_label(metric: str) -> str:
  return paper_numbers.METRIC_LABELS.get(metric, metric)


def render_overview(report: Report, metric: str) -> str:
  header = ["Method"] + [report.column_label(c) for c in report.columns]
  rows = []
  for method in report.methods:
    row = [report.method_label(method)]
    for column in report.columns:
      cell = report.cell(column, method, metric)
      row.append("–" if cell is None else
                 f"{format_mean_sd(cell.summary)} / {format_paper(cell.paper)}")
    rows.append(row)
  if metric == report.reference_metric:
    for label, values in report.reference_rows.items():
      rows.append([f"{label} (published)"]
                  + [f"– / {format_paper(values.get(c))}" for c in report.columns])
  return markdown_table(header, rows)


def render_column_detail(report: Report, column: str) -> str:
  header = ["Method", "n"]
  for metric in report.metrics:
    label = _metric_label(metric)
    header += [f"{label} ours", f"{label} paper", f"{label} Δ"]
  rows = []
  for method in report.methods:
    cells = [report.cell(column, method, m) for m in report.metrics]
    n = max((c.summary.n for c in cells if c is not None), default=0)
    row = [report.method_label(method), str(n)]
    for cell in cells:
      if cell is None:
        row += ["–", "–", "–"]
      else:
        row += [format_mean_sd(cell.summary), format_paper(cell.paper),
                format_difference(cell.difference)]
    rows.append(row)
  return markdown_table(header, rows)


def render_tests(report: Report) -> str:
  header = ["Column", "Metric", "Comparison", "Δ mean", "Welch t", "df", "p",
            "paired t", "p (paired)", "n"]
  rows = []
  for c in report.comparisons:
    mark = " *" if c.welch.defined and c.welch.pvalue < 0.05 else ""
    rows.append([
        report.column_label(c.column), _metric_label(c.metric),
        f"{report.method_label(c.method_a)} vs {report.method_label(c.method_b)}",
        format_difference(_nan_to_none(c.welch.mean_difference)),
        format_t(c.welch), "n/a" if not c.welch.defined else f"{c.welch.df:.1f}",
        format_p(c.welch.pvalue) + mark, format_t(c.paired), format_p(c.paired.pvalue),
        f"{c.welch.n_a} / {c.welch.n_b}"])
  return markdown_table(header, rows)


def _banner(report: Report) -> list[str]:
  lines = []
  if report.interrupted:
    todo = [k for k in report.missing if k not in report.failed]
    lines.append(f"> **INCOMPLETE — the sweep was interrupted** ({report.interrupted}). "
                 f"{len(todo)} run(s) still to do (listed under \"Runs still to do\"); "
                 "re-run the same command to resume them.")
  if report.settings.get("smoke"):
    lines.append("> **SMOKE RUN** — tiny data subsets and a few steps; it exercises the "
                 "pipeline, the numbers mean nothing.")
  if any(r.get("synthetic") for r in report.runs):
    lines.append("> **SYNTHETIC DATA** in some runs (the package's generated dataset, not "
                 "a paper dataset).")
  return lines


def render_plots(report: Report, out_dir: str | os.PathLike | None = None) -> str:
  """Links to each run's training plots (relative to `out_dir` when given)."""
  lines = []
  for run in report.runs:
    plots = run.get("plots") or {}
    if not plots:
      continue
    links = []
    for name, path in plots.items():
      target = os.path.relpath(path, out_dir) if out_dir else path
      links.append(f"[{name.replace('_', ' ')}]({pathlib.PurePath(target).as_posix()})")
    lines.append(f"- `{run.get('key')}`: " + " · ".join(links))
  return "\n".join(lines)


def render_markdown(report: Report, out_dir: str | os.PathLike | None = None) -> str:
  out = [f"# {report.title}", ""]
  banner = _banner(report)
  if banner:
    out += banner + [""]
  out.append(f"Split: **{report.split}** (each run's metrics at its best-validation epoch). "
             "Values in %; ours = mean (sd) over seeds.")
  out.append("")
  for key, value in report.settings.items():
    if value is None or value == "" or value == []:
      continue
    if isinstance(value, (list, tuple)):
      value = ", ".join(map(str, value))
    out.append(f"- {key}: `{value}`")
  out.append("")
  for metric in report.metrics:
    out += [f"## {_metric_label(metric)}: ours mean (sd) / paper", "",
            render_overview(report, metric), ""]
  if report.columns and report.metrics:
    out += ["## Per column: ours, the paper, and the difference (ours − paper, points)", ""]
  for column in report.columns if report.metrics else ():
    out += [f"### {report.column_label(column)}", "", render_column_detail(report, column), ""]
  if report.comparisons:
    out += ["## Significance tests (two-sided)", "",
            "Welch's unequal-variance t-test is the primary test (`*`: p < 0.05); the "
            "paired-by-seed t-test over the common seeds is shown beside it. Δ mean and t "
            "are positive when the first method is better. n/a: fewer than two seeds "
            "(or zero variance).", "", render_tests(report), ""]
  for heading, body in report.sections:
    out += [f"## {heading}", "", body.rstrip(), ""]
  plots = render_plots(report, out_dir)
  if plots:
    out += ["## Training plots of each run", "",
            "Loss and learning rate per step, validation metrics per epoch, and the best "
            "epoch's normalised test confusion matrix (`<run>/plots/`).", "", plots, ""]
  if report.missing or report.failed:
    out += ["## Runs still to do (interrupted)" if report.interrupted
            else "## Runs not included", ""]
    for key, message in report.failed.items():
      out.append(f"- FAILED `{key}`: {message}")
    for key in report.missing:
      if key not in report.failed:
        out.append(f"- {'to do' if report.interrupted else 'not finished'}: `{key}`")
    out.append("")
  out += ["## How to read this", ""]
  out += [
      "- Each run is one (dataset, objective, seed) fine-tuning; its metrics are those of "
      "the epoch with the best validation accuracy (as the paper).",
      "- sd is the sample standard deviation (ddof = 1) over seeds; Δ = our mean − the "
      "paper's value, in percentage points.",
      "- Machine-readable: `results.json` (per-seed values, summaries, tests, runs) and "
      "`results.csv` / `tests.csv`.",
  ]
  out += [f"- {note}" for note in report.notes]
  return "\n".join(out).rstrip() + "\n"


def render_cells_csv(report: Report) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["table", "column", "method", "metric", "split", "n", "mean", "sd", "paper",
                   "difference", "seeds", "values"])
  for cell in report.cells:
    s = cell.summary
    seeds = sorted(cell.values)
    writer.writerow([report.name, cell.column, cell.method, cell.metric, cell.split, s.n,
                     _csv_number(s.mean), _csv_number(s.sd), _csv_number(cell.paper),
                     _csv_number(cell.difference), ";".join(map(str, seeds)),
                     ";".join(f"{cell.values[k]:.6g}" for k in seeds)])
  return buf.getvalue()


def render_tests_csv(report: Report) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["table", "column", "metric", "method_a", "method_b", "mean_difference",
                   "welch_t", "welch_df", "welch_p", "paired_t", "paired_df", "paired_p",
                   "n_a", "n_b", "n_paired"])
  for c in report.comparisons:
    writer.writerow([report.name, c.column, c.metric, c.method_a, c.method_b,
                     _csv_number(c.welch.mean_difference), _csv_number(c.welch.statistic),
                     _csv_number(c.welch.df), _csv_number(c.welch.pvalue),
                     _csv_number(c.paired.statistic), _csv_number(c.paired.df),
                     _csv_number(c.paired.pvalue), c.welch.n_a, c.welch.n_b, c.paired.n_a])
  return buf.getvalue()


def _csv_number(value: float | None) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return ""
  return f"{value:.6g}"


def json_safe(value: Any) -> Any:
  """`value` with NumPy scalars/arrays as Python values and NaN/inf floats as None."""
  if hasattr(value, "tolist"):
    value = value.tolist()
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, Mapping):
    return {str(k): json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return json_safe(dataclasses.asdict(value))
  return value


def to_json(report: Report) -> dict[str, Any]:
  return json_safe({
      "name": report.name,
      "title": report.title,
      "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
      "split": report.split,
      "settings": report.settings,
      "columns": report.columns,
      "methods": report.methods,
      "metrics": report.metrics,
      "cells": [c.as_dict() for c in report.cells],
      "tests": [c.as_dict() for c in report.comparisons],
      "reference_rows": report.reference_rows,
      "runs": report.runs,
      "missing": report.missing,
      "failed": report.failed,
      "interrupted": report.interrupted,
      "complete": not (report.interrupted or report.missing or report.failed),
      **report.extra,
  })


def write_text_atomic(path: pathlib.Path, text: str) -> None:
  """`text` into `path` via a temporary file + rename; the mode follows the umask."""
  from lcl_jax.train.checkpoint import write_atomic  # pylint: disable=g-import-not-at-top
  write_atomic(path, text.encode("utf-8"))


def write_report(report: Report, out_dir: str | os.PathLike) -> dict[str, pathlib.Path]:
  """Writes report.md, results.json, results.csv and tests.csv into `out_dir`."""
  out = pathlib.Path(out_dir)
  paths = {"markdown": out / "report.md", "json": out / "results.json",
           "csv": out / "results.csv", "tests_csv": out / "tests.csv"}
  write_text_atomic(paths["markdown"], render_markdown(report, out))
  write_text_atomic(paths["json"], json.dumps(to_json(report), indent=2, allow_nan=False) + "\n")
  write_text_atomic(paths["csv"], render_cells_csv(report))
  write_text_atomic(paths["tests_csv"], render_tests_csv(report))
  return paths

