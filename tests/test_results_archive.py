"""The results archive (`--results_archive`, `sweep.ResultsArchive`; issue 20 item 2).

A sweep that spans sessions loses its run folders (checkpoints) between them; the
archive keeps each finished run's small outputs in a folder meant for git, and a run
archived with the same config counts as finished. Here: the archive is written after a
run, results.json last and with no temporary file left; a second sweep with the archive
and no run folders trains nothing and returns the same results; an archived run of
another config is refused naming its file; `progress` says where a sweep stands; and,
through the real binary on a tiny BERT, `table1_emotion --preset=cpu` archives its run,
renders the same report from the archive alone, and refuses a changed flag.
"""
import json
import pathlib
import shutil
import subprocess
import sys
import types

import pytest
from conftest import binary_env  # tests/ is on sys.path (rootdir conftest)

import lcl_jax.train
from lcl_jax.studies import sweep
from lcl_jax.train.config import TrainConfig
from lcl_jax.train.resume import ConfigMismatchError

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def fake_trainer(monkeypatch):
  """A trainer double: writes config.json, metrics.jsonl, a plot and results.json."""
  calls = []

  def train_group(configs):
    out = []
    for cfg in configs:
      calls.append(cfg.workdir)
      workdir = pathlib.Path(cfg.workdir)
      (workdir / "plots").mkdir(parents=True, exist_ok=True)
      # As the trainer: the config with the dataset's presets filled in.
      saved = {"config": json.loads(cfg.resolved().to_json())}
      (workdir / "config.json").write_text(json.dumps(saved))
      (workdir / "metrics.jsonl").write_text(
          json.dumps({"kind": "train", "step": 4, "epoch": 1.0, "loss": 0.5}) + "\n")
      (workdir / "plots" / "loss.png").write_bytes(b"\x89PNG fake")
      (workdir / "checkpoints").mkdir(exist_ok=True)
      (workdir / "checkpoints" / "big").write_bytes(b"x" * 1000)
      results = {"dataset": cfg.dataset, "objective": cfg.objective, "seed": cfg.seed,
                 "test": {"accuracy": 0.5 + cfg.seed / 100}, "history": [{"epoch": 1}]}
      (workdir / "results.json").write_text(json.dumps(results))
      out.append(results)
    return out

  module = types.ModuleType("lcl_jax.train.trainer")
  module.train_group = train_group
  module.TrainingInterrupted = type("TrainingInterrupted", (RuntimeError,), {})
  monkeypatch.setitem(sys.modules, "lcl_jax.train.trainer", module)
  monkeypatch.setattr(lcl_jax.train, "trainer", module, raising=False)
  return calls


def _specs(root, **overrides):
  base = TrainConfig(**{"encoder": "minilm", "epochs": 1, **overrides})
  return [sweep.make_spec(root, base, dataset="emoint", objective=o, seed=s)
          for o in ("ce", "lcl") for s in (0, 1)]


def test_archive_is_written_after_each_run_and_replaces_lost_run_folders(tmp_path, fake_trainer):
  log_file = tmp_path / "binary.log"
  log_file.write_text("".join(f"line {i}\n" for i in range(300)))
  archive = sweep.ResultsArchive(tmp_path / "archive", log_file=log_file)
  specs = _specs(tmp_path / "runs")
  outcome = sweep.run_sweep(specs, runs_per_program=2, archive=archive)
  assert len(fake_trainer) == 4
  for spec in specs:
    folder = archive.folder(spec)
    assert folder == tmp_path / "archive" / spec.key
    for name in ("results.json", "config.json", "metrics.jsonl", "plots/loss.png"):
      assert (folder / name).read_bytes() == (spec.workdir / name).read_bytes(), name
    tail = (folder / sweep.LOG_TAIL_FILE).read_text().splitlines()
    assert len(tail) == sweep.LOG_TAIL_LINES and tail[-1] == "line 299"
    assert not (folder / "checkpoints").exists()
  leftovers = [p for p in (tmp_path / "archive").rglob("*") if ".tmp" in p.name]
  assert leftovers == []

  # A new session: the run folders are gone; the archive alone finishes every run.
  shutil.rmtree(tmp_path / "runs")
  fake_trainer.clear()
  again = sweep.run_sweep(specs, runs_per_program=2, archive=archive)
  assert fake_trainer == [] and sorted(again.already_finished) == sorted(s.key for s in specs)
  assert again.results == outcome.results
  assert sweep.collect(specs, archive=archive) == outcome.results
  status = sweep.progress(specs, archive=archive)
  assert status.startswith("progress: 4 of 4 runs finished, 0 to run")
  assert "finished  emoint/lcl/seed1  (archive; test accuracy 51.00%)" in status


def test_a_folder_without_results_json_is_not_an_archived_run(tmp_path, fake_trainer):
  archive = sweep.ResultsArchive(tmp_path / "archive")
  specs = _specs(tmp_path / "runs")[:1]
  folder = archive.folder(specs[0])
  folder.mkdir(parents=True)
  (folder / "config.json").write_text(json.dumps({"config": json.loads(specs[0].config.to_json())}))
  sweep.run_sweep(specs, archive=archive)  # an interrupted archiving: the run trains again
  assert fake_trainer == [specs[0].config.workdir]
  assert (folder / "results.json").is_file()


