"""One dlt run, in its own process: `sql_database` source -> postgres destination, merge on order_id.

Run by the sync benchmark as `python -m benchmarks.dlt_run --table T --dataset D --pipelines-dir P`, with the
credentials in the environment (SOURCES__SQL_DATABASE__CREDENTIALS, DESTINATION__POSTGRES__CREDENTIALS),
never on the command line. Prints one JSON line: the seconds `pipeline.run()` took (dlt's import and set-up
excluded, which is generous to dlt) and what dlt reports it loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description="one dlt sql_database -> postgres merge run (benchmark baseline)")
    parser.add_argument("--table", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--pipelines-dir", required=True)
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")  # no network here, and no reason to call home

    started = time.perf_counter()
    import dlt
    from dlt.sources.sql_database import sql_table

    imported = time.perf_counter()
    pipeline = dlt.pipeline(pipeline_name="txpipe_bench", destination="postgres", dataset_name=args.dataset,
                            pipelines_dir=args.pipelines_dir)
    # dlt's documented way to upsert a table: a merge write disposition keyed by the primary key; full
    # reflection keeps numeric(8,2) and timestamptz as they are in the source.
    source = sql_table(table=args.table, write_disposition="merge", primary_key="order_id",
                       reflection_level="full_with_precision")
    t0 = time.perf_counter()
    info = pipeline.run(source)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": round(seconds, 3), "import_seconds": round(imported - started, 3),
                      "has_failed_jobs": bool(info.has_failed_jobs)}))


if __name__ == "__main__":
    main()
