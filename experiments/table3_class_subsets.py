r"""Table 3 of the LCL paper: Empathetic Dialogues class subsets (test accuracy).

Columns: all 32 classes, 16, 8, 4-easy, and the four 4-class "hard" subsets a-d; rows
CE / SCL / LCL (mean (sd) over 10 seeds, with the paper's t-tests of LCL against CE and
SCL per column).

The hard subsets are chosen from data, as the paper does: the CE model on all 32
classes (the run of seed --selection_seed, part of the sweep's "32" column) gives a
32 x 32 validation confusion matrix; all C(32, 4) = 35,960 4-class combinations are
scored by the sum of their off-diagonal entries; the best one is taken, its classes
are excluded, and this repeats four times. The report prints the subsets found next
to the paper's (and each paper subset's score under our CE model).
`--hard_subsets=paper` (default) trains the hard columns on the paper's subsets, so
the numbers are comparable with the paper's; `--hard_subsets=found` trains them on the
subsets found here.

The paper's run (ELECTRA-base from the Hugging Face hub):

  python -m experiments.table3_class_subsets --data_dir=../shared/data --workdir=runs/paper

Only some columns, fewer seeds, several runs at once:

  python -m experiments.table3_class_subsets --datasets=32,4_hard_a --seeds=0-2 \
    --parallel_runs=4 --data_dir=../shared/data --workdir=runs/paper

The same command resumes an interrupted sweep; the report goes to
<workdir>/reports/table3/.

The paper's numbers (test accuracy, %, mean of 10 seeds):

  method  32    16    8     4-easy  4-hard-a  4-hard-b  4-hard-c  4-hard-d
  CE      58.1  68.8  78.0  89.2    56.1      63.2      54.3      67.4
  SCL     58.6  67.9  77.0  88.8    55.4      63.7      53.3      68.1
  LCL     60.1  69.6  78.7  88.8    57.5      64.2      55.6      69.5

  The paper's hard subsets: a = anxious, apprehensive, afraid, terrified;
  b = devastated, nostalgic, sad, sentimental; c = angry, ashamed, furious, guilty;
  d = anticipating, excited, hopeful, guilty.
"""
from __future__ import annotations

from typing import Any

from absl import app, flags

from lcl_jax.data import empathetic_dialogues
from lcl_jax.studies import cli, paper_numbers as paper, report as report_lib, sweep
from lcl_jax.studies import table3_class_subsets as subsets

COLUMNS = tuple(paper.TABLE3_SUBSETS)  # "32", "16", "8", "4_easy", "4_hard_a", ...
HARD = ("4_hard_a", "4_hard_b", "4_hard_c", "4_hard_d")
FULL_DATASET = paper.TABLE3_SUBSETS["32"]

cli.define_flags(seeds="0-9", datasets=COLUMNS, objectives=paper.TABLE3_METHODS,
                 datasets_help=f"Columns among {list(COLUMNS)} (or their dataset names, "
                               "e.g. empathetic_dialogues_4_hard_a).")
flags.DEFINE_enum("hard_subsets", "paper", ["paper", "found"],
                  "Train the 4-hard columns on the paper's subsets or on those found here.")
flags.DEFINE_integer("selection_seed", None,
                     "Seed of the 32-class CE run whose validation confusion matrix selects "
                     "the hard subsets (default: the first of --seeds).")
flags.DEFINE_bool("select_subsets", True,
                  "Run the hard-subset selection (trains the 32-class CE run of "
                  "--selection_seed if it is missing). Required by --hard_subsets=found.")
FLAGS = flags.FLAGS

NAME = "table3"
LABELS = empathetic_dialogues.LABELS


def parse_columns(values) -> list[str]:
  by_dataset = {dataset: key for key, dataset in paper.TABLE3_SUBSETS.items()}
  return cli.check_choices([by_dataset.get(v, v) for v in values], COLUMNS, "datasets")


def column_label(key: str, found: bool) -> str:
  label = "ED-32" if key == "32" else paper.dataset_label(paper.TABLE3_SUBSETS[key])
  return label + (" (found)" if found and key in HARD else "")


def select(spec: sweep.RunSpec) -> dict[str, Any] | None:
  """The hard subsets from `spec`'s validation confusion matrix (None if not finished)."""
  if not sweep.is_finished(spec):
    return None
  confusion = subsets.validation_confusion(spec.workdir, len(LABELS))
  found = subsets.select_hard_subsets(confusion, num_subsets=len(HARD), size=4,
                                      label_names=LABELS)
  return {
      "run": spec.key,
      "validation_examples": int(confusion.sum()),
      "combinations_scored": len(subsets.all_combinations(len(LABELS), 4)),
      "found": {key: s.as_dict() for key, s in zip(HARD, found)},
      "paper": {key: {"names": list(names),
                      "score": subsets.subset_score(confusion, names, LABELS)}
                for key, names in paper.PAPER_HARD_SUBSETS.items()},
      "confusion_matrix": confusion.astype(int).tolist(),
      "labels": list(LABELS),
  }


