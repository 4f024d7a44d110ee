"""Tools around the envs: the docs tables."""
