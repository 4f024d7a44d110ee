"""Tools around the envs: the docs tables, and the command lines (flags from dataclasses)."""