def render_selection(selection: dict[str, Any] | None, selection_key: str) -> str:
  if selection is None:
    return (f"Not available: the selection run `{selection_key}` has not finished "
            "(run without --report_only).")
  rows = []
  exact = 0
  for key in HARD:
    found = selection["found"][key]
    ours = set(found["names"])
    theirs = selection["paper"][key]
    shared = len(ours & set(theirs["names"]))
    best_match = max(len(ours & set(p["names"])) for p in selection["paper"].values())
    exact += int(best_match == 4)
    rows.append([key.replace("4_hard_", "hard-"), ", ".join(found["names"]),
                 f"{found['score']:g}", ", ".join(theirs["names"]), f"{theirs['score']:g}",
                 f"{shared}/4"])
  table = report_lib.markdown_table(
      ["subset", "found here (greedy order)", "score", "paper's subset", "its score here",
       "shared"], rows)
  return (f"From the validation confusion matrix of `{selection['run']}` "
          f"({selection['validation_examples']} validation examples; "
          f"{selection['combinations_scored']:,} 4-class combinations scored by their "
          "off-diagonal sum; best taken, its classes excluded, repeated). "
          f"{exact} of the 4 found subsets equal one of the paper's (as sets).\n\n" + table)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.setup_logging(cli.log_file())
  columns = parse_columns(FLAGS.datasets)
  objectives = cli.check_choices(FLAGS.objectives, paper.TABLE3_METHODS, "objectives")
  seeds = cli.seeds()
  selection_seed = seeds[0] if FLAGS.selection_seed is None else FLAGS.selection_seed
  base = cli.base_config()
  use_found = FLAGS.hard_subsets == "found"

  if use_found and not FLAGS.select_subsets:
    raise app.UsageError("--hard_subsets=found needs --select_subsets")

  # Phase 1: the 32-class CE run that selects the hard subsets.
  selection_spec = sweep.make_spec(cli.root(), base, dataset=FULL_DATASET, objective="ce",
                                   seed=selection_seed)
  if FLAGS.select_subsets:
    first = cli.execute([selection_spec])
    selection = select(selection_spec)
  else:
    first, selection = cli.Execution({}, {}), None

  # Phase 2: every column.
  specs: list[sweep.RunSpec] = []
  column_of: dict[str, str] = {}
  for key in columns:
    for objective in objectives:
      for seed in seeds:
        if use_found and key in HARD:
          if selection is None:
            continue  # reported as not available
          spec = sweep.make_spec(cli.root(), base, dataset=FULL_DATASET, objective=objective,
                                 seed=seed, variant=f"found_{key}",
                                 classes=tuple(selection["found"][key]["names"]))
        else:
          spec = sweep.make_spec(cli.root(), base, dataset=paper.TABLE3_SUBSETS[key],
                                 objective=objective, seed=seed)
        specs.append(spec)
        column_of[spec.key] = key
  execution = first if first.interrupted else cli.execute(specs)
  execution.failed.update(first.failed)
  if not first.interrupted:
    execution.results.update(first.results)

  def paper_lookup(column: str, method: str, metric: str) -> float | None:
    if use_found and column in HARD:
      if selection is None or (set(selection["found"][column]["names"])
                               != set(paper.PAPER_HARD_SUBSETS[column])):
        return None  # a different subset from the paper's: no comparable number
    return paper.paper_value(paper.TABLE3, paper.TABLE3_SUBSETS[column], method, metric)

  observations = cli.observations(specs, execution.results,
                                  column_of=lambda spec: column_of[spec.key])
  cells = report_lib.build_cells(observations, columns=columns, methods=objectives,
                                 metrics=("accuracy",), split="test", paper=paper_lookup)
  report = report_lib.Report(
      name=NAME, title="Table 3 — Empathetic Dialogues class subsets (test set)",
      split="test", columns=columns, methods=objectives, metrics=["accuracy"], cells=cells,
      comparisons=report_lib.compare(cells, method_a="lcl", against=("ce", "scl")),
      settings=cli.settings(seeds, hard_subsets=FLAGS.hard_subsets,
                            selection_run=selection_spec.key),
      column_labels={k: column_label(k, use_found) for k in columns},
      method_labels=cli.method_labels(cli.encoder()),
      sections=[("Hard subsets: found here vs the paper's",
                 render_selection(selection, selection_spec.key)
                 if FLAGS.select_subsets else "Skipped (--noselect_subsets).")],
      extra={"selection": selection},
      runs=[report_lib.run_record(o) for o in observations],
      notes=["With --hard_subsets=found, a hard column shows the paper's number only if "
             "the subset found equals the paper's."])
  return cli.finish(report, execution, name=NAME,
                    specs=specs + ([selection_spec] if FLAGS.select_subsets else []))


if __name__ == "__main__":
  cli.run(main)
