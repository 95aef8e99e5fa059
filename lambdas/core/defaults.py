"""Every default, once, each with why: what the functions, the local runtime and a deploy use when nothing
(a flag, a TXPIPE_ variable, an earlier deploy's choice) says otherwise.

Read by the functions (lambdas/sync.py, the queue they build: lambdas/core/queue), the functions'
environment on the local target (txpipe_cli/local/state.py), the local runtime's options
(txpipe_cli/local/target.py RUNTIME_DEFAULTS), the deploy settings (txpipe_cli/config.py) and the help
texts that name them. infra/template.yaml cannot import this module: tests/aws/test_template_defaults.py
holds every value the template writes down that is also here to the value here, and every TXPIPE_ variable
a function reads to either the template's function environment or ENVIRONMENT below.

Not here: limits (SQS's, Lambda's, the API's), which live with the code they bound
(lambdas/core/orders.py, lambdas/core/queue/base.py); the store's backoff, a policy no setting overrides
(lambdas/core/failures.py); what each function is given by AWS (timeout, memory: lambdas/functions.py).
"""

from __future__ import annotations

# ---------------------------------------------------------------- the sync

# A run starts batches for this long, then lets the batch in flight finish and commit. The sync function's
# timeout (lambdas/functions.py) leaves room for a slow last batch and a warehouse that must wake first.
SYNC_MAX_SECONDS = 100
# The longest one run takes: SYNC_MAX_SECONDS of batches plus the last one. An order accepted just after a
# run waits one interval plus this, so deploy refuses a schedule whose interval plus this exceeds the SLA
# (txpipe_cli/config.py check_schedule), and AWS's default interval is the longest that fits.
SYNC_RUN_SECONDS = 120.0
# Outbox rows per warehouse batch: against 20,000, a 1M-row backlog went from 122k to 139k rows/s (fewer
# warehouse commits and merges; benchmarks/README.md), at ~90 MB peak memory.
SYNC_BATCH_ROWS = 50_000

# ---------------------------------------------------------------- the orders queue and the store

# SQS's largest maxReceiveCount: a limit, kept beside the default it sets (--max-receive-count may not pass it).
SQS_MAX_RECEIVE_COUNT = 1000
# Receives before a message goes to the dead-letter queue: a backstop for deliveries that crash the function,
# set so that an outage never reaches it. Failing transiently on every receive with the store's backoff, a
# message reaches SQS's largest count only after the queue's retention (lambdas/core/failures.py).
MAX_RECEIVE_COUNT = SQS_MAX_RECEIVE_COUNT
# The local queue: how long a received message stays hidden before it is delivered again (SQS's own default).
# The store hides a message that failed for a transient reason for its backoff itself (lambdas/core/failures.py).
VISIBILITY_TIMEOUT_SECONDS = 30.0
# SQS on AWS: the orders queue's visibility timeout is this many times the store function's timeout (360 s),
# as AWS recommends for a Lambda event source, so that a batch still being worked on is not delivered again.
SQS_VISIBILITY_TIMEOUTS_PER_STORE_TIMEOUT = 6
# Messages per store invocation, on both targets (AWS: StoreBatchSize's default): SQS's receive batch, each
# message packing up to ~1,000 orders of one request.
STORE_BATCH_SIZE = 10
# The local runtime's event source mapping: 2 concurrent pollers bound the database load, as maximum
# concurrency (StoreMaxConcurrency) does on AWS.
LOCAL_POLLERS = 2
# How long a local poller waits to fill a batch before it delivers what it has (AWS's mapping waits up to
# MaximumBatchingWindowInSeconds, 1 s in infra/template.yaml).
LOCAL_BATCH_WINDOW_SECONDS = 0.5

# ---------------------------------------------------------------- deploy settings (txpipe_cli/config.py)

# The freshness SLA: every order in the warehouse within 15 minutes of the API accepting it (DESIGN.md).
SLA_SECONDS = 900.0
# The local target's sync interval: a run costs nothing there. AWS derives its own from the SLA: the longest
# whole-minute interval that meets it, since each run that finds orders wakes a warehouse billed by the wake
# (txpipe_cli/config.py default_sync_every).
LOCAL_SYNC_EVERY_SECONDS = 300.0
# The daily view refresh, at night in the chosen time zone (DESIGN.md: cron 02:00 daily).
REFRESH_AT = "02:00"
# What deploy's cost estimate prices unless --orders-per-month says: the README's reference month.
ORDERS_PER_MONTH = 1_000_000

# ---------------------------------------------------------------- the functions' environment

# What a function uses when one of these TXPIPE_ variables is unset. Every other one a function reads is set
# by infra/template.yaml on AWS and by txpipe_cli/local/state.py locally, except the local queue's endpoint
# (local only) and TXPIPE_WAREHOUSE_SSL, a switch only the tests' loopback shim sets (unset: TLS, the
# warehouse's own default). tests/aws/test_template_defaults.py holds all of them to this.
ENVIRONMENT: dict[str, str] = {
    "TXPIPE_SYNC_MAX_SECONDS": str(SYNC_MAX_SECONDS),
    "TXPIPE_SYNC_BATCH_ROWS": str(SYNC_BATCH_ROWS),
    # the local queue's (pgqueue://); SQS keeps its own settings on the queue
    "TXPIPE_QUEUE_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_SECONDS),
    "TXPIPE_QUEUE_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
}
