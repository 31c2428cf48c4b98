"""Using a trained model: `Predictor` (a finished run's or an exported folder's networks,
through the trainer's own eval step; `predictor.py`) and the predict / evaluate input and
output of experiments/predict.py and experiments/evaluate.py (`use.py`: reading texts
and labels, writing predictions, metrics, attention maps)."""

from lcl_jax.inference.predictor import NETWORKS, Prediction, Predictor, RunNotUsableError

__all__ = ["NETWORKS", "Prediction", "Predictor", "RunNotUsableError"]
