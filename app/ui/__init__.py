"""The dashboard at /ui: static files and one read-only overview endpoint."""
