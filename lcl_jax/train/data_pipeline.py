"""Everything a run needs from the data side, prepared once per run.

Loads the three splits, optionally takes fixed random subsets (smoke runs), tokenises
with the encoder's tokenizer, builds the augmented views of the training texts (one
fixed view per text as in the paper, cached in the workdir; or a fresh view per
epoch), and wraps `lcl_jax.data.batching` for the trainer: host-local training
batches for `(epoch, start_step)` and evaluation batches, padded to a multiple of the
global device count.

Training batches are paired (K texts + their K views) unless the run is a baseline
with `baseline_views='texts'` or LCL with `lcl_views='texts'` (then K texts, no views
are made; `TrainConfig.trains_on_views`). The views are drawn
with `TrainConfig.augmentation_seed` (`view_seed`, else the run's `seed`); the data
order always follows `seed`.

With an auxiliary task (`TrainConfig.aux_task`, seed 004), every split also has its
coarse multi-hot labels (`lcl_jax.data.goemotions.coarse_labels` of its 28-label rows,
after any subset / expansion) and training batches carry them as `aux_labels` int32
[R, G] (row i: the labels of `example_index[i]`, so a view row gets its text's; zeros on
padding rows).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import pathlib
import queue
import threading
from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np

from lcl_jax import data as data_lib
from lcl_jax.data import (augment, batching, expansion, glove, goemotions, label_inputs,
                          synthetic, text_tokenizers)
from lcl_jax.models import baselines, pretrained
from lcl_jax.models.config import EncoderConfig
from lcl_jax.train import objective_specs
from lcl_jax.train.checkpoint import write_json_atomic
from lcl_jax.train.config import TrainConfig

log = logging.getLogger("lcl_jax.train")

SPLITS = ("train", "validation", "test")
_SUBSET_SEED = 0  # fixed: every seed of a smoke sweep sees the same subset
# Training batches built and placed on the devices ahead of the step that uses them
# (`Prefetcher`); 0 = built in the loop's thread when needed (no background thread).
PREFETCH_DEPTH = 2
MINILM_ALIAS = "minilm"


def resolve_checkpoint(name: str) -> str:
  """'minilm' -> the packaged all-MiniLM-L6-v2 folder; anything else unchanged."""
  if name == MINILM_ALIAS:
    return str(pretrained.minilm_checkpoint_dir())
  return name


def load_tokenizer(name: str, train_texts: list[str]) -> Any:
  """The tokenizer of an encoder: the checkpoint's (Hugging Face), or for the
  non-transformer baselines (bilstm, gru, rnn, charcnn) one built from the training
  texts (`lcl_jax.data.text_tokenizers`)."""
  if baselines.is_baseline(name):
    return text_tokenizers.build_tokenizer(name, train_texts)
  return pretrained.load_tokenizer(resolve_checkpoint(name))


def fixed_subset(split, limit: int | None):
  """The first `limit` of a fixed permutation of `split` (seed 0; every seed of a sweep
  and `experiments.evaluate` see the same subset), in file order; all if None."""
  if limit is None or len(split) <= limit:
    return split
  order = np.random.default_rng(_SUBSET_SEED).permutation(len(split))[:limit]
  return split.subset(np.sort(order))


def _expanded_and_checked(cfg, train):
  """The training rows of a run: `train` (already subset) with --concat_expansion's rows;
  a ValueError naming the flag if there are fewer than --texts_per_batch."""
  if cfg.concat_expansion:  # seed 003: extra rows from training texts only
    train = expansion.concatenation_expansion(train, cfg.concat_expansion, seed=cfg.seed)
  if cfg.texts_per_batch > len(train):
    limit = (f" (--max_train_examples={cfg.max_train_examples})"
             if cfg.max_train_examples is not None else "")
    raise ValueError(
        f"--texts_per_batch={cfg.texts_per_batch} is larger than the {len(train)} training "
        f"texts of {cfg.dataset}{limit}; use at most {len(train)}")
  return train


def check_thresholds(cfg, train) -> None:
  """A multi-label run's --thresholds: one value, or one per class of `train`."""
  if train.multilabel and np.ndim(cfg.thresholds) and len(cfg.thresholds) != train.num_classes:
    raise ValueError(f"--thresholds has {len(cfg.thresholds)} values; {cfg.dataset} has "
                     f"{train.num_classes} classes")


