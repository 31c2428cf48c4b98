"""The absl flags and steps every experiment binary shares.

A binary calls :func:`define_flags` at import (with its own defaults for seeds,
datasets and objectives), then in `main`: :func:`root` / :func:`seeds` /
:func:`base_config` to build its run specs, :func:`execute` to run them (skipping
finished runs, resuming interrupted ones, several at once with `--parallel_runs`), and
:func:`finish` to write the report and exit with a status that says whether every run
finished (0), some failed (1) or the sweep was interrupted (143, re-run to resume).

`--smoke` shrinks every run to a few steps on tiny subsets (the pipeline end to end in
seconds per run; CI) and keeps its runs under `<workdir>/smoke` so that they never mix
with real ones.

`--preset=<name>` (binaries that define presets: :class:`Preset`) sets a named group of
flags at once, e.g. Table 1's `cpu` (MiniLM, fewer epochs, shorter texts, S runs in one
program, a git-tracked results archive). Every flag is read through :func:`value`:
a flag given on the command line wins, then --smoke's settings, then the preset's, then
the flag's default.

`--results_archive=<folder>` keeps each finished run's small outputs (results.json with
its per-epoch history, config.json, metrics.jsonl, plots, the log's tail; never
checkpoints) in `<folder>/<run key>/` (`sweep.ResultsArchive`): a folder meant for git,
so that a sweep spanning sessions whose run folders are lost resumes from its finished
runs. `--status` prints the sweep's progress (finished runs, remaining runs, the step
and epoch an unfinished run's records reached) and the report so far, training and
writing nothing (safe beside the running sweep).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
import sys
from typing import Any, Mapping, Sequence

from absl import app, flags

from lcl_jax.studies import paper_numbers, report as report_lib, sweep
from lcl_jax.train import run_flags
from lcl_jax.train.config import TrainConfig

FLAGS = flags.FLAGS
# The flags defined below (by the functions of this module) are key flags of the binary
# that calls them, so its --help lists them (not only --helpfull).
flags.disclaim_key_flags()
log = logging.getLogger("lcl_jax.studies")

# What --smoke sets (unless the flag is given explicitly).
SMOKE_SETTINGS: dict[str, Any] = {
    "epochs": 1,
    "max_train_examples": 40,
    "max_eval_examples": 40,
    "max_steps_per_epoch": 2,
    "max_length": 32,
    "length_buckets": ["32"],
    "eval_batch_size": 40,
}
SMOKE_SEEDS = 2
SMOKE_ENCODER = "minilm"


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named group of flag values (`--preset=<name>`) of one binary.

  Attributes:
    flags: flag name -> value in the flag's parsed form (a list flag's list of strings,
      an integer flag's int); any flag of the binary, run flags included.
    label: a line naming the scale of the runs (report title, settings), formatted with
      the values in force: {encoder} (display name), {epochs}, {max_length}.
    help: one line for --help.
  """
  flags: dict[str, Any]
  label: str = ""
  help: str = ""


_PRESETS: dict[str, Preset] = {}


