"""The model MLflow loads (MLflow's "models from code"): a ChurnModel behind the pyfunc interface."""

import mlflow

from training.tracking import ChurnRiskPyfunc

mlflow.models.set_model(ChurnRiskPyfunc())
