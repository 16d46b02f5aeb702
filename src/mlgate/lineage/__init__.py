"""MLflow lineage: the REST client, the lineage chain and the model files in the artifact store."""