def define_flags(*, seeds: str, datasets: Sequence[str], objectives: Sequence[str],
                 datasets_help: str = "Datasets (columns) to run.",
                 workdir: str = "runs/paper",
                 presets: Mapping[str, Preset] | None = None) -> None:
  """Defines the shared flags with this binary's defaults (and its `presets`, if any:
  then also --preset)."""
  run_flags.define_run_flags(
      encoder_default=paper_numbers.ELECTRA_BASE,
      encoder_help=("Encoder checkpoint: a hub id (the paper: "
                    f"{paper_numbers.ELECTRA_BASE}), a local Hugging Face checkpoint "
                    "folder, or 'minilm' (the packaged all-MiniLM-L6-v2)."))
  flags.DEFINE_string("workdir", workdir,
                      "Root of the sweep: runs in <workdir>/<dataset>/<objective>/seed<k>, "
                      "reports in <workdir>/reports/<name>. Binaries given the same "
                      "--workdir share runs. --smoke uses <workdir>/smoke.")
  flags.DEFINE_list("seeds", [seeds], "Seeds: integers and ranges, e.g. 0-4 or 0,3,7.")
  flags.DEFINE_list("datasets", list(datasets), datasets_help)
  flags.DEFINE_list("objectives", list(objectives), "Objectives (table rows) to run.")
  flags.DEFINE_bool("smoke", False,
                    "Tiny subsets, 1 epoch of 2 steps, max length 32, the first "
                    f"{SMOKE_SEEDS} seeds, and (unless --encoder is given) the packaged "
                    "MiniLM: exercises the whole pipeline offline in minutes (CI).")
  flags.DEFINE_integer("parallel_runs", 1,
                       "Runs at once. 1: in-process, each run data-parallel over all "
                       "devices. >1: worker subprocesses, each on its own devices.")
  flags.DEFINE_integer("devices_per_run", None,
                       "Devices of each concurrent run (default: local devices / "
                       "parallel_runs). GPU: CUDA_VISIBLE_DEVICES; TPU: TPU_VISIBLE_CHIPS "
                       "(1, 2, 4 or 8 chips); CPU: virtual devices.")
  flags.DEFINE_integer("runs_per_program", 1,
                       "Train up to this many runs that differ only in seed (and alpha / "
                       "temperature) in ONE jitted program (jax.vmap over the runs; each "
                       "keeps its own folder, checkpoints and results). 1: one run at a "
                       "time. Needs --parallelism=jit. The gain is on accelerators.",
                       lower_bound=1)
  flags.DEFINE_bool("fail_fast", False, "Stop at the first failed run (default: go on "
                    "with the others and report the failure).")
  flags.DEFINE_bool("report_only", False,
                    "Train nothing: render the report from the runs already finished.")
  flags.DEFINE_string("report_dir", None, "Reports go to <report_dir>/<name> (default "
                      "<workdir>/reports).")
  flags.DEFINE_string("results_archive", None,
                      "Keep each finished run's small outputs (results.json, config.json, "
                      "metrics.jsonl, plots, log tail; no checkpoints) in "
                      "<results_archive>/<dataset>/<objective>/seed<k>/, written when the "
                      "run finishes. A run archived there with the same config counts as "
                      "finished (its run folder may be gone: e.g. a new session); one "
                      "archived with another config is refused, naming the file.")
  flags.DEFINE_bool("status", False,
                    "Train nothing and write nothing: print the sweep's progress (finished "
                    "runs, remaining runs, the step / epoch each unfinished run reached) "
                    "and the report of the runs finished so far. Safe while the sweep runs.")
  _PRESETS.clear()
  _PRESETS.update(presets or {})
  if _PRESETS:
    flags.DEFINE_enum("preset", None, list(_PRESETS),
                      "A named group of flag values; flags given explicitly win. "
                      + " ".join(f"{name}: {p.help}" for name, p in _PRESETS.items()))


def preset() -> Preset | None:
  """The --preset in force (None without one; None in a binary that defines its own
  --preset flag instead of `define_flags(presets=...)`, e.g. hparam_search's grids)."""
  name = FLAGS["preset"].value if _PRESETS else None
  return _PRESETS[name] if name else None


def value(name: str) -> Any:
  """A flag's value in force: given on the command line, else --smoke's setting, else
  the --preset's, else the flag's default."""
  if FLAGS[name].present:
    return FLAGS[name].value
  if FLAGS.smoke and name in SMOKE_SETTINGS:
    return SMOKE_SETTINGS[name]
  chosen = preset()
  if chosen is not None and name in chosen.flags:
    return chosen.flags[name]
  return FLAGS[name].value


def scale_label() -> str | None:
  """The --preset's label with the values in force ("CPU scale: MiniLM, 3 epochs, ..."),
  or None without a preset label."""
  chosen = preset()
  if chosen is None or not chosen.label:
    return None
  base = base_config()
  return chosen.label.format(encoder=encoder_label(encoder()), epochs=base.epochs,
                             max_length=base.max_length)


def encoder() -> str:
  """--encoder; with --smoke and no --encoder, the packaged MiniLM (works offline)."""
  if FLAGS.smoke and not FLAGS["encoder"].present:
    return SMOKE_ENCODER
  return value("encoder")


def root() -> pathlib.Path:
  """The sweep root: --workdir, or <workdir>/smoke with --smoke."""
  path = pathlib.Path(value("workdir"))
  return path / "smoke" if FLAGS.smoke else path


def report_dir(name: str) -> pathlib.Path:
  chosen = value("report_dir")
  reports = pathlib.Path(chosen) if chosen else root() / "reports"
  return reports / name


def archive() -> "sweep.ResultsArchive | None":
  """The --results_archive (None without one); the binary's log tail goes with each run."""
  folder = value("results_archive")
  return sweep.ResultsArchive(folder, log_file=log_file()) if folder else None


