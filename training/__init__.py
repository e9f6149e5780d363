"""Training: dataset assembly, LightGBM fit, backtest, calibration, explanations, MLflow registry, reasons."""
