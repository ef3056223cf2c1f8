"""Hostile and odd image references: the servers they point at, the cases, one worker run."""
