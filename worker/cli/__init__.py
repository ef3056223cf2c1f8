"""The `crackq` command: one parser (main.py) and one module per group of subcommands."""
