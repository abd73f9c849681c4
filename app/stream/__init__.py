"""Relaying a run's events to SSE clients: replay from Last-Event-ID, then live."""
