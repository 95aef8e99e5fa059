"""One module per command group; the root app in txpipe_cli.app only composes them. Each command is thin:
it reads its options, calls a target (txpipe_cli.targets.get_target) or the ops client, and renders.

Imports: anything of the project (the commands are the top layer). Imported by txpipe_cli.app only.
"""