def test_finished_run_folders_are_archived_at_the_start(tmp_path, fake_trainer):
  specs = _specs(tmp_path / "runs")
  sweep.run_sweep(specs)  # no archive yet
  fake_trainer.clear()
  archive = sweep.ResultsArchive(tmp_path / "archive")
  sweep.run_sweep(specs, archive=archive)
  assert fake_trainer == []
  assert all((archive.folder(s) / "results.json").is_file() for s in specs)


def test_an_archived_run_of_another_config_is_refused_naming_the_file(tmp_path, fake_trainer):
  archive = sweep.ResultsArchive(tmp_path / "archive")
  sweep.run_sweep(_specs(tmp_path / "runs"), archive=archive)
  shutil.rmtree(tmp_path / "runs")
  fake_trainer.clear()
  changed = _specs(tmp_path / "runs", max_length=32)
  config = archive.folder(changed[0]) / "config.json"
  with pytest.raises(ConfigMismatchError, match="max_length: 128 -> 32") as error:
    sweep.run_sweep(changed, archive=archive)
  assert str(config) in str(error.value)
  assert fake_trainer == []  # refused before anything trained
  with pytest.raises(ConfigMismatchError, match="max_length"):
    sweep.collect(changed, archive=archive)
  # The folder paths, data_dir and progress bar are not part of the comparison.
  moved = _specs(tmp_path / "elsewhere", data_dir=str(tmp_path), progress_bar=False)
  assert set(sweep.collect(moved, archive=archive)) == {s.key for s in moved}


def test_progress_names_the_step_and_epoch_of_unfinished_runs(tmp_path):
  specs = _specs(tmp_path / "runs", epochs=3)
  running = specs[2]
  running.workdir.mkdir(parents=True)
  records = [{"kind": "train", "step": 20, "epoch": 0.5, "loss": 1.25},
             {"kind": "epoch", "step": 40, "epoch": 1},
             {"kind": "train", "step": 50, "epoch": 1.25, "loss": 0.75}]
  (running.workdir / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in records) + '{"kind": "train", "st')
  status = sweep.progress(specs)
  assert status.splitlines()[0] == "progress: 0 of 4 runs finished, 4 to run"
  assert ("running   emoint/lcl/seed0  step 50 of 120 (epoch 1.25 of 3; loss 0.7500"
          in status)
  assert "to run    emoint/ce/seed0  (not started)" in status


@pytest.fixture(scope="module")
def binary(tmp_path_factory, tiny_bert_dir, data_dir):
  root = tmp_path_factory.mktemp("table1_cpu")
  env = binary_env(data_dir)
  # The cpu preset with a tiny BERT and smoke-sized data; explicit flags win over it.
  args = ["--preset=cpu", "--smoke", f"--encoder={tiny_bert_dir}", f"--data_dir={data_dir}",
          f"--workdir={root / 'runs'}", f"--results_archive={root / 'archive'}",
          f"--report_dir={root / 'reports'}", "--datasets=emoint", "--objectives=ce",
          "--seeds=0"]

  def run(*extra, expect=0):
    proc = subprocess.run([sys.executable, "-m", "experiments.table1_emotion", *args, *extra],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == expect, f"exit {proc.returncode}:\n{output[-6000:]}"
    return output

  return {"root": root, "run": run}


def test_binary_archives_then_reports_from_the_archive_alone(binary):
  root, run = binary["root"], binary["run"]
  first = run()
  assert "1 runs, 0 already finished, 1 to run" in first
  archived = root / "archive" / "emoint" / "ce" / "seed0"
  run_dir = root / "runs" / "smoke" / "emoint" / "ce" / "seed0"
  assert (archived / "results.json").read_bytes() == (run_dir / "results.json").read_bytes()
  assert not (archived / "checkpoints").exists()
  report = root / "reports" / "table1" / "report.md"
  text = report.read_text()
  # The preset's label, with the values in force (smoke: 1 epoch, max_length 32).
  assert "CPU scale: tiny_bert" in text and "1 epochs, max_length 32, 2-core CPU" in text
  assert "- preset: `cpu`" in text and "/ 85.5 |" in text  # the paper's ELECTRA + CE beside

  shutil.rmtree(root / "runs")
  second = run()
  assert "1 runs, 1 already finished (1 of them only in the archive" in second
  assert "0 to run" in second and not (root / "runs" / "smoke" / "emoint").exists()
  assert report.read_text() == text

  stamp = report.stat().st_mtime_ns
  status = run("--status")
  assert "progress: 1 of 1 runs finished, 0 to run" in status
  assert "finished  emoint/ce/seed0  (archive; test accuracy" in status
  assert "| MiniLM + CE |" not in status and "tiny_bert0 + CE" in status  # the report
  assert report.stat().st_mtime_ns == stamp  # read-only


def test_binary_refuses_an_archive_of_another_config(binary):
  out = binary["run"]("--alpha=0.7", expect=2)
  config = binary["root"] / "archive" / "emoint" / "ce" / "seed0" / "config.json"
  assert f"error: {config}: the run archived as emoint/ce/seed0" in out
  assert "alpha: 0.5 -> 0.7" in out