def seeds() -> list[int]:
  """--seeds as integers (the first SMOKE_SEEDS with --smoke and no --seeds).

  Raises:
    app.UsageError: a value that is not an integer or a range (names --seeds).
  """
  given = value("seeds")
  try:
    values = sweep.parse_seeds(given)
  except ValueError as e:
    raise app.UsageError(f"--seeds={','.join(given)}: {e}") from None
  if FLAGS.smoke and not FLAGS["seeds"].present:
    values = values[:SMOKE_SEEDS]
  return values


def base_config() -> TrainConfig:
  """The settings every run of this binary shares (dataset/objective/seed set per run).

  Raises:
    app.UsageError: a flag's value cannot be read (names the flag), or a path flag
      names nothing (`run_flags.check_paths`).
  """
  try:
    config = run_flags.run_config(value=value, encoder=encoder())
    run_flags.check_paths(config)
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from None
  return config


def program_name() -> str:
  """The binary's short name (`table1_emotion` for `python -m experiments.table1_emotion`)."""
  spec = getattr(sys.modules.get("__main__"), "__spec__", None)
  name = spec.name if spec is not None and spec.name else pathlib.Path(sys.argv[0]).stem
  return name.rsplit(".", 1)[-1] or "lcl_jax"


def log_file() -> pathlib.Path:
  """Where the binary's full log goes: `<sweep root>/logs/<program>.log` (appended)."""
  return root() / "logs" / f"{program_name()}.log"


def check_choices(values: Sequence[str], allowed: Sequence[str], flag: str) -> list[str]:
  """`values` if all are in `allowed`, else a clear error naming the flag."""
  bad = [v for v in values if v not in allowed]
  if bad:
    raise app.UsageError(f"--{flag}: {bad} not among {list(allowed)}")
  if not values:
    raise app.UsageError(f"--{flag} is empty")
  return list(dict.fromkeys(values))


def encoder_label(encoder: str) -> str:
  """A short display name of an encoder checkpoint."""
  if encoder == paper_numbers.ELECTRA_BASE:
    return "ELECTRA"
  if encoder == paper_numbers.BERT_BASE:
    return "BERT-base"
  if encoder == "minilm":
    return "MiniLM"
  return pathlib.PurePath(encoder.rstrip("/")).name or encoder


def method_labels(encoder: str, bert_encoder: str | None = None) -> dict[str, str]:
  """Row labels naming the encoder actually used ("MiniLM + LCL", ...)."""
  name = encoder_label(encoder)
  labels = {m: f"{name} + {m.upper()}" for m in ("ce", "scl", "lcl")}
  labels["bert_ce"] = f"{encoder_label(bert_encoder or paper_numbers.BERT_BASE)} + CE (BERT head)"
  return labels


def command_line() -> str:
  """How this binary was invoked (`python -m experiments.<name> ...` when run with -m)."""
  from lcl_jax.train import model_card  # pylint: disable=g-import-not-at-top
  return model_card.invocation()


def settings(seeds_used: Sequence[int], **extra: Any) -> dict[str, Any]:
  """The report's settings block."""
  base = base_config()
  out = {
      "command": command_line(),
      "encoder": encoder(),
      "weighting_encoder": value("weighting_encoder") or encoder(),
      "paper encoder": paper_numbers.ELECTRA_BASE,
      "seeds": list(seeds_used),
      "workdir": str(root()),
      "data_dir": value("data_dir") or os.environ.get("LCL_DATA_DIR"),
      "epochs": base.epochs,
      "max_length": base.max_length,
      "smoke": FLAGS.smoke,
      "preset": FLAGS["preset"].value if _PRESETS else None,
      "scale": scale_label(),
      "results_archive": value("results_archive"),
  }
  for name in ("learning_rate", "alpha", "temperature", "patience", "max_train_examples",
               "max_eval_examples", "max_steps_per_epoch"):
    setting = getattr(base, name)
    if setting is not None:
      out[name] = setting
  # Which reading of the release the runs follow (issue 14; see TrainConfig).
  out["baseline_views"] = base.baseline_views
  out["lcl_views"] = base.lcl_views  # issue 18: seed 001's LCL on the texts alone
  out["contrastive_reduction"] = base.contrastive_reduction  # mean (paper) | sum (001)
  out["adam_epsilon_mode"] = base.adam_epsilon_mode
  out["view_seed"] = "per seed" if base.view_seed is None else base.view_seed
  out["head_init"] = base.head_init
  # Φ's head of the ce/scl/lcl rows ('paper': the LCL release's; 'hf': the checkpoint's
  # transformers head; bert_ce rows always have BertForSequenceClassification's).
  out["head"] = base.head
  out.update(extra)
  return out


