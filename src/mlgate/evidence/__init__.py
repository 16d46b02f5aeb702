"""The evidence pack: ``evidence.json`` (versioned, with its own SHA-256) and ``evidence.md``."""
