"""Composition root: the `citywall` CLI and process roles. The only place that wires the domain packages together."""
