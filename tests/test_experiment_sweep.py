"""The sweep: layout, skipping finished runs, resuming, failures, parallel workers.

The trainer is replaced by a recording double here (these tests are about which runs
the sweep starts, on which devices, and what it does with their outcomes); the real
trainer runs in tests/test_experiment_binaries.py.
"""
import contextlib
import json
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest

import lcl_jax.train
from lcl_jax.studies import sweep
from lcl_jax.train.config import TrainConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


class _Interrupted(RuntimeError):
  pass


@pytest.fixture
def fake_trainer(monkeypatch):
  """trainer.train that records its calls; dataset 'fail' raises, 'interrupt' is preempted."""
  calls = []

  def train(cfg):
    calls.append(cfg.workdir)
    if cfg.dataset == "fail":
      raise RuntimeError("boom")
    if cfg.dataset == "interrupt":
      raise _Interrupted("SIGTERM at step 3")
    results = {"dataset": cfg.dataset, "objective": cfg.objective, "seed": cfg.seed}
    pathlib.Path(cfg.workdir).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(cfg.workdir) / "results.json").write_text(json.dumps(results))
    return results

  _install_trainer(monkeypatch, train)
  return calls


def _install_trainer(monkeypatch, train):
  """Replaces lcl_jax.train.trainer by a module whose `train` is `train` and whose
  `train_group` trains its runs one by one with it (the sweep calls train_group)."""
  module = types.ModuleType("lcl_jax.train.trainer")
  module.train = train
  module.train_group = lambda configs: [train(c) for c in configs]
  module.TrainingInterrupted = _Interrupted
  monkeypatch.setitem(sys.modules, "lcl_jax.train.trainer", module)
  monkeypatch.setattr(lcl_jax.train, "trainer", module, raising=False)


def _specs(root, datasets=("isear",), objectives=("ce", "lcl"), seeds=(0, 1)):
  base = TrainConfig(encoder="minilm", epochs=1)
  return [sweep.make_spec(root, base, dataset=d, objective=o, seed=s)
          for d in datasets for o in objectives for s in seeds]


def test_layout_and_spec_fields(tmp_path):
  base = TrainConfig(encoder="minilm", epochs=3)
  spec = sweep.make_spec(tmp_path, base, dataset="isear", objective="lcl", seed=4,
                         variant="lr2e-05", learning_rate=2e-5)
  assert spec.key == "isear/lr2e-05/lcl/seed4"
  assert spec.workdir == tmp_path / "isear" / "lr2e-05" / "lcl" / "seed4"
  assert (spec.config.dataset, spec.config.objective, spec.config.seed) == ("isear", "lcl", 4)
  assert spec.config.learning_rate == 2e-5 and spec.config.epochs == 3
  assert base.workdir == "runs/default"  # the base is not modified
  with pytest.raises(ValueError, match="folder name"):
    sweep.run_key("a/b", "ce", 0)


def test_parse_seeds():
  assert sweep.parse_seeds(["0-4"]) == [0, 1, 2, 3, 4]
  assert sweep.parse_seeds(["3", "0", "1-2", "3"]) == [0, 1, 2, 3]
  for bad in (["x"], ["4-1"], []):
    with pytest.raises(ValueError):
      sweep.parse_seeds(bad)


def test_finished_runs_are_skipped_and_collected(tmp_path, fake_trainer):
  specs = _specs(tmp_path)
  done = specs[1]
  done.workdir.mkdir(parents=True)
  done.results_path.write_text(json.dumps({"seed": 1, "marker": "old"}))
  outcome = sweep.run_sweep(specs + specs[:1])  # a repeated spec is merged
  assert fake_trainer == [s.config.workdir for s in specs if s is not done]
  assert outcome.already_finished == [done.key]
  assert outcome.results[done.key] == {"seed": 1, "marker": "old"}
  assert set(outcome.results) == {s.key for s in specs}
  # A second sweep trains nothing.
  fake_trainer.clear()
  again = sweep.run_sweep(specs)
  assert fake_trainer == [] and len(again.already_finished) == len(specs)
  assert sweep.collect(specs) == again.results
  assert sweep.missing(specs + _specs(tmp_path, seeds=(9,)), again.results) == \
      ["isear/ce/seed9", "isear/lcl/seed9"]