@dataclasses.dataclass
class Execution:
  """The outcome of `execute`: finished results (key -> results), failures, interruption."""
  results: dict[str, dict[str, Any]]
  failed: dict[str, str]
  interrupted: str | None = None


def execute(specs: Sequence[sweep.RunSpec], *, train: bool | None = None) -> Execution:
  """Runs the unfinished specs (unless --report_only or --status) and collects every
  finished one (from the run folders and the --results_archive)."""
  store = archive()
  if FLAGS.status:
    print(sweep.progress(specs, archive=store), flush=True)
  if train is None:
    train = not (FLAGS.report_only or FLAGS.status)
  if not train:
    return Execution(sweep.collect(specs, archive=store), {})
  try:
    outcome = sweep.run_sweep(specs, parallel_runs=value("parallel_runs"),
                              devices_per_run=value("devices_per_run"),
                              fail_fast=FLAGS.fail_fast,
                              runs_per_program=value("runs_per_program"), archive=store)
  except sweep.SweepInterrupted as e:
    log.warning("%s", e)
    return Execution(sweep.collect(specs, archive=store), {}, interrupted=str(e))
  return Execution(outcome.results, outcome.failed)


def observations(specs: Sequence[sweep.RunSpec], results: dict[str, dict[str, Any]], *,
                 column_of=None) -> list[report_lib.Observation]:
  """Observations of the finished specs; `column_of(spec)` defaults to the dataset."""
  store = archive()
  out = []
  for spec in sweep.dedupe(specs):
    if spec.key in results:
      column = column_of(spec) if column_of else spec.config.dataset
      # With an archive its copy is the run's lasting folder (plots linked from there).
      workdir = store.folder(spec) if store is not None else spec.workdir
      out.append(report_lib.Observation(column, spec.config.objective, spec.config.seed,
                                        results[spec.key], spec.key, str(workdir)))
  return out


def finish(report: report_lib.Report, execution: Execution, *,
           specs: Sequence[sweep.RunSpec], name: str) -> int:
  """Fills the report's run lists, writes it, prints it; returns the exit status."""
  report.missing = sweep.missing(sweep.dedupe(specs), execution.results)
  report.failed = dict(execution.failed)
  report.interrupted = execution.interrupted
  if FLAGS.status:  # a read-only look (the sweep may be running): nothing is written
    print(report_lib.render_markdown(report, report_dir(name)))
    return 0
  paths = report_lib.write_report(report, report_dir(name))
  print(paths["markdown"].read_text())
  print(f"report: {paths['markdown']}\nresults: {paths['json']}, {paths['csv']}")
  if execution.interrupted:
    print(f"INTERRUPTED: {execution.interrupted}\n{paths['markdown']} was rewritten and "
          f"marked INCOMPLETE: {len(report.missing)} run(s) still to do "
          f"({', '.join(report.missing) or 'none'}); re-run the same command to resume.",
          file=sys.stderr, flush=True)
    return sweep.INTERRUPTED_EXIT_CODE
  if execution.failed:
    print(f"{len(execution.failed)} run(s) failed: {sorted(execution.failed)}", file=sys.stderr)
    return 1
  return 0


class _ConsoleFormatter(logging.Formatter):
  """Our messages as a tool prints them: the bare text; 'warning: ' / 'error: ' before
  those levels (no absl date/file prefix)."""

  def format(self, record: logging.LogRecord) -> str:
    message = super().format(record)
    if record.levelno >= logging.WARNING:
      return f"{record.levelname.lower()}: {message}"
    return message


_HANDLER_MARK = "_lcl_jax_cli_handler"


class _LazyFileHandler(logging.FileHandler):
  """A log file created (with its folder) at the first message, not before: a command
  refused on a bad flag or file writes nothing (issue 18)."""

  def __init__(self, path: pathlib.Path):
    super().__init__(path, encoding="utf-8", delay=True)

  def _open(self):
    pathlib.Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
    return super()._open()


def _writable(path: pathlib.Path) -> bool:
  """Whether `path` could be created or appended to (its nearest existing ancestor is a
  writable folder), without creating anything."""
  if path.exists():
    return path.is_file() and os.access(path, os.W_OK)
  parent = path.parent
  while not parent.exists() and parent != parent.parent:
    parent = parent.parent
  return parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def _log_file_open() -> bool:
  return any(isinstance(h, _LazyFileHandler) and h.stream is not None
             for h in logging.getLogger("lcl_jax").handlers)


def verbose() -> bool:
  """--verbosity >= 1 (absl's -v): debug messages and tracebacks of user errors."""
  return FLAGS.is_parsed() and FLAGS["verbosity"].value >= 1


