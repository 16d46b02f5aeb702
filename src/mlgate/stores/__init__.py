"""Artifact stores: where a model version's files are read from and its manifest is kept (see interface)."""