def test_conflicting_specs_in_one_folder_are_an_error(tmp_path, fake_trainer):
  a = _specs(tmp_path)[0]
  b = sweep.RunSpec(a.key, TrainConfig(**{**a.config.__dict__, "epochs": 7}))
  with pytest.raises(ValueError, match="share the folder"):
    sweep.run_sweep([a, b])


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path, fake_trainer):
  specs = _specs(tmp_path, datasets=("fail", "isear"), objectives=("ce",), seeds=(0,))
  outcome = sweep.run_sweep(specs)
  assert outcome.failed == {"fail/ce/seed0": "RuntimeError: boom"}
  assert list(outcome.results) == ["isear/ce/seed0"]
  with pytest.raises(RuntimeError, match="boom"):
    sweep.run_sweep(specs, fail_fast=True)


def test_interruption_stops_the_sweep(tmp_path, fake_trainer):
  specs = _specs(tmp_path, datasets=("interrupt", "isear"), objectives=("ce",), seeds=(0,))
  with pytest.raises(sweep.SweepInterrupted, match="interrupt/ce/seed0"):
    sweep.run_sweep(specs)
  assert fake_trainer == [specs[0].config.workdir]  # the later run was not started


def test_device_slots():
  assert sweep.device_slots(8, 4) == [(0, 1), (2, 3), (4, 5), (6, 7)]
  assert sweep.device_slots(8, 3, 2) == [(0, 1), (2, 3), (4, 5)]
  assert sweep.device_slots(3, 3) == [(0,), (1,), (2,)]
  with pytest.raises(ValueError, match="does not fit"):
    sweep.device_slots(4, 3, 2)
  with pytest.raises(ValueError, match="does not fit"):
    sweep.device_slots(2, 3)


