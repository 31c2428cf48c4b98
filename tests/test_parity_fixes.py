"""Issue 22 (train as well and as fast as a plain PyTorch + transformers loop): the
transformers head on Φ (`--head=hf`), the head printed with the results, ties of the
selection metric broken by validation loss, the test-subset note, the host allocator
and the JAX process that never imports torch.
"""
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
import transformers

from lcl_jax import models
from lcl_jax.data import batching
from lcl_jax.models import pretrained
from lcl_jax.train import config as config_lib
from lcl_jax.train import data_pipeline, inference, objectives, trainer
from lcl_jax.train.config import TrainConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _save_random(tmp_path_factory, name, model):
  path = tmp_path_factory.mktemp(name)
  model.save_pretrained(path)
  return path


@pytest.fixture(scope="module")
def electra_dir(tmp_path_factory):
  torch.manual_seed(0)
  config = transformers.ElectraConfig(vocab_size=100, embedding_size=16, hidden_size=32,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=32)
  return _save_random(tmp_path_factory, "electra", transformers.ElectraModel(config))


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory):
  torch.manual_seed(0)
  config = transformers.RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64,
                                      max_position_embeddings=40, pad_token_id=1)
  return _save_random(tmp_path_factory, "roberta", transformers.RobertaModel(config))


def test_hf_head_on_bert_is_transformers_sequence_classification(tiny_bert_dir):
  """--head=hf on a BERT checkpoint: the pre-trained pooler -> dropout -> new linear,
  logits equal to transformers' BertForSequenceClassification with the same weights."""
  modules, params = objectives.build_networks(
      objectives.get_spec("ce"), encoder=str(tiny_bert_dir),
      weighting_encoder=str(tiny_bert_dir), num_classes=3, rng=jax.random.key(0),
      primary_head="hf")
  module, p = modules["primary"], params["primary"]
  assert isinstance(module, models.BertSequenceClassifier)
  reference = transformers.BertForSequenceClassification.from_pretrained(
      tiny_bert_dir, num_labels=3).eval()
  # The pooler is the checkpoint's (pre-trained), not a new layer.
  np.testing.assert_allclose(np.asarray(p["head"]["pooler"]["dense"]["kernel"]),
                             reference.bert.pooler.dense.weight.detach().numpy().T)
  with torch.no_grad():  # our new classifier layer into the torch model
    reference.classifier.weight.copy_(torch.from_numpy(
        np.asarray(p["head"]["classifier"]["kernel"]).T.copy()))
    reference.classifier.bias.copy_(torch.from_numpy(np.array(p["head"]["classifier"]["bias"])))
  ids = np.random.default_rng(0).integers(1000, 2000, (3, 9)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 6:] = 0
  ours = module.apply({"params": p}, ids, mask, np.zeros_like(ids)).logits
  with torch.no_grad():
    theirs = reference(input_ids=torch.from_numpy(ids).long(),
                       attention_mask=torch.from_numpy(mask).long()).logits.numpy()
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=2e-5)


def test_hf_head_follows_the_architecture(electra_dir, roberta_dir):
  for directory, expected in ((electra_dir, "electra"), (roberta_dir, "roberta")):
    config = models.EncoderConfig.from_json_file(directory / "config.json")
    assert models.sequence_classification_head_for(config) == expected
    assert models.resolve_head("hf", config) == expected
    assert models.resolve_head("paper", config) == "paper"
    module, _ = models.build_classifier("hf", directory, 4, rng=jax.random.key(0))
    assert type(module) is models.CLASSIFIERS[expected]


def test_predict_builds_the_hf_head_the_trainer_trained(tiny_bert_dir, tmp_path):
  cfg = TrainConfig(dataset="synthetic", objective="lcl", encoder=str(tiny_bert_dir),
                    head="hf", workdir=str(tmp_path)).resolved()
  modules = inference._network_modules(cfg, num_classes=5)
  ids = jax.numpy.zeros((1, 2), jax.numpy.int32)
  shapes = {name: jax.eval_shape(module.init, jax.random.key(0), ids, ids)["params"]
            for name, module in modules.items()}
  _, params = objectives.build_networks(
      objectives.get_spec("lcl"), encoder=cfg.encoder, weighting_encoder=cfg.encoder,
      num_classes=5, rng=jax.random.key(0), primary_head="hf")
  assert isinstance(modules["primary"], models.BertSequenceClassifier)
  assert (jax.tree.map(np.shape, shapes) == jax.tree.map(np.shape, params))


