"""The pipeline's functions: thin handlers over the shared core in `lambdas.core`.

Each module is one function, deployed as a Lambda and run unchanged by the local runtime:
ingest (API Gateway proxy event), store (SQS event), sync and refresh (EventBridge
scheduled event), ops (direct invoke: migrations and read-only reports). `functions.py` declares
each of them (handler, timeout, memory, the AWS calls it makes).

Imports: a handler imports `lambdas.core` and `lambdas.functions` only, never the CLI. Imported by the
local runtime (txpipe_cli/local), which runs the handlers, and by the AWS packaging (txpipe_cli/aws).
tests/unit/test_layers.py holds every package to what its docstring allows.
"""