def test_device_env_per_platform():
  env = sweep.device_env("gpu", (2, 3), slot=1, base={"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
  assert env["CUDA_VISIBLE_DEVICES"] == "6,7"  # mapped through the parent's restriction
  assert env["HIP_VISIBLE_DEVICES"] == "2,3"
  env = sweep.device_env("gpu", (0,), slot=0, base={})
  assert env["CUDA_VISIBLE_DEVICES"] == "0"
  with pytest.raises(ValueError, match="exceed"):
    sweep.device_env("gpu", (2,), slot=0, base={"CUDA_VISIBLE_DEVICES": "0,1"})
  t0 = sweep.device_env("tpu", (0, 1), slot=0, base={})
  t1 = sweep.device_env("tpu", (2, 3), slot=1, base={})
  assert t1["TPU_VISIBLE_CHIPS"] == "2,3" and t1["TPU_CHIPS_PER_PROCESS_BOUNDS"] == "1,2,1"
  assert t1["TPU_PROCESS_BOUNDS"] == "1,1,1"
  assert t0["TPU_PROCESS_PORT"] != t1["TPU_PROCESS_PORT"]
  assert t1["TPU_PROCESS_ADDRESSES"] == f"localhost:{t1['TPU_PROCESS_PORT']}"
  with pytest.raises(ValueError, match="3 chips"):
    sweep.device_env("tpu", (0, 1, 2), slot=0, base={})
  cpu = sweep.device_env("cpu", (0, 1), slot=0, base={
      "XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=8"})
  assert cpu["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=2"
  with pytest.raises(ValueError, match="platform"):
    sweep.device_env("metal", (0,), slot=0, base={})


# A stand-in worker: records its environment and timing; 'fail' exits 3; 'hang' runs until
# SIGTERM and then exits like an interrupted trainer (143).
_FAKE_WORKER = textwrap.dedent("""
    import json, os, pathlib, signal, sys, time
    cfg = json.loads(sys.argv[1])
    wd = pathlib.Path(cfg["workdir"])
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    start = time.time()
    (wd / "started").write_text(str(start))
    if cfg["dataset"] == "fail":
        print("worker traceback here"); sys.exit(3)
    deadline = start + (60 if cfg["dataset"] == "hang" else 0.5)
    while time.time() < deadline:
        if stop:
            (wd / "terminated").write_text("1"); sys.exit(143)
        time.sleep(0.02)
    env = {k: os.environ.get(k) for k in ("XLA_FLAGS", "CUDA_VISIBLE_DEVICES")}
    (wd / "results.json").write_text(json.dumps({"seed": cfg["seed"], "env": env,
        "start": start, "end": time.time(), "progress_bar": cfg["progress_bar"]}))
""")


def _fake_command(config):
  return [sys.executable, "-c", _FAKE_WORKER, config.to_json()]


def test_parallel_workers_run_on_disjoint_slots(tmp_path, monkeypatch):
  monkeypatch.setattr(sweep, "worker_command", _fake_command)
  specs = _specs(tmp_path, datasets=("isear", "fail"), objectives=("ce",), seeds=(0, 1, 2))
  outcome = sweep.run_sweep(specs, parallel_runs=2, devices_per_run=2, platform="cpu",
                            num_devices=4, poll_seconds=0.05)
  assert set(outcome.failed) == {"fail/ce/seed0", "fail/ce/seed1", "fail/ce/seed2"}
  assert "status 3" in outcome.failed["fail/ce/seed0"]
  assert "worker traceback here" in (tmp_path / "fail/ce/seed0/worker.log").read_text()
  ok = [outcome.results[f"isear/ce/seed{s}"] for s in range(3)]
  assert all(r["env"]["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=2")
             for r in ok)
  assert not any(r["progress_bar"] for r in ok)
  # Never more than 2 workers at once.
  intervals = [(r["start"], r["end"]) for r in ok]
  for t, _ in intervals:
    assert sum(s <= t < e for s, e in intervals) <= 2


def test_parallel_gpu_workers_get_their_own_device(tmp_path, monkeypatch):
  monkeypatch.setattr(sweep, "worker_command", _fake_command)
  monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
  specs = _specs(tmp_path, objectives=("ce",), seeds=(0, 1))
  outcome = sweep.run_sweep(specs, parallel_runs=2, platform="gpu", num_devices=2,
                            poll_seconds=0.05)
  got = sorted(r["env"]["CUDA_VISIBLE_DEVICES"] for r in outcome.results.values())
  assert got == ["0", "1"]


def test_sigterm_is_forwarded_to_the_workers(tmp_path):
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {str(PROJECT_ROOT)!r})
      sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})
      import test_experiment_sweep as t
      from lcl_jax.studies import sweep
      sweep.worker_command = t._fake_command
      specs = t._specs({str(tmp_path)!r}, datasets=("hang",), objectives=("ce",), seeds=(0, 1, 2))
      try:
          sweep.run_sweep(specs, parallel_runs=2, platform="cpu", num_devices=2,
                          poll_seconds=0.05)
      except sweep.SweepInterrupted as e:
          print("INTERRUPTED", e); sys.exit(143)
      sys.exit(0)
  """)
  proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  started = [tmp_path / f"hang/ce/seed{s}/started" for s in (0, 1)]
  deadline = time.time() + 60
  while not all(p.exists() for p in started):
    assert time.time() < deadline and proc.poll() is None, proc.stdout.read()
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=60)
  assert proc.returncode == 143, out
  assert "INTERRUPTED" in out
  for s in (0, 1):
    assert (tmp_path / f"hang/ce/seed{s}/terminated").exists()
  assert not (tmp_path / "hang/ce/seed2/started").exists()  # the queued run never started


# --------------------------------------------------------------------------------------
# Issue 14 item 21: a sweep stopped by SIGTERM (e.g. `timeout`) says so and rewrites its
# report marked incomplete, whenever the signal lands.


class _UnhandledSigterm(Exception):
  pass


@contextlib.contextmanager
def _safety_sigterm_handler():
  """Makes a SIGTERM the sweep fails to handle an exception (not the death of pytest)."""
  def handler(signum, frame):
    raise _UnhandledSigterm("SIGTERM reached the handler outside the sweep")

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield handler
  finally:
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_outside_a_training_loop_interrupts_the_in_process_sweep(tmp_path, monkeypatch):
  """The signal lands while a run prepares (no trainer handler installed yet): the sweep
  raises SweepInterrupted (not a failure, not death by SIGTERM), starts nothing more and
  restores the previous handler."""
  import os
  calls = []

  def train(cfg):
    calls.append(cfg.dataset)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises at the next bytecode
    raise AssertionError("SIGTERM was not turned into SweepInterrupted")

  _install_trainer(monkeypatch, train)
  specs = _specs(tmp_path, datasets=("isear", "emoint"), objectives=("ce",), seeds=(0,))
  with _safety_sigterm_handler() as before:
    with pytest.raises(sweep.SweepInterrupted, match=r"isear/ce/seed0.*SIGTERM"):
      sweep.run_sweep(specs)
    assert signal.getsignal(signal.SIGTERM) is before
  assert calls == ["isear"]


def test_sigterm_handled_by_the_trainer_in_a_last_epoch_stops_the_sweep(tmp_path, monkeypatch):
  """The trainer's own SIGTERM flag lets a run in its last epoch finish; on leaving it
  hands the signal on, so the sweep stops before the next run."""
  import os

  from lcl_jax.train import trainer as real_trainer
  calls = []

  def train(cfg):
    calls.append(cfg.dataset)
    with real_trainer._StopSignals() as flag:
      os.kill(os.getpid(), signal.SIGTERM)
      deadline = time.time() + 5
      while not flag.raised and time.time() < deadline:
        time.sleep(0.01)
      assert flag.raised
    raise AssertionError("the SIGTERM was not handed on")

  _install_trainer(monkeypatch, train)
  specs = _specs(tmp_path, datasets=("isear", "emoint"), objectives=("ce",), seeds=(0,))
  with _safety_sigterm_handler():
    with pytest.raises(sweep.SweepInterrupted, match="isear/ce/seed0"):
      sweep.run_sweep(specs)
  assert calls == ["isear"]


_REPORTING_SWEEP = textwrap.dedent("""
    import json, pathlib, sys, time, types
    sys.path.insert(0, {root!r})
    from absl import flags
    from lcl_jax.studies import cli, report as report_lib, sweep
    from lcl_jax.train.config import TrainConfig

    def train(cfg):
      if cfg.seed == 1:  # the second run: announce, then hang in "data loading"
        (pathlib.Path({tmp!r}) / "second_started").write_text("1")
        time.sleep(60)
      results = {{"dataset": cfg.dataset, "objective": cfg.objective, "seed": cfg.seed,
                  "test": {{"accuracy": 0.5}}, "validation": {{"accuracy": 0.5}}}}
      pathlib.Path(cfg.workdir).mkdir(parents=True, exist_ok=True)
      (pathlib.Path(cfg.workdir) / "results.json").write_text(json.dumps(results))
      return results

    module = types.ModuleType("lcl_jax.train.trainer")
    module.train, module.TrainingInterrupted = train, RuntimeError
    module.train_group = lambda configs: [train(c) for c in configs]
    sys.modules["lcl_jax.train.trainer"] = module
    cli.define_flags(seeds="0-2", datasets=["isear"], objectives=["ce"])
    flags.FLAGS(["sweep", "--workdir={tmp}", "--encoder=minilm"])
    specs = [sweep.make_spec(cli.root(), TrainConfig(encoder="minilm", epochs=1),
                             dataset="isear", objective="ce", seed=s) for s in cli.seeds()]
    execution = cli.execute(specs)
    cells = report_lib.build_cells(cli.observations(specs, execution.results),
                                   columns=["isear"], methods=["ce"], metrics=("accuracy",),
                                   split="test", paper=lambda *a: None)
    report = report_lib.Report(name="t", title="T", split="test", columns=["isear"],
                               methods=["ce"], metrics=["accuracy"], cells=cells)
    sys.exit(cli.finish(report, execution, specs=specs, name="t"))