def test_head_label_and_the_flag_choices():
  paper = TrainConfig(objective="ce")
  assert "hf" in config_lib.PRIMARY_HEADS and config_lib.PRIMARY_HEADS == models.classifiers.PRIMARY_HEADS
  bert_module = models.BertSequenceClassifier.__new__(models.BertSequenceClassifier)
  assert trainer.head_label(paper, object()) == "paper"
  assert trainer.head_label(TrainConfig(objective="ce", head="hf"), bert_module) == \
      "hf (BertForSequenceClassification)"
  assert trainer.head_label(TrainConfig(objective="bert_ce"), bert_module) == \
      "hf (BertForSequenceClassification)"
  with pytest.raises(ValueError, match="--head"):
    TrainConfig(head="pooler").validate()


def test_results_table_names_the_head_and_a_test_subset():
  from experiments.train import format_results_table
  row = {"objective": "ce", "head": "hf (BertForSequenceClassification)", "best_epoch": 2,
         "multilabel": False, "selection_metric": "accuracy", "dataset": "emoint",
         "encoder": "minilm", "seed": 0, "validation": {"accuracy": 0.5},
         "test": {"accuracy": 0.5, "weighted_f1": 0.4, "macro_f1": 0.3},
         "sequences_per_second": 10.0, "test_subset": {"examples": 64, "of": 3142}}
  table = format_results_table([row])
  assert "| head " in table and "hf (BertForSequenceClassification)" in table
  assert "subset of 64 of the 3,142 test examples (--max_eval_examples)" in table
  assert "subset" not in format_results_table([{**row, "test_subset": None}])


def test_results_table_says_one_seed_cannot_separate_the_methods():
  """Issue 20 item 3: the embedded default's one-seed table says so under it; a command
  that ran several seeds (one table per seed) does not print the line."""
  from experiments.train import ONE_SEED_NOTE, format_results_table
  rows = [{"objective": o, "best_epoch": 3, "multilabel": False, "selection_metric": "accuracy",
           "dataset": "synthetic", "encoder": "minilm", "seed": 0,
           "validation": {"accuracy": 0.5}, "test": {"accuracy": a, "weighted_f1": a,
                                                     "macro_f1": a}}
          for o, a in (("ce", 0.7), ("scl", 0.5444), ("lcl", 0.7333))]
  table = format_results_table(rows)
  assert "| lcl " in table and "73.33" in table
  lines = table.splitlines()
  assert lines[lines.index(next(l for l in lines if l.startswith("| lcl"))) + 1] == ONE_SEED_NOTE
  assert "cannot separate the methods" in ONE_SEED_NOTE
  assert ONE_SEED_NOTE not in format_results_table(rows, seeds_run=3)
  assert ONE_SEED_NOTE not in format_results_table(rows[:1])  # one method: nothing to separate


def test_prepared_data_reports_a_cut_test_split(tmp_path):
  common = dict(dataset="synthetic", objective="ce", encoder="minilm", seed=0,
                baseline_views="texts", workdir=str(tmp_path / "a"))
  full = data_pipeline.prepare(TrainConfig(**common).resolved(), num_devices=1)
  assert full.test_subset() is None
  cut = data_pipeline.prepare(TrainConfig(**common, max_eval_examples=7).resolved(),
                              num_devices=1)
  assert cut.test_subset() == {"examples": 7, "of": full.split_sizes()["test"]}


def _progress(*epochs):
  history = [{"epoch": i + 1, "validation": {"accuracy": acc, "loss": loss}}
             for i, (acc, loss) in enumerate(epochs)]
  best = max(range(len(epochs)), key=lambda i: (epochs[i][0], -epochs[i][1]))
  return {"history": history, "best_epoch": best + 1, "best_value": epochs[best][0]}


