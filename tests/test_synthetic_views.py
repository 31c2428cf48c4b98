"""The synthetic dataset's built-in synonym views (the embedded default's augmentation)."""
import collections

import numpy as np

from lcl_jax.data import synthetic


def test_views_are_deterministic_label_preserving_and_about_30_percent():
  split = synthetic.generate_split("train")
  a = synthetic.augment_texts(split.texts, seed=0)
  assert a == synthetic.augment_texts(split.texts, seed=0)
  assert a != synthetic.augment_texts(split.texts, seed=1)
  assert a != synthetic.augment_texts(split.texts, seed=0, epoch=1)
  cue_class = collections.defaultdict(set)
  for cls, cues in synthetic._CUES.items():
    for cue in cues:
      cue_class[cue].add(cls)
  replaced_share = []
  for text, view, label in zip(split.texts, a, split.labels):
    words, new = text.split(), view.split()
    if len(words) != len(new):  # a multi-word synonym was inserted
      continue
    changed = [(w, n) for w, n in zip(words, new) if w != n]
    assert changed, (text, view)
    replaced_share.append(len(changed) / len(words))
    cls = synthetic.CLASSES[label]
    for w, n in changed:
      w, n = w.strip(".,;").lower(), n.strip(".,;").lower()
      assert n in synthetic._SYNONYMS.get(w, ()), (w, n)
      if w in cue_class:  # a class cue is replaced only by a cue of the same class
        assert cls in cue_class[w] and cls in cue_class[n], (w, n, cls)
  # nlpaug's rule int(0.3 * words), capped by the words that have synonyms.
  assert 0.15 < float(np.mean(replaced_share)) <= 0.3
