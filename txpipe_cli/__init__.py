"""txpipe: the operator's command-line tool for the pizza-order pipeline."""

__version__ = "0.1.0"
