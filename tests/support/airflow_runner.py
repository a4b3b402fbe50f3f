"""Run in a subprocess by tests/test_dags.py, so Airflow's settings and logging never touch the
test process: `python tests/support/airflow_runner.py check` prints what the DagBag found;
`python tests/support/airflow_runner.py run DAG_ID [LOGICAL_DATE] ...` runs each with dag.test() and
prints the run states, as JSON on the last line."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
from airflow.models.pool import Pool

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> dict:
    started = time.perf_counter()
    bag = DagBag(str(REPO / "dags"))
    parsed = time.perf_counter() - started
    if argv[0] == "check":
        dags = {}
        for dag_id, dag in bag.dags.items():
            dags[dag_id] = {
                "tags": sorted(dag.tags),
                "doc_md": bool(dag.doc_md and dag.doc_md.strip()),
                "tasks": {
                    t.task_id: {
                        "retries": t.retries,
                        "exponential": t.retry_exponential_backoff,
                        "pool": t.pool,
                        "outlets": [a.uri for a in t.outlets],
                    }
                    for t in dag.tasks
                },
                "schedule": type(dag.timetable).__name__,
            }
        hub_loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("hub", "plugins", "paramiko", "zeep"))
        return {"import_errors": bag.import_errors, "dags": dags, "parse_seconds": parsed, "parse_imported": hub_loaded}
    DagBundlesManager().sync_bundles_to_db()  # what `airflow dag-processor` does first
    sys.path.insert(0, str(REPO / "dags"))
    import tongban_config

    for name, pool in tongban_config.pools().items():  # what `make airflow` imports
        Pool.create_or_update_pool(name, pool["slots"], pool["description"], include_deferred=False)
    sync_bag_to_db(bag, "dags-folder", None)
    states = []
    args = argv[1:]
    while args:
        dag_id = args.pop(0)
        logical = datetime.fromisoformat(args.pop(0)) if args and args[0][:1].isdigit() else None
        dag = bag.dags[dag_id]
        for t in dag.tasks:  # a failure fails the test now, not after the backoff (the DagBag test checks retries)
            t.retries = 0
        run = dag.test(logical_date=logical) if logical else dag.test()
        states.append([dag_id, str(run.state), {ti.task_id: str(ti.state) for ti in run.get_task_instances()}])
    return {"runs": states, "asset_events": _asset_events()}


def _asset_events() -> dict[str, int]:
    """Asset URI -> events recorded so far (in this AIRFLOW_HOME)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.uri, func.count(AssetEvent.id))
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .group_by(AssetModel.uri)
        ).all()
    return {uri: n for uri, n in rows}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), ensure_ascii=False, default=str))
