"""The pipeline's functions: thin handlers over the shared core in `lambdas.core`.

Each module is one function, deployed as a Lambda and run unchanged by the local runtime:
ingest (API Gateway proxy event), store (SQS event), sync and refresh (EventBridge
scheduled event), ops (direct invoke: migrations and read-only reports).
"""
