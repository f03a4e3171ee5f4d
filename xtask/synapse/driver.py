"""Drive Synapse's own background updater offline, for comparisons with updraft.

Usage: python driver.py --config hs.yaml [--max-batches N] [--queue JOB] [--finish JOB]

Loads Synapse (the installed matrix-synapse package) against the configured
database exactly as its `update_synapse_database` tool does, optionally queues a
job with the rows its admin API inserts, then runs background updates with
sleeping disabled: all of them, or at most N batches (to stop half-way for
hand-over tests). With --queue or --finish it stops once that job's rows
are gone: Synapse queues unrelated updates of its own at startup (sliding
sync tables) which need state groups a seeded world does not have.
Prints one JSON line: {"batches", "seconds", "done"}.
"""

import argparse
import json
import logging
import sys
import time

import yaml
from twisted.internet import defer, reactor

from synapse._scripts.update_synapse_database import MockHomeserver
from synapse.config.homeserver import HomeServerConfig

# The rows Synapse's start_job admin endpoint inserts (SEMANTICS §5).
JOB_ROWS = {
    "populate_stats_process_rooms": [("populate_stats_process_rooms", "{}", "")],
    "regenerate_directory": [
        ("populate_user_directory_createtables", "{}", ""),
        ("populate_user_directory_process_rooms", "{}", "populate_user_directory_createtables"),
        ("populate_user_directory_process_users", "{}", "populate_user_directory_process_rooms"),
        ("populate_user_directory_cleanup", "{}", "populate_user_directory_process_users"),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--queue", action="append", default=[], choices=sorted(JOB_ROWS))
    parser.add_argument("--finish", action="append", default=[], choices=sorted(JOB_ROWS))
    args = parser.parse_args()

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s",
    )
    with open(args.config) as f:
        config_dict = yaml.safe_load(f)
    config = HomeServerConfig()
    config.parse_config_dict(config_dict, "", "")
    hs = MockHomeserver(config)
    hs.setup()
    hs.get_storage_controllers()
    result: dict = {}

    async def run() -> None:
        try:
            store = hs.get_datastores().main
            for job in args.queue:
                await store.db_pool.simple_insert_many(
                    table="background_updates",
                    keys=("update_name", "progress_json", "depends_on"),
                    values=JOB_ROWS[job],
                    desc="driver_queue_job",
                )
            updates = store.db_pool.updates
            watched = [r[0] for job in args.queue + args.finish for r in JOB_ROWS[job]]

            async def watched_pending() -> bool:
                rows = await store.db_pool.simple_select_many_batch(
                    table="background_updates",
                    column="update_name",
                    iterable=watched,
                    retcols=("update_name",),
                    desc="driver_pending",
                )
                return len(rows) > 0

            batches = 0
            done = False
            start = time.monotonic()
            while args.max_batches is None or batches < args.max_batches:
                if watched and not await watched_pending():
                    done = True
                    break
                if await updates.do_next_background_update(False):
                    done = True
                    break
                batches += 1
            result.update(batches=batches, seconds=time.monotonic() - start, done=done)
        except Exception as e:  # reported, and the exit code says it failed
            logging.exception("driver failed")
            result.update(error=repr(e))
        finally:
            reactor.stop()

    hs.get_clock().call_when_running(lambda: defer.ensureDeferred(run()))
    reactor.run()
    print(json.dumps(result), flush=True)
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