""")


def test_sweep_killed_by_sigterm_rewrites_its_report_marked_incomplete(tmp_path):
  """`timeout`'s SIGTERM during the second of three runs: exit 143, the INTERRUPTED line
  on the console, and the previous invocation's report.md replaced by one marked
  INCOMPLETE that lists the runs still to do."""
  old = tmp_path / "reports" / "t" / "report.md"
  old.parent.mkdir(parents=True)
  old.write_text("# OLD REPORT of a previous invocation\n")
  script = _REPORTING_SWEEP.format(root=str(PROJECT_ROOT), tmp=str(tmp_path))
  proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while not (tmp_path / "second_started").exists():
    assert time.time() < deadline and proc.poll() is None, proc.communicate()
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=60)
  assert proc.returncode == sweep.INTERRUPTED_EXIT_CODE, (out, err)
  assert "INTERRUPTED:" in err and "marked INCOMPLETE" in err, err
  assert "isear/ce/seed1" in err and "isear/ce/seed2" in err
  md = old.read_text()
  assert "OLD REPORT" not in md
  assert "INCOMPLETE" in md and "2 run(s) still to do" in md
  assert "to do: `isear/ce/seed1`" in md and "to do: `isear/ce/seed2`" in md
  data = json.loads((old.parent / "results.json").read_text())
  assert data["complete"] is False and "SIGTERM" in data["interrupted"]
  assert data["missing"] == ["isear/ce/seed1", "isear/ce/seed2"]


def test_runs_per_program_groups_runs_that_differ_only_in_seed(tmp_path, monkeypatch):
  """--runs_per_program=S: the runs of one cell (dataset, objective, settings) go to
  trainer.train_group S at a time, in order; other cells and single leftovers run alone;
  a group's failure is recorded for each of its runs."""
  calls = []

  def train(cfg):
    calls.append([cfg.workdir])
    if cfg.dataset == "fail":
      raise RuntimeError("boom")
    return {"seed": cfg.seed}

  def train_group(configs):
    calls.append([c.workdir for c in configs])
    if any(c.dataset == "fail" for c in configs):
      raise RuntimeError("boom")
    return [{"seed": c.seed} for c in configs]

  _install_trainer(monkeypatch, train)
  sys.modules["lcl_jax.train.trainer"].train_group = train_group
  specs = _specs(tmp_path, datasets=("isear", "fail"), objectives=("ce", "lcl"),
                 seeds=(0, 1, 2))
  other_alpha = sweep.make_spec(tmp_path, TrainConfig(encoder="minilm", epochs=1),
                                dataset="isear", objective="ce", seed=7, variant="a",
                                alpha=0.3)
  other_lr = sweep.make_spec(tmp_path, TrainConfig(encoder="minilm", epochs=1),
                             dataset="isear", objective="ce", seed=8, variant="lr",
                             learning_rate=1e-3)
  outcome = sweep.run_sweep(specs + [other_alpha, other_lr], runs_per_program=2)
  key = lambda workdir: str(pathlib.Path(workdir).relative_to(tmp_path))
  assert [[key(w) for w in call] for call in calls] == [
      ["isear/ce/seed0", "isear/ce/seed1"], ["isear/ce/seed2", "isear/a/ce/seed7"],
      ["isear/lcl/seed0", "isear/lcl/seed1"], ["isear/lcl/seed2"],
      ["fail/ce/seed0", "fail/ce/seed1"], ["fail/ce/seed2"],
      ["fail/lcl/seed0", "fail/lcl/seed1"], ["fail/lcl/seed2"], ["isear/lr/ce/seed8"]]
  assert sorted(outcome.failed) == sorted(s.key for s in specs if s.config.dataset == "fail")
  assert outcome.results["isear/a/ce/seed7"] == {"seed": 7}
  with pytest.raises(ValueError, match="--runs_per_program=0"):
    sweep.run_sweep(specs, runs_per_program=0)


