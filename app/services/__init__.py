"""The run lifecycle, threads and assistants, in terms of store and broker."""
