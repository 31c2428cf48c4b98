r"""Tables 4 and 5 of the LCL paper: validation results of the Table 1 / Table 2 runs.

No training: this reads the runs that `table2_sentiment` (Table 4: SST-2 and SST-5
validation accuracy) and `table1_emotion` (Table 5: Empathetic Dialogues, GoEmotions,
ISEAR, EmoInt validation accuracy and weighted F1) left in the same --workdir, at each
run's best-validation epoch. Runs not finished yet are listed as missing.

  python -m experiments.table1_emotion --data_dir=../shared/data --workdir=runs/paper
  python -m experiments.table2_sentiment --data_dir=../shared/data --workdir=runs/paper
  python -m experiments.table4_5_validation --workdir=runs/paper

Writes <workdir>/reports/table4/ and <workdir>/reports/table5/ (report.md,
results.json, results.csv, tests.csv each) and <workdir>/reports/table4_5/report.md
(both).

The paper's numbers (validation, %, mean of 5 seeds):

  Table 4 (accuracy)   SST-2   SST-5
  ELECTRA + CE         94.2    53.3
  ELECTRA + SCL        94.4    54.5
  ELECTRA + LCL        94.8    55.4

  Table 5 (Acc / F1)   EmpatheticDialogues  GoEmotions   ISEAR        EmoInt
  ELECTRA + CE         59.0 / 58.1          66.2 / 65.3  71.7 / 71.7  87.1 / 87.1
  ELECTRA + SCL        58.9 / 57.8          64.9 / 63.7  72.2 / 72.2  87.9 / 87.9
  ELECTRA + LCL        60.3 / 59.7          66.0 / 65.3  72.6 / 72.6  88.8 / 88.9
"""
from __future__ import annotations

import sys

from absl import app, flags

from lcl_jax.studies import cli, paper_numbers as paper, report as report_lib, sweep

ALL_DATASETS = paper.TABLE4_DATASETS + paper.TABLE5_DATASETS
METHODS = ("ce", "scl", "lcl")

cli.define_flags(seeds="0-4", datasets=ALL_DATASETS, objectives=METHODS,
                 datasets_help=f"Datasets among {list(ALL_DATASETS)} (Table 4: SST-2/5).")
FLAGS = flags.FLAGS


def _table(name: str, title: str, datasets, objectives, seeds, metrics, paper_table):
  base = cli.base_config()
  specs = [sweep.make_spec(cli.root(), base, dataset=d, objective=o, seed=s)
           for d in datasets for o in objectives for s in seeds]
  execution = cli.execute(specs, train=False)
  observations = cli.observations(specs, execution.results)
  cells = report_lib.build_cells(observations, columns=list(datasets), methods=objectives,
                                 metrics=metrics, split="validation",
                                 paper=report_lib.table_paper_lookup(paper_table))
  # Label rows by the encoder the runs actually used (this binary trains nothing).
  encoders = sorted({str(o.results.get("encoder")) for o in observations})
  encoder = encoders[0] if len(encoders) == 1 and not FLAGS["encoder"].present else cli.encoder()
  settings = cli.settings(seeds)
  settings["encoder"] = ", ".join(encoders) if encoders else encoder
  settings.pop("weighting_encoder", None)
  report = report_lib.Report(
      name=name, title=title, split="validation", columns=list(datasets), methods=objectives,
      metrics=list(metrics), cells=cells,
      comparisons=report_lib.compare(cells, method_a="lcl", against=("ce", "scl")),
      settings=settings, method_labels=cli.method_labels(encoder),
      runs=[report_lib.run_record(o) for o in observations],
      notes=["No training: validation metrics of the runs of "
             + ("Table 2" if name == "table4" else "Table 1") + " at their best epoch."])
  report.missing = sweep.missing(specs, execution.results)
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging(cli.log_file())
  if FLAGS.parallel_runs != 1 or FLAGS.report_only:
    print("note: table4_5_validation never trains; --parallel_runs/--report_only are moot",
          file=sys.stderr)
  datasets = cli.check_choices(FLAGS.datasets, ALL_DATASETS, "datasets")
  objectives = cli.check_choices(FLAGS.objectives, METHODS, "objectives")
  seeds = cli.seeds()
  parts = []
  t4 = [d for d in paper.TABLE4_DATASETS if d in datasets]
  t5 = [d for d in paper.TABLE5_DATASETS if d in datasets]
  if t4:
    parts.append(_table("table4", "Table 4 — sentiment analysis (validation set)", t4,
                        objectives, seeds, ("accuracy",), paper.TABLE4))
  if t5:
    parts.append(_table("table5", "Table 5 — emotion classification (validation set)", t5,
                        objectives, seeds, ("accuracy", "weighted_f1"), paper.TABLE5))
  combined = []
  for report in parts:
    paths = report_lib.write_report(report, cli.report_dir(report.name))
    combined.append(paths["markdown"].read_text())
    print(f"{report.name}: {paths['markdown']} ({len(report.missing)} runs missing)")
  out = cli.report_dir("table4_5") / "report.md"
  report_lib.write_text_atomic(out, "\n\n".join(combined))
  print(out.read_text())
  print(f"report: {out}")
  found = sum(len(r.runs) for r in parts)
  if found == 0:
    print(f"no finished runs under {cli.root()}: run table1_emotion / table2_sentiment "
          "with the same --workdir first", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  cli.run(main)
