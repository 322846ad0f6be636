"""The registered model: an `mlflow.pyfunc` wrapper around labeltune's own checkpoint file.

The model's only artifact is `checkpoint.pt` (labels and per-label thresholds inside), a
single model's or an ensemble's, loaded with labeltune's loader (`torch.load(...,
weights_only=True)`) and `trainable.ensemble.load_predictor`. `predict` takes
either a DataFrame with a `path` column of image files or a uint8 array
N x C x 128 x 128 and returns a DataFrame of label probabilities, so
`mlflow models serve` works as well as `labeltune pred --registered`.
"""

from __future__ import annotations

import mlflow.pyfunc


class LabeltuneModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from trainable import checkpoint as ckpt_io
        from trainable.ensemble import load_predictor

        self.predictor = load_predictor(ckpt_io.load(context.artifacts["checkpoint"]), device="auto")

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        from trainable.data import decode_files

        if isinstance(model_input, pd.DataFrame):
            images, _ = decode_files(list(model_input["path"]), self.predictor.cfg.color, progress=False)
        else:
            images = np.asarray(model_input, dtype=np.uint8)
        probs = self.predictor.probabilities(images)
        return pd.DataFrame(probs, columns=self.predictor.labels)
