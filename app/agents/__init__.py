"""Graphs: loading them from the config file, and running them as streams of events."""