def setup_logging(log_file: str | os.PathLike | None = None) -> None:
  """Console: lcl_jax's INFO messages without absl's prefixes (DEBUG with --verbosity=1);
  the libraries at WARNING (orbax logs every checkpoint write at INFO) unless --verbosity
  is given. `log_file`: also append everything (lcl_jax DEBUG, tracebacks, library
  warnings) with timestamps to that file, created at the first message (so a command
  refused before any message leaves no file)."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  if not FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
  ours = logging.getLogger("lcl_jax")
  ours.setLevel(logging.DEBUG)
  ours.propagate = False  # not through absl's handler (its prefixes)
  root = logging.getLogger()
  for logger in (ours, root):
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
      logger.removeHandler(handler)
      handler.close()
  console = logging.StreamHandler(sys.stderr)
  console.setLevel(logging.DEBUG if verbose() else logging.INFO)
  console.setFormatter(_ConsoleFormatter("%(message)s"))
  setattr(console, _HANDLER_MARK, True)
  ours.addHandler(console)
  if log_file is not None:
    path = pathlib.Path(log_file)
    if _writable(path):
      file_handler = _LazyFileHandler(path)
    else:  # e.g. a finished run's read-only workdir: console only
      print(f"warning: no log file ({path} cannot be written); messages go to the console "
            "only", file=sys.stderr)
      file_handler = None
  if log_file is not None and file_handler is not None:
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    setattr(file_handler, _HANDLER_MARK, True)
    ours.addHandler(file_handler)
    root.addHandler(file_handler)
  os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
  from lcl_jax.train import compilation_cache, host_memory  # pylint: disable=g-import-not-at-top
  host_memory.reuse_freed_memory()  # before XLA starts its threads
  # predict / evaluate define no --compilation_cache: the default folder then.
  compilation_cache.enable(FLAGS["compilation_cache"].value if "compilation_cache" in FLAGS
                           else None)


def user_error_types() -> tuple[type[BaseException], ...]:
  """Errors caused by the user's input (not bugs): a missing file, checkpoint or hub id
  offline, WordNet missing, an unknown label, a changed config on resume, a bad input
  file. The binaries print their message alone (the traceback with --verbosity=1)."""
  # pylint: disable=g-import-not-at-top
  from lcl_jax.data.augment import WordNetNotFoundError
  from lcl_jax.data.files import MalformedRowError, UnknownLabelError
  from lcl_jax.inference.use import InputError
  from lcl_jax.models.config import ConfigError
  from lcl_jax.train.trainer import ConfigMismatchError
  return (FileNotFoundError, WordNetNotFoundError, UnknownLabelError, MalformedRowError,
          ConfigMismatchError, ConfigError, InputError, app.UsageError, DiskFullError)


class DiskFullError(OSError):
  """A write failed because the disk (or the file-size limit, `ulimit -f`) is full."""


def disk_full_error(error: BaseException | None) -> DiskFullError | None:
  """`error` (or an error in its cause/context chain: orbax wraps the OSError) as one
  DiskFullError saying "disk full / file too large while writing <path>", or None."""
  import errno  # pylint: disable=g-import-not-at-top
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
      path = error.filename or "a file"
      return DiskFullError(f"disk full / file too large while writing {path} "
                           f"({error.strerror}); free space (or raise `ulimit -f`) and "
                           "re-run the same command to resume")
    error = error.__cause__ or error.__context__
  return None


def report_user_errors(main):
  """Wraps a binary's `main(argv)`: a user error (`user_error_types`, app.UsageError
  included, and a full disk: `disk_full_error`) prints one `error: ...` line and exits
  with status 2; --verbosity=1 shows the traceback (it always goes to the log file)."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      error = e if isinstance(e, user_error_types()) else disk_full_error(e)
      if error is None or verbose():
        raise
      if _log_file_open():  # (a refused command creates no log file for it)
        log.debug("traceback of the error below", exc_info=True)
      print(f"error: {error}", file=sys.stderr)
      print("(run with --verbosity=1 for the traceback)", file=sys.stderr)
      return 2

  return wrapped


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with the error contract: a flag that cannot be parsed (an
  unknown flag, `--epochs=abc`) prints one `error: ...` line and exits with status 2."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e}", file=sys.stderr)
    print(f"(see --help for the flags of {program_name()})", file=sys.stderr)
    sys.exit(2)


def run(main) -> None:
  """`app.run` of a binary's main with the error contract (`parse_flags`,
  `report_user_errors`)."""
  app.run(report_user_errors(main), flags_parser=parse_flags)