def test_selection_ties_are_broken_by_validation_loss():
  assert trainer._improves({"history": [], "best_epoch": None, "best_value": None}, 0.0, 9.0)
  progress = _progress((0.0, 1.2))
  assert trainer._improves(progress, 0.0, 1.1)      # same metric, lower loss: better
  assert not trainer._improves(progress, 0.0, 1.2)  # same metric, same loss: keep the first
  assert not trainer._improves(progress, 0.0, 1.3)
  assert trainer._improves(progress, 0.1, 5.0)      # a higher metric wins whatever the loss
  assert not trainer._improves(_progress((0.5, 0.4), (0.3, 0.1)), 0.4, 0.01)


def test_default_buckets_are_one_definition_and_pad_little():
  assert config_lib.DEFAULT_LENGTH_BUCKETS == batching.DEFAULT_BUCKETS
  assert TrainConfig().length_buckets == batching.DEFAULT_BUCKETS
  buckets = batching.resolve_buckets(batching.DEFAULT_BUCKETS, 64)
  assert buckets == (8, 16, 24, 32, 40, 48, 56, 64)
  for length in range(3, 65):  # at most 1/8 of a row (or 7 tokens) of padding up to 64
    padded = batching._bucket_for(length, buckets)
    assert length <= padded <= length + 7


