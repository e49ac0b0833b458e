"""Storage backends. Pick one with :func:`accord.open` by URL scheme."""
