"""``encoder-audit`` command line: a thin layer over the Python API."""
