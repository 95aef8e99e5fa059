"""txpipe: the operator's command-line tool for the pizza-order pipeline.

The top-level modules are what every command shares: settings (config.py), errors and output, the targets'
interface and factory (targets.py), the ops client (ops_client.py), the order file and the sender, the guarded
HTTP server (guarded_http.py). The packages: `commands` (one module per command group), `local` and `aws` (the
two targets), `dashboard` (the analysts' page). ARCHITECTURE.md maps each stage of the pipeline to its folder.

Imports: the top-level modules import `lambdas.core` and `lambdas.functions`, and each other; only
targets.py (the factory) imports the targets and only app.py imports the commands.
Imported by the commands, the targets and the dashboard.
"""

__version__ = "0.1.0"