def test_run_in_process_takes_a_policy(tmp_path, fake_trainer):
  """The in-process path with another policy (as experiments/train.py's): `announce`
  before each program (the groups and its index), `failed` after a program raised:
  True records and goes on, False re-raises the error as it is."""
  events = []

  class Policy(sweep.RunPolicy):
    def announce(self, groups, index):
      events.append(("announce", index, [s.key for s in groups[index]]))

    def failed(self, group, error, outcome):
      events.append(("failed", [s.key for s in group], str(error)))
      outcome.failed[group[0].key] = "recorded"
      return group[0].config.objective == "ce"

  specs = _specs(tmp_path, datasets=("fail",), objectives=("ce", "lcl"), seeds=(0,))
  ok = _specs(tmp_path, datasets=("isear",), objectives=("ce",), seeds=(0,))
  outcome = sweep.SweepOutcome()
  with pytest.raises(RuntimeError, match="^boom$"):
    sweep.run_in_process([[ok[0]], [specs[0]], [specs[1]], [ok[0]]], outcome,
                         policy=Policy())
  assert events == [("announce", 0, ["isear/ce/seed0"]), ("announce", 1, ["fail/ce/seed0"]),
                    ("failed", ["fail/ce/seed0"], "boom"), ("announce", 2, ["fail/lcl/seed0"]),
                    ("failed", ["fail/lcl/seed0"], "boom")]
  assert outcome.results == {"isear/ce/seed0": {"dataset": "isear", "objective": "ce",
                                                "seed": 0}}
  assert outcome.failed == {"fail/ce/seed0": "recorded", "fail/lcl/seed0": "recorded"}
  assert len(fake_trainer) == 3
