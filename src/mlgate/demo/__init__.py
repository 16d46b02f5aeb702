"""The embedded default for `mlgate demo`: a local MLflow on loopback and a sample training job.

Nothing here is imported by the other commands; the training job runs in its own process
because it needs the `mlflow` package, which the product itself never imports.
"""
