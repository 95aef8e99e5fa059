"""The local target: a small cloud on one machine (PostgreSQL, a queue, the runtime that runs the
functions' handlers, its supervisor and its log).

Imports: `lambdas` and txpipe_cli's top-level modules; never the AWS target, a command or the dashboard.
Imported by targets.py (the factory) and by the commands that run it (the runtime's own entry point).
"""
