"""A job's notifications as Prefect automations: on a run's end, send to a Prefect notification block.

Each automation is owned by the job's deployment (found through it, deleted
with it) and named ``ferry-job:<deployment id>:notify:<n>``.
"""

from __future__ import annotations

from deployments.job_model import ExportJob, JobNotification
from ferry.errors import ParameterError, Problem

_AUTOMATION_PREFIX = "ferry-job"
_EVENTS = {"success": "prefect.flow-run.Completed", "failed": "prefect.flow-run.Failed"}
_EXTRA_FAILED = ("prefect.flow-run.Crashed",)


def _automation_name(deployment_id, index: int) -> str:
    return f"{_AUTOMATION_PREFIX}:{deployment_id}:notify:{index}"


def check_notification_blocks(client, job: ExportJob) -> None:
    problems = []
    for i, notification in enumerate(job.notifications):
        if _block_document(client, notification.block) is None:
            problems.append(
                Problem(
                    f"notifications[{i}].block",
                    notification.block,
                    "no such Prefect block; create it first (Prefect UI > Blocks, or `prefect block create`)",
                )
            )
    if problems:
        raise ParameterError(problems)


def _block_document(client, reference: str):
    from prefect.exceptions import ObjectNotFound

    slug, _, name = reference.partition("/")
    try:
        return client.read_block_document_by_name(name=name, block_type_slug=slug, include_secrets=False)
    except ObjectNotFound:
        return None


def _job_automations(client, deployment_id) -> list:
    prefix = f"{_AUTOMATION_PREFIX}:{deployment_id}:notify:"
    related = client.read_resource_related_automations(f"prefect.deployment.{deployment_id}")
    return sorted((a for a in related if a.name.startswith(prefix)), key=lambda a: int(a.name.rsplit(":", 1)[1]))


def write_notifications(client, deployment_id, job: ExportJob) -> None:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    delete_notifications(client, deployment_id)
    for i, notification in enumerate(job.notifications):
        block = _block_document(client, notification.block)
        events = {_EVENTS[on] for on in notification.on}
        if "failed" in notification.on:
            events |= set(_EXTRA_FAILED)
        body = (
            f"Ferry export job {job.name!r}: run {{{{ flow_run.name }}}} ended {{{{ flow_run.state.name }}}}.\n"
            f"{{{{ flow_run.state.message }}}}\nRun id: {{{{ flow_run.id }}}}"
        )
        client.create_automation(
            AutomationCore(
                name=_automation_name(deployment_id, i),
                description=f"Ferry job {job.name}: notify {notification.block} on {', '.join(notification.on)}",
                enabled=True,
                owner_resource=f"prefect.deployment.{deployment_id}",  # found again via the deployment, deleted with it
                trigger=EventTrigger(
                    expect=events,
                    match_related={"prefect.resource.id": f"prefect.deployment.{deployment_id}"},
                    posture=Posture.Reactive,
                    threshold=1,
                    within=0,
                ),
                actions=[
                    SendNotification(block_document_id=block.id, subject=f"Ferry job {job.name}: {{{{ flow_run.state.name }}}}", body=body)
                ],
            )
        )


def read_notifications(client, deployment_id) -> list[JobNotification]:
    notifications = []
    for automation in _job_automations(client, deployment_id):
        action = automation.actions[0]
        document = client.read_block_document(action.block_document_id, include_secrets=False)
        expect = set(getattr(automation.trigger, "expect", set()))
        on = [outcome for outcome, event in _EVENTS.items() if event in expect]
        notifications.append(JobNotification(on=on, block=f"{document.block_type.slug}/{document.name}"))
    return notifications


def delete_notifications(client, deployment_id) -> None:
    for automation in _job_automations(client, deployment_id):
        client.delete_automation(automation.id)
