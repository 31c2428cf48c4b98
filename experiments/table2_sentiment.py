r"""Table 2 of the LCL paper: sentiment analysis (test accuracy on SST-5 and SST-2).

Rows: ELECTRA + CE / SCL / LCL (mean (sd) over 5 seeds, with the paper's t-tests of LCL
against SCL and CE), beside the published results the paper quotes.

The paper's run (ELECTRA-base from the Hugging Face hub):

  python -m experiments.table2_sentiment --data_dir=../shared/data --workdir=runs/paper

A reduced run with the packaged MiniLM encoder:

  python -m experiments.table2_sentiment --encoder=minilm --datasets=sst5 --seeds=0-2 \
    --epochs=2 --data_dir=../shared/data --workdir=runs/minilm

`--parallel_runs=N [--devices_per_run=D]` runs N at once; the same command resumes an
interrupted sweep; `--report_only` re-renders <workdir>/reports/table2/report.md.

The paper's numbers (test accuracy, %, mean of 5 seeds):

  method          SST-5   SST-2
  ELECTRA + CE    57.1    94.4
  ELECTRA + SCL   57.4    94.3
  ELECTRA + LCL   58.5    94.5
  published: BERT 53.2 / 93.5, RoBERTa 56.2 / 94.8, SentiBERT 57.8 / 94.7,
             SentiLARE 58.6 / -, SKEP - / 96.7, ELECTRA - / 93.4
"""
from __future__ import annotations

from absl import app, flags

from lcl_jax.studies import cli, paper_numbers as paper, report as report_lib, sweep

cli.define_flags(seeds="0-4", datasets=paper.TABLE2_DATASETS, objectives=paper.TABLE2_METHODS,
                 datasets_help=f"Datasets among {list(paper.TABLE2_DATASETS)}.")
FLAGS = flags.FLAGS

NAME = "table2"
METRICS = ("accuracy",)


def run_specs(datasets, objectives, seeds) -> list[sweep.RunSpec]:
  base = cli.base_config()
  return [sweep.make_spec(cli.root(), base, dataset=d, objective=o, seed=s)
          for d in datasets for o in objectives for s in seeds]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging(cli.log_file())
  datasets = cli.check_choices(FLAGS.datasets, paper.TABLE2_DATASETS, "datasets")
  objectives = cli.check_choices(FLAGS.objectives, paper.TABLE2_METHODS, "objectives")
  seeds = cli.seeds()
  specs = run_specs(datasets, objectives, seeds)
  execution = cli.execute(specs)
  observations = cli.observations(specs, execution.results)
  cells = report_lib.build_cells(observations, columns=datasets, methods=objectives,
                                 metrics=METRICS, split="test",
                                 paper=report_lib.table_paper_lookup(paper.TABLE2))
  report = report_lib.Report(
      name=NAME, title="Table 2 — sentiment analysis (test set)", split="test",
      columns=datasets, methods=objectives, metrics=list(METRICS), cells=cells,
      comparisons=report_lib.compare(cells, method_a="lcl", against=("ce", "scl")),
      settings=cli.settings(seeds), method_labels=cli.method_labels(cli.encoder()),
      reference_rows={label: dict(values)
                      for label, values in paper.TABLE2_PUBLISHED.items()},
      runs=[report_lib.run_record(o) for o in observations],
      notes=["Published rows are the results the paper quotes from other work (paper "
             "column only)."])
  return cli.finish(report, execution, specs=specs, name=NAME)


if __name__ == "__main__":
  cli.run(main)
