"""Training time of the reference models (``python -m reference_models.train``)."""

from __future__ import annotations

import subprocess
import sys
import tempfile


class Training:
    params = [["linear", "nn"]]
    param_names = ["model"]
    timeout = 1800
    number = 1
    repeat = 1
    warmup_time = 0

    def time_train(self, model):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, "-m", "reference_models.train", model, "--out", out],
                           check=True, capture_output=True)
