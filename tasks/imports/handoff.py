"""Hand-off: large files run as a run of the ``import-data/default`` deployment, so the caller returns at once.

``processing="auto"`` hands off files above ``inline_max_bytes``; the
deployment run then imports the file inline, reporting progress the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ferry.errors import DeploymentUnavailableError
from ferry.import_params import IMPORT_DEPLOYMENT, ImportRequest
from ferry.records import ImportRecord
from ferry.run_tags import import_tags


def choose_mode(request: ImportRequest) -> str:
    if request.processing != "auto":
        return request.processing
    return "deployment" if request.source_path.stat().st_size > request.inline_max_bytes else "inline"


def dispatch(request: ImportRequest) -> str:
    """Start the import as a run of the import deployment and return its id at once."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    params = {"request": request.model_copy(update={"processing": "inline"}).model_dump(mode="json", by_alias=True)}
    try:
        tags = import_tags(request.workspace, request.resource)
        run = run_deployment(IMPORT_DEPLOYMENT, parameters=params, timeout=0, as_subflow=False, tags=tags)
    except ObjectNotFound:
        raise DeploymentUnavailableError(
            f"The deployment {IMPORT_DEPLOYMENT!r} does not exist on this Prefect server.",
            "Deploy it (`prefect deploy --all` with prefect.yaml) and start a worker for its pool, or run with processing='inline'.",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any API failure means: no deployment run was created
        raise DeploymentUnavailableError(
            f"Could not start a run of {IMPORT_DEPLOYMENT!r}: {type(exc).__name__}: {exc}",
            "Check that a Prefect server is reachable (PREFECT_API_URL), or run with processing='inline'.",
        ) from None
    return str(run.id)


def hand_off(request: ImportRequest, original: ImportRequest, record: ImportRecord, logger) -> ImportRecord | None:
    """The ``submitted`` record when the file went to a deployment run; None when it runs here (a warning says why).

    ``original`` is the request as given (a remote source is fetched again by
    the deployment run itself); ``request`` points at the local copy.
    """
    if choose_mode(request) != "deployment":
        return None
    try:
        deployment_run = dispatch(original)
    except DeploymentUnavailableError as exc:
        if request.processing == "deployment":
            raise
        record.warnings.append(
            f"The file is {record.file_size:,} bytes (above {request.inline_max_bytes:,}), but it ran inline: {exc.message}"
        )
        logger.warning("Running a large import inline: %s", exc)
        return None
    logger.info("Import of %s bytes handed to deployment %s: run %s", f"{record.file_size:,}", IMPORT_DEPLOYMENT, deployment_run)
    return record.model_copy(
        update={
            "status": "submitted",
            "processing_mode": "deployment",
            "deployment_run_id": deployment_run,
            "completed_at": datetime.now(UTC),
        }
    )
