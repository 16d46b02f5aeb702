"""One module per CLI command: ``add_parser(subparsers, common)`` and ``run(args) -> int``."""
