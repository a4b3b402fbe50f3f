"""Tongban Hub's cross-province exchange (跨省通办) as Airflow DAGs, in the style of
tongban_dags.py: thin tasks calling the hub's jobs (`hub.jobs.exchange`), one task per partner hub
(`partners/NAME.yaml` in the hub home), so a partner that is down fails only its own task.
Parsing reads the hub home's file names only (dags/tongban_config.py); without partner files
there are no exchange DAGs.

- `tongban_exchange`: every minute, send what each partner is owed (`hub run exchange
  --partner NAME`): applications collected here for it, our news on applications it collected,
  result documents, withdrawals.
- `tongban_exchange_catalogues`: every 15 minutes, fetch each partner's cross-region item list
  (`hub partners sync-catalogue --partner NAME`); intake also refreshes a list that is too old."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

sys.path.insert(0, str(Path(__file__).parent))
import tongban_config as config  # beside this file in the DAG folder

START = datetime(2026, 1, 1)
# a run every minute: retries come soon and stay short, so the next run is not held up long
DEFAULT_ARGS = {
    "owner": "tongban-ops",
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,  # 10 s, 20 s, 40 s (jittered by Airflow)
    "max_retry_delay": timedelta(minutes=2),
}
PARTNERS = config.partners()


if PARTNERS:
    with DAG(
        dag_id="tongban_exchange",
        description="跨省通办 send what partner hubs are owed",
        schedule=config.cron("* * * * *"),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        dagrun_timeout=timedelta(minutes=30),
        tags=["tongban", "exchange"],
        doc_md="""### 跨省通办 Exchange with partner hubs
Every minute, one task per partner hub: sends the signed messages it is owed from the exchange
outbox — applications our desks collected for it (异地代收代办, 多地联办), our news on applications
its desks collected (status, result documents), withdrawals. Same as `hub run exchange --partner
NAME`. A message counts as delivered only on the partner's signed acknowledgement; one that fails
waits for its own backoff in the outbox, and a refusal that retrying cannot cure is a dead letter
(shown on the application, on `/ops/partners` and as `hub_partner_dead_letters`; after the cause is
fixed: `hub partners retry --partner NAME`). A task fails when the partner's file or our exchange
key is unusable (`hub partners check`).""",
    ):
        for name in PARTNERS:

            @task(task_id=f"exchange_{name}")
            def exchange_partner(partner: str = name) -> dict:
                from hub.jobs.exchange import exchange

                summary = config.run(exchange, partner=partner)
                print(summary.line())
                if summary.unusable:
                    raise RuntimeError(summary.line())  # a broken file or key: fails loudly
                return {
                    "delivered": summary.delivered,
                    "retrying": summary.retrying,
                    "dead": summary.dead,
                    "cancelled": summary.cancelled,
                }

            exchange_partner()

    with DAG(
        dag_id="tongban_exchange_catalogues",
        description="跨域通办目录清单 fetch partner hubs' item lists",
        schedule=config.cron("*/15 * * * *"),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS | {"retries": 4, "retry_delay": timedelta(seconds=30)},
        tags=["tongban", "exchange"],
        doc_md="""### 跨域通办目录清单 Partner item lists
Every 15 minutes, one task per partner hub: asks it (signed) for the list of its items our desks
may collect, and keeps the signed answer; desks see a new list within seconds, a withdrawn item
can no longer be taken. Same as `hub partners sync-catalogue --partner NAME`. A partner that does
not answer fails its task (retried with backoff); intake goes on with the list it has until
`exchange.catalogue_stale_days`.""",
    ):
        for name in PARTNERS:

            @task(task_id=f"sync_catalogue_{name}")
            def sync_catalogue(partner: str = name) -> dict:
                from hub.jobs.exchange import sync_catalogues

                summary = config.run(sync_catalogues, partner=partner)
                print(summary.line())
                if summary.failed:
                    raise RuntimeError(summary.line())  # retried with backoff
                return dict(summary.synced)

            sync_catalogue()
