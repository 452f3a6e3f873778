"""Ferry on Prefect deployments: scheduled export jobs, ad-hoc runs, ``ferry serve`` / ``ferry worker``.

Prefect is the ledger. A job is a deployment of the ``export-data`` flow, a run
is a flow run, a run record is the flow's persisted result: Ferry keeps no job
table of its own, so the Prefect UI, the flow-run API, cron schedules and the
CLI all see the same jobs and the same history.
"""
