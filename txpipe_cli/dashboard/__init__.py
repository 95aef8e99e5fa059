"""The analysts' dashboard: a static page (static/) and the server that serves it with a JSON API, read
through the ops client on either target.

Imports: `lambdas.core` (the ops contract) and txpipe_cli's top-level modules (the guarded server, the
states); never a target or a command. Imported by the `dashboard` command only.
"""
