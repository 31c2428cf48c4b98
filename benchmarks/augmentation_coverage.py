r"""Coverage and speed of the WordNet synonym augmentation on each dataset's train split.

For one augmented view per training text (``seed``, no epoch: the paper's setting)
it prints, per dataset, next to the paper's coverage figure:

* ``texts >=1``: share of texts with at least one word replaced
  (``augment.replacement_coverage``);
* ``drawn ok``: share of the words drawn for replacement that WordNet had a
  synonym for (the rest stay unchanged: nlpaug spends the draw);
* ``eligible w/ syn``: share of eligible words (not punctuation, not ``DT``) that
  have a WordNet synonym under their POS tag;
* ``words repl.``: replaced words / all nlpaug tokens;
* throughput in texts/s (one process, WordNet lookups cached within the run).

Usage::

  python -m benchmarks.augmentation_coverage --data_dir=../shared/data \
      [--datasets=empathetic_dialogues,sst5] [--count_rounding=ceil] [--json_out=cov.json]
"""

from __future__ import annotations

import json
import os
import platform
import time

from absl import app, flags

from lcl_jax.data import augment, load_split

# The paper's coverage figures: ~69% ED, ~69% SST, ~66% ISEAR, ~62% EmoInt, ~61% GoEmotions.
_PAPER = {
    "empathetic_dialogues": 0.69, "sst5": 0.69, "sst2": 0.69, "isear": 0.66, "emoint": 0.62,
    "goemotions": 0.61,
}

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Release files (default: $LCL_DATA_DIR).")
_DATASETS = flags.DEFINE_list("datasets", list(_PAPER), "Registry names to measure.")
_SEED = flags.DEFINE_integer("seed", 0, "Augmentation seed.")
_COUNT_ROUNDING = flags.DEFINE_enum("count_rounding", "floor", ["floor", "ceil"],
                                    "floor: nlpaug 1.1.0 (the release); ceil: nlpaug >= 1.1.x.")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the rows as JSON here.")


def measure(texts, augmenter: augment.SynonymAugmenter, seed: int) -> dict[str, float]:
  """Augments every text once and collects the statistics above."""
  start = time.perf_counter()
  details = [augmenter.augment_with_details(t, augment.text_rng(seed, i))
             for i, t in enumerate(texts)]
  seconds = time.perf_counter() - start
  n_drawn = sum(len(d.drawn) for d in details)
  n_replaced = sum(len(d.replaced) for d in details)
  n_tokens = sum(len(d.tokens) for d in details)
  n_eligible = sum(len(d.eligible) for d in details)
  n_eligible_with_synonym = sum(
      bool(augmenter.candidates(d.tokens[j], d.tags[j])) for d in details for j in d.eligible)
  return {
      "texts": len(texts),
      "coverage_texts_with_replacement": augment.replacement_coverage(
          texts, [d.text for d in details]),
      "drawn_words_replaced": n_replaced / max(1, n_drawn),
      "eligible_words_with_synonym": n_eligible_with_synonym / max(1, n_eligible),
      "tokens_replaced": n_replaced / max(1, n_tokens),
      "texts_changed_as_strings": sum(d.text != t for d, t in zip(details, texts)) / len(texts),
      "texts_per_second": len(texts) / seconds,
  }


def main(argv: list[str]) -> None:
  del argv
  data_dir = _DATA_DIR.value or os.environ.get("LCL_DATA_DIR")
  start = time.perf_counter()
  augmenter = augment.SynonymAugmenter(count_rounding=_COUNT_ROUNDING.value)
  print(f"augmenter ready in {time.perf_counter() - start:.1f} s "
        f"(WordNet: {augmenter.wordnet.source}); {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, count_rounding={_COUNT_ROUNDING.value}, seed={_SEED.value}")
  rows = []
  for name in _DATASETS.value:
    try:
      split = load_split(name, "train", data_dir=data_dir)
    except Exception as e:  # pylint: disable=broad-except
      print(f"{name}: skipped ({type(e).__name__}: {e})")
      continue
    row = {"dataset": name, "paper": _PAPER.get(name),
           **measure(split.texts, augmenter, _SEED.value)}
    rows.append(row)
    print(json.dumps(row), flush=True)
  header = ("| dataset | train texts | paper | texts >=1 repl. | drawn ok | eligible w/ syn | "
            "words repl. | texts/s |")
  print("\n" + header)
  print("|" + "---|" * (header.count("|") - 1))
  for r in rows:
    paper = f"~{r['paper']:.0%}" if r["paper"] is not None else "-"
    print(f"| {r['dataset']} | {r['texts']:,} | {paper} | "
          f"{r['coverage_texts_with_replacement']:.1%} | "
          f"{r['drawn_words_replaced']:.1%} | {r['eligible_words_with_synonym']:.1%} | "
          f"{r['tokens_replaced']:.1%} | {r['texts_per_second']:,.0f} |")
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  app.run(main)
