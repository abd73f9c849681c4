"""Runyard: a self-hosted server that runs agents as durable, streamable, cancellable runs."""

__version__ = "0.1.0"
