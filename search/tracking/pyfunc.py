"""The registered model: an `mlflow.pyfunc` wrapper around labeltune's own checkpoint file.

The model's only artifact is `checkpoint.pt` (labels and per-label thresholds inside), a
single model's or an ensemble's, loaded with labeltune's loader (`torch.load(...,
weights_only=True)`) and `trainable.ensemble.load_predictor`.

It takes one input form: a uint8 array N x 3 x 128 x 128 of RGB images, as
`trainable.data.decode_files(paths, "rgb")` returns them. Each model converts to its own colour
mode and image size on the device (a gray checkpoint, or an ensemble's gray members, take luma),
so one decoded array fits every checkpoint. `predict` returns a DataFrame of per-label
probabilities, one float32 column per label. `signature(labels)` says both to MLflow, whose
schema enforcement refuses another dtype or shape before `predict` runs; `mlflow models serve`
takes the same array as `{"inputs": [...]}` (README, "The registered model").
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np

from trainable.data import SIDE

INPUT_SHAPE = (-1, 3, SIDE, SIDE)
"""the one input: N RGB images, uint8, channels first, at the decoded side"""


def signature(labels: list[str]):
    """uint8 INPUT_SHAPE in, a float32 probability column per label out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), INPUT_SHAPE)]),
                          outputs=Schema([ColSpec("float", label) for label in labels]))


class LabeltuneModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from trainable import checkpoint as ckpt_io
        from trainable.ensemble import load_predictor

        self.predictor = load_predictor(ckpt_io.load(context.artifacts["checkpoint"]), device="auto")

    def predict(self, context, model_input, params=None):
        import pandas as pd

        # MLflow enforces the signature on a loaded model; this guards a direct call (a DataFrame of paths...).
        images = model_input
        if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
                and images.shape[1:] == INPUT_SHAPE[1:]):
            shape = getattr(images, "shape", None)
            raise ValueError(f"the labeltune model takes a uint8 array N x 3 x {SIDE} x {SIDE} of RGB images "
                             f"(trainable.data.decode_files(paths, 'rgb')), got {type(images).__name__} "
                             f"{getattr(images, 'dtype', '')} {tuple(shape) if shape is not None else ''}".rstrip())
        probs = self.predictor.probabilities(images)
        return pd.DataFrame(probs.astype(np.float32), columns=self.predictor.labels)