def check_training_data(cfg) -> None:
  """The checks of a run that need its training split, made before anything is written
  (`trainer.preflight`, issue 18): the split loads; --concat_expansion within its bound
  (`lcl_jax.data.expansion.max_expansion`); --texts_per_batch within the training set;
  a multi-label run's --thresholds count; a --glove_path file well-formed (every row D finite values) and sharing words with the
  vocabulary (its matrix is cached for the network built later).

  Raises:
    ValueError: naming the flag; the data readers' errors (a missing or malformed file,
      an unknown class), which name the file (and line).
  """
  train = fixed_subset(data_lib.load_split(cfg.dataset, "train", data_dir=cfg.data_dir,
                                           classes=cfg.classes), cfg.max_train_examples)
  train = _expanded_and_checked(cfg, train)
  check_thresholds(cfg, train)
  if cfg.glove_path is not None:
    tokenizer = load_tokenizer(cfg.encoder, list(train.texts))
    glove.run_embeddings(cfg.glove_path, tokenizer.get_vocab(),
                         pad_token_id=tokenizer.pad_token_id)


@dataclasses.dataclass
class EvalSplit:
  labels: np.ndarray
  num_examples: int
  _batches: Any
  aux_labels: np.ndarray | None = None  # int32 [N, G] with an auxiliary task

  def batches(self) -> Iterator[dict[str, np.ndarray]]:
    return self._batches()


def _load_splits(cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, int]]:
  """The run's three splits (its --max_*_examples subsets, --concat_expansion rows) and
  the full splits' sizes.

  Raises:
    ValueError: --texts_per_batch larger than the training set.
  """
  splits = {s: data_lib.load_split(cfg.dataset, s, data_dir=cfg.data_dir, classes=cfg.classes)
            for s in SPLITS}
  full_sizes = {name: len(split) for name, split in splits.items()}
  splits["train"] = fixed_subset(splits["train"], cfg.max_train_examples)
  for name in ("validation", "test"):
    splits[name] = fixed_subset(splits[name], cfg.max_eval_examples)
  splits["train"] = _expanded_and_checked(cfg, splits["train"])
  return splits, full_sizes


def _shared_tokenizer(cfg: TrainConfig, train_texts: list[str]) -> Any:
  """Φ's tokenizer, which Ψ shares (both networks read the same token ids).

  Raises:
    ValueError: --encoder and --weighting_encoder have different vocabularies.
  """
  tokenizer = load_tokenizer(cfg.encoder, train_texts)
  if (objective_specs.get_spec(cfg.objective).uses_weighting_network
      and cfg.weighting_encoder != cfg.encoder):
    other = load_tokenizer(cfg.weighting_encoder, train_texts)
    if other.get_vocab() != tokenizer.get_vocab():
      raise ValueError(
          f"--encoder={cfg.encoder} and --weighting_encoder={cfg.weighting_encoder} use "
          "different vocabularies; both networks read the same token ids, so they need "
          "the same tokenizer (e.g. BERT-base-uncased and ELECTRA share one)")
  return tokenizer


