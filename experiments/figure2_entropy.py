r"""Figure 2 of the LCL paper: entropy of the top-k normalised prediction scores (Eq. 7).

For CE, SCL and LCL on Empathetic Dialogues, GoEmotions and SST-5: for each run, the
best-epoch test probabilities; per example the k largest scores renormalised to sum to
one and their entropy in bits (log base 2, as Eq. 7), averaged over examples, for
k = 2..C; then the mean (and sd)
over seeds. The paper's finding: LCL's curve lies below CE's and SCL's (more
differentiated output distributions). The figure's values are not printed in the
paper, so there is nothing to compare numerically.

It uses the same runs as Tables 1 and 2 (trained here if missing):

  python -m experiments.figure2_entropy --data_dir=../shared/data --workdir=runs/paper

Writes <workdir>/reports/figure2/: figure2_entropy.png, entropy.csv (dataset, method,
k, mean_entropy_bits, sd_bits, n), entropy.json (bits; also per seed), and report.md
(the curves as tables,
with the runs' test accuracy beside the paper's). `--split=validation` uses the
validation predictions instead; `--report_only` plots only the finished runs.
"""
from __future__ import annotations

import json

from absl import app, flags
import numpy as np

from lcl_jax.studies import cli, paper_numbers as paper, report as report_lib, sweep
from lcl_jax.studies import figure2_entropy as entropy

KNOWN_DATASETS = tuple(dict.fromkeys(paper.FIGURE2_DATASETS + paper.TABLE1_DATASETS
                                     + paper.TABLE2_DATASETS))

cli.define_flags(seeds="0-4", datasets=paper.FIGURE2_DATASETS, objectives=paper.FIGURE2_METHODS,
                 datasets_help=f"Datasets (paper: {list(paper.FIGURE2_DATASETS)}; any of "
                               f"{list(KNOWN_DATASETS)}).")
flags.DEFINE_enum("split", "test", ["test", "validation"], "Whose predictions to use.")
FLAGS = flags.FLAGS

NAME = "figure2"


def _paper_accuracy(dataset: str, method: str, metric: str) -> float | None:
  for table in (paper.TABLE1, paper.TABLE2):
    value = paper.paper_value(table, dataset, method, metric)
    if value is not None:
      return value
  return None


def render_curves(curves, labels) -> str:
  parts = []
  for dataset, by_method in curves.items():
    if not by_method:
      continue
    methods = list(by_method)
    ks = next(iter(by_method.values())).ks
    rows = []
    for i, k in enumerate(ks):
      row = [str(int(k))]
      for m in methods:
        c = by_method[m]
        row.append(f"{c.mean[i]:.4f}" + ("" if c.n < 2 else f" ({c.sd[i]:.4f})"))
      rows.append(row)
    parts.append(f"### {paper.dataset_label(dataset)}\n\n" + report_lib.markdown_table(
        ["k"] + [f"{labels.get(m, m)} (n={by_method[m].n})" for m in methods], rows))
  return "\n\n".join(parts) if parts else "No finished runs to plot."


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging(cli.log_file())
  datasets = cli.check_choices(FLAGS.datasets, KNOWN_DATASETS, "datasets")
  objectives = cli.check_choices(FLAGS.objectives, ("ce", "scl", "lcl"), "objectives")
  seeds = cli.seeds()
  base = cli.base_config()
  specs = [sweep.make_spec(cli.root(), base, dataset=d, objective=o, seed=s)
           for d in datasets for o in objectives for s in seeds]
  execution = cli.execute(specs)

  curves: dict[str, dict[str, entropy.Curve]] = {d: {} for d in datasets}
  for d in datasets:
    for o in objectives:
      per_seed = {spec.config.seed: entropy.run_curve(spec.workdir, split=FLAGS.split)
                  for spec in specs
                  if (spec.config.dataset, spec.config.objective) == (d, o)
                  and spec.key in execution.results}
      if per_seed:
        curves[d][o] = entropy.aggregate(per_seed)

  out_dir = cli.report_dir(NAME)
  labels = cli.method_labels(cli.encoder())
  sections = []
  if any(curves.values()):
    png = entropy.plot(curves, out_dir / "figure2_entropy.png",
                       dataset_labels=paper.DATASET_LABELS, method_labels=labels,
                       methods=objectives,
                       title=f"Top-k entropy, bits ({FLAGS.split}, "
                             f"{cli.encoder_label(cli.encoder())})")
    sections.append(("Figure", f"![top-k entropy]({png.name})"))
  report_lib.write_text_atomic(out_dir / "entropy.csv", entropy.curves_csv(curves))
  report_lib.write_text_atomic(out_dir / "entropy.json", json.dumps(report_lib.json_safe(
      {d: {m: c.as_dict() for m, c in by.items()} for d, by in curves.items()}), indent=2))
  summary_rows = []
  for d, by_method in curves.items():
    for m, c in by_method.items():
      summary_rows.append([paper.dataset_label(d), labels.get(m, m), str(c.n),
                           f"{float(np.mean(c.mean)):.4f}", f"{float(c.mean[0]):.4f}",
                           f"{float(c.mean[-1]):.4f}"])
  sections.append((f"Average top-k entropy ({FLAGS.split} set)", (
      "Mean over seeds of the per-example entropy, in bits (log base 2, as Eq. 7), of "
      "the top-k scores renormalised; lower = more differentiated (at most log2 k "
      "bits). The paper's claim: LCL lowest.\n\n"
      + report_lib.markdown_table(["dataset", "method", "n", "mean over k (bits)",
                                   "k = 2 (bits)", "k = C (bits)"], summary_rows))
      if summary_rows else "–"))
  sections.append(("Curves: mean (sd) per k, bits", render_curves(curves, labels)))

  observations = cli.observations(specs, execution.results)
  cells = report_lib.build_cells(observations, columns=datasets, methods=objectives,
                                 metrics=("accuracy",), split="test", paper=_paper_accuracy)
  report = report_lib.Report(
      name=NAME, title="Figure 2 — entropy of the top-k normalised prediction scores",
      split="test", columns=datasets, methods=objectives, metrics=["accuracy"], cells=cells,
      settings=cli.settings(seeds, entropy_split=FLAGS.split), method_labels=labels,
      sections=sections,
      extra={"entropy": {d: {m: c.as_dict() for m, c in by.items()}
                         for d, by in curves.items()}},
      runs=[report_lib.run_record(o) for o in observations],
      notes=["The accuracy tables are context (the runs behind the curves); the figure's "
             "own numbers (bits) are in entropy.csv / entropy.json."])
  return cli.finish(report, execution, specs=specs, name=NAME)


if __name__ == "__main__":
  cli.run(main)