_FAULTS_SCRIPT = r"""
import ctypes, resource, sys, threading
sys.path.insert(0, sys.argv[1])
from lcl_jax.train import host_memory
applied = host_memory.reuse_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
size = 256 * 1024 * 1024
faults = []
def step():  # an XLA-like step: a big buffer malloc'ed, written and freed in a worker thread
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  p = libc.malloc(size)
  ctypes.memset(p, 1, size)
  libc.free(ctypes.c_void_p(p))
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
for _ in range(3):
  t = threading.Thread(target=step); t.start(); t.join()
print(applied, faults[-1])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_host_memory_keeps_big_thread_buffers_from_being_refaulted():
  def run(env_value):
    env = dict(os.environ, LCL_JAX_HOST_MALLOC=env_value)
    out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, str(PROJECT_ROOT)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])
  applied, faults = run("")
  untouched, system_faults = run("system")
  assert applied and not untouched
  pages = 256 * 1024 * 1024 // 4096
  assert system_faults >= pages // 2  # glibc's default: a fresh mmap every time
  assert faults < pages // 20         # reused from the heap: (almost) no new pages


def test_a_training_process_never_imports_torch(tmp_path):
  """The tokenizer and the TensorBoard writer without torch (~250 MB, ~1.5 s)."""
  script = (
      "import sys; sys.path.insert(0, sys.argv[1])\n"
      "from lcl_jax.models import pretrained\n"
      "from lcl_jax.train import trainer\n"
      "tok = pretrained.load_tokenizer(str(pretrained.minilm_checkpoint_dir()))\n"
      "outputs = trainer._Outputs(__import__('pathlib').Path(sys.argv[2]), True)\n"
      "outputs.write({'kind': 'train', 'step': 1, 'loss': 0.5}); outputs.close()\n"
      "print(type(tok).__name__, 'torch' in sys.modules)\n")
  out = subprocess.run([sys.executable, "-c", script, str(PROJECT_ROOT), str(tmp_path)],
                       capture_output=True, text=True, check=True).stdout.split()
  assert out == ["BertTokenizer", "False"]
  assert list((tmp_path / "tensorboard").iterdir())


def test_named_tokenizer_class_equals_autotokenizer(minilm_dir, roberta_dir, tmp_path):
  texts = ["Hello WORLD, ça va? #tag @user", "word " * 40]
  ours = pretrained.load_tokenizer(str(minilm_dir))
  theirs = transformers.AutoTokenizer.from_pretrained(str(minilm_dir), use_fast=True)
  assert type(ours) is type(theirs)
  assert ours(texts, truncation=True, max_length=12) == theirs(texts, truncation=True,
                                                                max_length=12)
  # No tokenizer_config.json naming a class: AutoTokenizer decides (the fallback path).
  for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
    if (minilm_dir / name).exists():
      (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
  assert pretrained._named_tokenizer_class(tmp_path) is None
  fallback = pretrained.load_tokenizer(str(tmp_path))
  assert fallback(texts)["input_ids"] == theirs(texts)["input_ids"]


def test_hf_head_ce_steps_equal_a_pytorch_transformers_loop(tiny_bert_dir, tmp_path):
  """Same weights, same batches of the data pipeline, dropout off: lcl_jax's CE training
  steps (--head=hf) and the parity benchmark's PyTorch loop (AdamW eps 1e-6, decay mask,
  clipping, linear schedule) give the same losses step after step and the same weights."""
  from benchmarks.pytorch_loop import lockstep
  cfg = TrainConfig(dataset="synthetic", objective="ce", encoder=str(tiny_bert_dir),
                    baseline_views="texts", texts_per_batch=8, max_length=32,
                    workdir=str(tmp_path)).resolved()
  data = data_pipeline.prepare(cfg, num_devices=1)
  batches = list(data.train_batches(0))[:6]
  out = lockstep(str(tiny_bert_dir), batches, data.num_classes, learning_rate=1e-3,
                 total_steps=8)
  assert out["max_relative_loss_difference"] < 1e-5, out
  # The loss moved (the steps did something) and the weights agree after six updates.
  assert abs(out["losses_torch"][-1] - out["losses_torch"][0]) > 1e-3
  assert max(out["max_abs_param_difference"].values()) < 1e-5, out


def test_on_cpu_checkpoint_writes_finish_before_the_next_step(tiny_bert_dir, data_dir,
                                                              tmp_path, monkeypatch):
  """On CPU the asynchronous writes' host copies would share memory with the next steps'
  buffers (+0.7 GB peak on EmoInt/MiniLM): the loop waits for every save (periodic and
  epoch-end) before it dispatches another step."""
  from lcl_jax.train import checkpoint as checkpoint_lib
  events = []
  for name in ("save_latest", "save_best", "wait"):
    original = getattr(checkpoint_lib.RunCheckpoints, name)
    def record(self, *args, _name=name, _original=original, **kwargs):
      events.append(_name)
      return _original(self, *args, **kwargs)
    monkeypatch.setattr(checkpoint_lib.RunCheckpoints, name, record)
  original_step = trainer._Loop._train_step
  def step(self, *args, **kwargs):
    events.append("step")
    return original_step(self, *args, **kwargs)
  monkeypatch.setattr(trainer._Loop, "_train_step", step)
  cfg = TrainConfig(dataset="isear", objective="ce", encoder=str(tiny_bert_dir),
                    data_dir=str(data_dir), workdir=str(tmp_path), epochs=2,
                    baseline_views="texts", max_train_examples=40, max_eval_examples=16,
                    texts_per_batch=8, eval_batch_size=16, max_length=16,
                    length_buckets=(16,), checkpoint_every_steps=2, progress_bar=False)
  trainer.train(cfg)
  assert jax.default_backend() == "cpu"
  saves = [i for i, e in enumerate(events) if e.startswith("save")]
  assert events.count("save_latest") >= 4 and "save_best" in events  # periodic + epoch ends
  for i in saves:
    following = events[i + 1:]
    next_step = following.index("step") if "step" in following else len(following)
    assert "wait" in following[:next_step], events


def test_orbax_advice_after_a_deliberate_wait_is_dropped():
  """`CheckpointManager.save` counts our own waits as its wait for the previous save and
  logs "consider checkpointing less frequently"; that line is filtered, others are not."""
  import inspect
  import logging
  import orbax.checkpoint as ocp
  from lcl_jax.train import checkpoint  # noqa: F401  (installs the filter)
  message = "Waiting for previous save to complete took %f seconds. If this"
  assert message in inspect.getsource(ocp.CheckpointManager.save)  # orbax still says it
  absl = logging.getLogger("absl")
  def record(msg):
    return logging.LogRecord("absl", logging.WARNING, __file__, 1, msg, (2.5,), None)
  assert not absl.filter(record(message + " number is high, consider ..."))
  assert absl.filter(record("another orbax warning %f"))