class PreparedData:
  """The data of one run, as the trainer consumes it."""

  def __init__(self, cfg: TrainConfig, *, num_devices: int):
    self.cfg = cfg
    # Sizes of the release's splits before any --max_*_examples subset.
    self.splits, self.full_sizes = _load_splits(cfg)
    train = self.splits["train"]
    self.multilabel = bool(train.multilabel)
    self.num_classes = int(train.num_classes)
    self.label_names = tuple(train.label_names)
    self.synthetic = cfg.dataset == "synthetic"
    self.aux_label_names: tuple[str, ...] = ()
    self.aux_labels: dict[str, np.ndarray] = {}
    if cfg.aux_task != "none":  # seed 004's coarse labels (TrainConfig checked the dataset)
      self.aux_label_names = goemotions.coarse_label_names(cfg.aux_task, cfg.data_dir)
      self.aux_labels = {name: goemotions.coarse_labels(split.labels, cfg.aux_task,
                                                        cfg.data_dir)
                         for name, split in self.splits.items()}
    # (The baselines size their embedding tables from the tokenizer.)
    self.tokenizer = _shared_tokenizer(cfg, list(train.texts))
    # Label-embedding attention (issue 10): rows carry the label block as a fixed prefix.
    self.label_block = None
    if cfg.label_embeddings:
      encoders = label_encoder_configs(cfg)
      self.label_block = label_inputs.label_block(
          self.tokenizer, self.label_names, cfg.label_text_tokens,
          token_types=all(c.type_vocab_size >= 2 for _, _, c in encoders))
      check_label_block_fits(cfg, self.label_block, encoders)
    self._tokenize_splits()
    process_index, process_count = jax.process_index(), jax.process_count()
    self.paired = cfg.trains_on_views
    # Gradient caching splits the step's rows into chunks of N: pad them to a multiple.
    train_multiple = math.lcm(num_devices, cfg.gradient_cache_chunk_size or 1)
    self._train = batching.PairedTrainBatcher(
        self._tokenized["train"], self._train_views(), train.labels,
        texts_per_batch=cfg.texts_per_batch, seed=cfg.seed, buckets=cfg.length_buckets,
        row_multiple=train_multiple, process_index=process_index,
        process_count=process_count)
    self._eval_kwargs = dict(batch_size=cfg.eval_batch_size, buckets=cfg.length_buckets,
                             row_multiple=num_devices, process_index=process_index,
                             process_count=process_count)

  def _tokenize_splits(self) -> None:
    """Every split's rows (`tokenize`) and its count of truncated texts (logged)."""
    cfg = self.cfg
    self._tokenized = {name: self.tokenize(list(split.texts))
                       for name, split in self.splits.items()}
    self.truncated = {name: self._count_truncated(split.texts, self._tokenized[name])
                      for name, split in self.splits.items()}
    if any(self.truncated.values()):
      limit = (f"label_text_tokens={cfg.label_text_tokens}" if self.label_block is not None
               else f"max_length={cfg.max_length}")
      log.warning("%s truncates %s texts of %s (per split)", limit, self.truncated,
                  cfg.dataset)

  def _train_views(self):
    """The training texts' augmented views: None without views (baseline_views or, for
    LCL, lcl_views = 'texts'), per-epoch views, or one fixed view per text."""
    cfg, texts = self.cfg, list(self.splits["train"].texts)
    if not self.paired:
      return None
    if cfg.fresh_views_per_epoch:
      return batching.epoch_views(texts, self.tokenizer, seed=cfg.augmentation_seed,
                                  max_length=cfg.max_length, augmenter=self._augmenter(),
                                  tokenize=self.tokenize)
    return self.tokenize(self._fixed_views())

  def tokenize(self, texts: list[str]):
    """The rows of `texts` as this run feeds them: truncated at --max_length, or (with
    --label_embeddings) label block + the first --label_text_tokens text pieces."""
    if self.label_block is not None:
      return label_inputs.tokenize_with_labels(texts, self.tokenizer, self.label_block)
    return batching.tokenize_texts(texts, self.tokenizer, max_length=self.cfg.max_length)

  def _count_truncated(self, texts, tokenized) -> int:
    if self.label_block is not None:
      return label_inputs.count_truncated_texts(texts, tokenized, self.tokenizer,
                                                self.label_block)
    return count_truncated(texts, tokenized, self.tokenizer)

  def _augmenter(self):
    """WordNet synonym replacement (the paper); the synthetic dataset uses its own
    built-in lexicon so the embedded default needs no WordNet (see data/synthetic.py)."""
    if self.synthetic:
      return synthetic.SyntheticSynonymAugmenter(aug_p=self.cfg.augment_p)
    return augment.default_augmenter(self.cfg.augment_p, data_dir=self.cfg.data_dir)

  def _fixed_views(self) -> list[str]:
    """One augmented view per training text, cached in the workdir (deterministic)."""
    texts = list(self.splits["train"].texts)
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()
    seed = self.cfg.augmentation_seed
    key = {"seed": seed, "aug_p": self.cfg.augment_p, "texts_sha256": digest}
    path = pathlib.Path(self.cfg.workdir) / "augmented_train_views.json"
    if path.exists():
      cached = json.loads(path.read_text())
      if cached.get("key") == key and len(cached.get("views", ())) == len(texts):
        return cached["views"]
    views = self._augmenter().augment_texts(texts, seed=seed)
    if jax.process_index() == 0:
      write_json_atomic(path, {"key": key, "views": views})
    return views

  @property
  def pad_token_id(self) -> int:
    """The id that pads token rows past their length (the tokenizer's, else 0)."""
    return int(self._train.texts.pad_token_id)

  @property
  def steps_per_epoch(self) -> int:
    steps = self._train.steps_per_epoch
    if self.cfg.max_steps_per_epoch is not None:
      steps = min(steps, self.cfg.max_steps_per_epoch)
    return steps

  def train_batches(self, epoch: int, *, start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    for step in range(start_step, self.steps_per_epoch):
      yield self._with_aux_labels(self._train.batch(epoch, step), "train")

  def _with_aux_labels(self, batch: dict[str, np.ndarray], split: str) -> dict[str, np.ndarray]:
    """`batch` plus `aux_labels` (the rows' examples' coarse labels) with an auxiliary task."""
    if not self.aux_labels:
      return batch
    index = batch["example_index"]
    aux = self.aux_labels[split][np.maximum(index, 0)]
    aux[index < 0] = 0
    return {**batch, "aux_labels": aux}

  def eval_split(self, name: str) -> EvalSplit:
    tokens, labels = self._tokenized[name], self.splits[name].labels
    return EvalSplit(labels=np.asarray(labels), num_examples=len(tokens),
                     _batches=lambda: batching.eval_batches(tokens, labels, **self._eval_kwargs),
                     aux_labels=self.aux_labels.get(name))

  def text_batches(self, texts) -> Iterator[dict[str, np.ndarray]]:
    """Eval batches of arbitrary texts (tokenised and batched like the eval splits;
    labels zero): the candidates of embedding mixing (`lcl_jax.train.mixing`)."""
    tokens = self.tokenize(list(texts))
    labels = np.zeros(len(tokens), np.int32)
    return batching.eval_batches(tokens, labels, **self._eval_kwargs)

  def split_sizes(self) -> dict[str, int]:
    return {name: len(split) for name, split in self.splits.items()}

  def test_subset(self) -> dict[str, int] | None:
    """``{"examples": n, "of": N}`` when --max_eval_examples cut the test split to n of
    its N examples (the reported test metrics are then on that fixed subset), else None."""
    n, full = len(self.splits["test"]), self.full_sizes["test"]
    return {"examples": n, "of": full} if n < full else None

  def fingerprint(self) -> str:
    """SHA-256 (hex) of the texts and labels of every split as loaded (after any subset).

    Stored in config.json; a resume with other data (e.g. another --data_dir) is refused.
    """
    digest = hashlib.sha256()
    for name in SPLITS:
      split = self.splits[name]
      labels = np.ascontiguousarray(np.asarray(split.labels, np.int64))
      digest.update(f"{name}\x00{len(split)}\x00{labels.shape}\x00".encode())
      for text in split.texts:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
      digest.update(labels.tobytes())
      if name in self.aux_labels:  # the mapping files could change between runs
        digest.update(np.ascontiguousarray(self.aux_labels[name], np.int64).tobytes())
    return digest.hexdigest()

  def describe(self) -> dict[str, Any]:
    info = {"name": self.cfg.dataset, "num_classes": self.num_classes,
            "label_names": list(self.label_names), "multilabel": self.multilabel,
            "split_sizes": self.split_sizes(), "synthetic": self.synthetic,
            "steps_per_epoch": self.steps_per_epoch,
            "training_rows": "texts + augmented views" if self.paired else "texts only",
            "max_length": (self.cfg.max_length if self.label_block is None
                           else self.label_block.max_length),
            "truncated_texts": dict(self.truncated),
            "fingerprint": self.fingerprint()}
    if self.label_block is not None:
      info["label_embeddings"] = self.label_block.describe()
    if self.aux_label_names:
      info["aux_task"] = self.cfg.aux_task
      info["aux_label_names"] = list(self.aux_label_names)
    if self.synthetic:
      info["note"] = getattr(synthetic, "DESCRIPTION", "SYNTHETIC data generated by lcl_jax")
    return info


_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def stack_run_batches(batches: list[dict[str, np.ndarray]], *,
                      pad_token_id: int) -> dict[str, np.ndarray]:
  """The batches of S runs at one step, stacked on a new leading axis `[S, R, ...]`.

  The runs of one program (`trainer.train_group`) need one shape per step, but each
  run's batch has its own length bucket T (its own data order): the token arrays
  `input_ids` / `attention_mask` / `token_type_ids` [R, T_s] are padded on the right
  to the largest T with `pad_token_id` / 0 / 0. The padded positions have attention
  mask 0, so in exact arithmetic every real token's output is unchanged (the masked
  attention logits get a large negative bias and weigh exp(-inf) = 0); in float32
  only the order and blocking of the longer reductions differ (~1e-7 relative), and
  the step costs what the longest bucket costs. Rows (R), labels, `valid` and
  `example_index` must already agree in shape (same texts per batch and devices).

  Raises:
    ValueError: the runs' batches differ in keys or in a non-token shape.
  """
  width = max(b["input_ids"].shape[1] for b in batches)
  out = {}
  for name in batches[0]:
    values = []
    for b in batches:
      if set(b) != set(batches[0]):
        raise ValueError(f"the runs' batches have different keys: {sorted(b)} vs "
                         f"{sorted(batches[0])}")
      value = b[name]
      if name in _TOKEN_KEYS and value.shape[1] < width:
        fill = pad_token_id if name == "input_ids" else 0
        value = np.pad(value, ((0, 0), (0, width - value.shape[1])), constant_values=fill)
      values.append(value)
    if len({v.shape for v in values}) != 1:
      raise ValueError(f"the runs' batches differ in the shape of {name!r}: "
                       f"{[v.shape for v in values]}")
    out[name] = np.stack(values)
  return out


def count_truncated(texts, tokenized, tokenizer) -> int:
  """How many of `texts` lose tokens to the truncation of `tokenized` (at its max_length).

  Only texts that reached max_length tokens are tokenised again, without truncation.
  """
  lengths = np.asarray(tokenized.lengths)
  at_limit = np.flatnonzero(lengths >= tokenized.max_length)
  if not len(at_limit):
    return 0
  full = tokenizer([texts[i] for i in at_limit], truncation=False, padding=False,
                   verbose=False)["input_ids"]
  return int(sum(len(ids) > tokenized.max_length for ids in full))


def label_encoder_configs(cfg: TrainConfig) -> list[tuple[str, str, Any]]:
  """``(flag, checkpoint, EncoderConfig)`` of every network reading the label-prefixed
  rows (Φ, and Ψ under LCL), from the checkpoints' config.json."""
  networks = [("encoder", cfg.encoder)]
  if objective_specs.get_spec(cfg.objective).uses_weighting_network:
    networks.append(("weighting_encoder", cfg.weighting_encoder or cfg.encoder))
  out = []
  for flag, name in networks:
    directory = pretrained.resolve_checkpoint_dir(resolve_checkpoint(name))
    out.append((flag, name, EncoderConfig.from_json_file(directory / pretrained.CONFIG_NAME)))
  return out


def check_label_block_fits(cfg: TrainConfig, block, encoders) -> None:
  """Refuses a --label_text_tokens whose rows are longer than an encoder reads
  (`EncoderConfig.max_length`: max_position_embeddings less RoBERTa's padding offset).

  Raises:
    ValueError: naming --label_text_tokens, the row's parts and the largest budget that fits.
  """
  for flag, name, config in encoders:
    limit = config.max_length
    if block.max_length > limit:
      fits = limit - block.prefix_length - block.suffix_length
      raise ValueError(
          f"--label_text_tokens={cfg.label_text_tokens}: with --label_embeddings a row is "
          f"{block.prefix_length} label-block tokens ({len(block.piece_ids)} label pieces "
          f"with the special tokens) + {cfg.label_text_tokens} text tokens + "
          f"{block.suffix_length} = {block.max_length} tokens, more than --{flag}={name} "
          f"reads (max_position_embeddings: {limit} positions); "
          + (f"use --label_text_tokens<={fits}" if fits >= 1 else
             "the label block alone does not fit"))


def prepare(cfg: TrainConfig, *, num_devices: int) -> PreparedData:
  return PreparedData(cfg, num_devices=num_devices)


class Prefetcher:
  """Iterates `(batch, put(batch))` for `batch in batches`, the next `depth` of them
  built and placed (`put`, e.g. `dp.put_batch`: host-to-device copies) by one
  background thread while the devices run the current step.

  Order is that of `batches` (one producer, a FIFO queue), so a run is the same with
  or without prefetching, and a resumed run (`train_batches(epoch, start_step=...)`)
  sees the same batches. The queue is bounded (`depth` items), so at most `depth`
  batches wait on the devices. An exception raised while building or placing a batch
  is re-raised (the same object, with its traceback) by the `next()` that would have
  returned that batch. `close()` (also on leaving a `with` block, e.g. by SIGTERM's
  `TrainingInterrupted`, a KeyboardInterrupt or an early stop) stops the thread after
  the batch it is building, closes `batches` (from that thread) and joins it.
  `depth=0` iterates `batches` in the caller's thread. `place_in_thread=False` builds
  the batches in the thread but calls `put` in the caller's thread: with several JAX
  processes every process must issue its device work (`put` makes global arrays) in
  the same order as the others, which a second thread does not guarantee (the
  2-process test, tests/test_multihost.py, deadlocked in gloo's context set-up).
  """

  _POLL_SECONDS = 0.05  # how often a blocked put/get looks at the stop flag / thread

  def __init__(self, batches: Iterable[Any], put: Callable[[Any], Any], *,
               depth: int = PREFETCH_DEPTH, place_in_thread: bool = True):
    if depth < 0:
      raise ValueError(f"prefetch depth must be >= 0, got {depth}")
    self._put = put
    self._place_in_thread = place_in_thread
    self._done = False
    self._thread = None
    if depth == 0:
      self._iterator = iter(batches)
      return
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._produce, args=(batches,),
                                    name="lcl_jax-prefetch", daemon=True)
    self._thread.start()

  def _produce(self, batches: Iterable[Any]) -> None:
    iterator = iter(batches)
    try:
      for batch in iterator:
        placed = self._put(batch) if self._place_in_thread else None
        if self._stop.is_set() or not self._offer(("batch", (batch, placed))):
          return
      self._offer(("end", None))
    except BaseException as e:  # handed to the consumer, which re-raises it
      self._offer(("error", e))
    finally:
      close = getattr(iterator, "close", None)
      if close is not None:
        close()

  def _offer(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=self._POLL_SECONDS)
        return True
      except queue.Full:
        continue
    return False

  def __iter__(self):
    return self

  def __next__(self):
    if self._done:
      raise StopIteration
    if self._thread is None:
      try:
        batch = next(self._iterator)
      except StopIteration:
        self._done = True
        raise
      return batch, self._put(batch)
    while True:
      try:
        kind, value = self._queue.get(timeout=self._POLL_SECONDS)
        break
      except queue.Empty:
        if not self._thread.is_alive() and self._queue.empty():
          self._done = True
          raise RuntimeError("the prefetch thread ended without a batch or an error") from None
    if kind == "batch":
      batch, placed = value
      return (batch, placed) if self._place_in_thread else (batch, self._put(batch))
    self._done = True
    self._thread.join()
    if kind == "error":
      raise value
    raise StopIteration

  def close(self) -> None:
    self._done = True
    if self._thread is None:
      close = getattr(self._iterator, "close", None)
      if close is not None:
        close()
      return
    self._stop.set()
    while True:  # drop what waits, so the producer's put returns
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False
