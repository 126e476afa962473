"""Training QAGen models (``quals train-qagen``): data preparation, warm starts, seq2seq and causal-LM training.

Beside the engine: it builds inputs and targets with the engine's own QAGen classes, so a trained model is
scored exactly as it was trained; the engine never imports it.
"""

from quals.recipe.data import QAExample, load_examples
from quals.recipe.train import TrainQAGenConfig, train_qagen


__all__ = ["QAExample", "TrainQAGenConfig", "load_examples", "train_qagen"]
