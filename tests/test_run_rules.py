"""Table-driven rules of a run: TRANSITIONS, apply_change, derived_status, readiness."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowboard.models.execution import (
    TRANSITIONS,
    Execution,
    ExecutionKind,
    IllegalTransition,
    Task,
    TaskError,
    TaskStatus,
    check_transition,
    sources,
)
from flowboard.runs.changes import TaskChange, apply_change
from flowboard.runs.readiness import blocked_by, downstream_end, is_ready, startable

S = TaskStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALLOWED = {
    (S.PENDING, S.QUEUED), (S.PENDING, S.PROCESSING), (S.PENDING, S.COMPLETED),
    (S.PENDING, S.FAILED), (S.PENDING, S.CANCELLED),
    (S.QUEUED, S.QUEUED), (S.QUEUED, S.PROCESSING), (S.QUEUED, S.FAILED),
    (S.QUEUED, S.CANCELLED),
    (S.PROCESSING, S.PROCESSING), (S.PROCESSING, S.COMPLETED), (S.PROCESSING, S.FAILED),
    (S.PROCESSING, S.CANCELLED),
}  # fmt: skip
PAIRS = [(a, b) for a in S for b in S]


def _task(node_id: str, status: TaskStatus = S.PENDING, deps: tuple[str, ...] = ()) -> Task:
    return Task(
        node_id=node_id,
        node_type="video_gen",
        status=status,
        depends_on=list(deps),
        created_at=NOW,
        updated_at=NOW,
    )


def _execution(*tasks: Task) -> Execution:
    return Execution(
        id="exec_1",
        org_id="org",
        flow_id="flow",
        kind=ExecutionKind.FLOW,
        tasks={t.node_id: t for t in tasks},
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(("current", "target"), PAIRS)
def test_transitions_allow_exactly_the_table(current: TaskStatus, target: TaskStatus) -> None:
    allowed = (current, target) in ALLOWED
    assert (target in TRANSITIONS[current]) is allowed
    assert (current in sources(target)) is allowed
    if allowed:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target)


@pytest.mark.parametrize(
    ("statuses", "derived"),
    [
        ((S.PENDING,), S.PENDING),
        ((S.PENDING, S.PENDING), S.PENDING),
        ((S.PENDING, S.COMPLETED), S.PROCESSING),
        ((S.QUEUED, S.COMPLETED), S.PROCESSING),
        ((S.PROCESSING, S.FAILED), S.PROCESSING),
        ((S.COMPLETED, S.COMPLETED), S.COMPLETED),
        ((S.COMPLETED, S.CANCELLED), S.CANCELLED),
        ((S.CANCELLED, S.FAILED), S.FAILED),
        ((S.FAILED,), S.FAILED),
    ],
)
def test_derived_status(statuses: tuple[TaskStatus, ...], derived: TaskStatus) -> None:
    execution = _execution(*(_task(f"n{i}", s) for i, s in enumerate(statuses)))
    assert execution.derived_status() is derived


@pytest.mark.parametrize(
    ("start", "change", "status", "progress", "attempts"),
    [
        (S.PENDING, TaskChange(status=S.PROCESSING, add_attempt=True), S.PROCESSING, 0.0, 1),
        (S.PROCESSING, TaskChange(progress=40.0), S.PROCESSING, 40.0, 0),
        (S.PROCESSING, TaskChange(progress=100.0), S.PROCESSING, 99.0, 0),
        (S.PROCESSING, TaskChange(status=S.COMPLETED), S.COMPLETED, 100.0, 0),
        (S.PROCESSING, TaskChange(status=S.FAILED), S.FAILED, 0.0, 0),
        (S.QUEUED, TaskChange(status=S.QUEUED, queue_position=2), S.QUEUED, 0.0, 0),
    ],
)
def test_apply_change(
    start: TaskStatus, change: TaskChange, status: TaskStatus, progress: float, attempts: int
) -> None:
    before = _execution(_task("a", start))
    after = apply_change(before, "a", change)
    task = after.tasks["a"]
    assert (task.status, task.progress, task.attempts) == (status, progress, attempts)
    assert after.version == before.version + 1
    assert after.status is after.derived_status()
    assert (task.finished_at is not None) is status.terminal
    assert task.queue_position == (change.queue_position if status is S.QUEUED else None)
    assert before.tasks["a"].status is start  # the input is left as it was


def test_apply_change_keeps_progress_monotonic_and_refuses_illegal_moves() -> None:
    running = apply_change(_execution(_task("a", S.PROCESSING)), "a", TaskChange(progress=60.0))
    assert apply_change(running, "a", TaskChange(progress=20.0)).tasks["a"].progress == 60.0
    done = apply_change(running, "a", TaskChange(status=S.COMPLETED))
    with pytest.raises(IllegalTransition):
        apply_change(done, "a", TaskChange(status=S.PROCESSING))


@pytest.mark.parametrize(
    ("upstream", "ready", "blocked"),
    [
        (S.PENDING, False, None),
        (S.QUEUED, False, None),
        (S.PROCESSING, False, None),
        (S.COMPLETED, True, None),
        (S.FAILED, False, "up"),
        (S.CANCELLED, False, "up"),
    ],
)
def test_readiness_follows_the_upstream(
    upstream: TaskStatus, ready: bool, blocked: str | None
) -> None:
    execution = _execution(_task("up", upstream), _task("down", deps=("up",)))
    down = execution.tasks["down"]
    assert is_ready(execution, down) is ready
    assert blocked_by(execution, down) == blocked
    assert ("down" in startable(execution, 10)) is ready


@pytest.mark.parametrize(("upstream", "ends"), [(S.FAILED, S.FAILED), (S.CANCELLED, S.CANCELLED)])
def test_a_blocked_task_ends_as_its_upstream(upstream: TaskStatus, ends: TaskStatus) -> None:
    execution = _execution(_task("up", upstream), _task("down", deps=("up",)))
    change = downstream_end(execution, "up")
    assert change.status is ends
    assert change.error == TaskError(
        code="upstream_failed", message=f"upstream node 'up' ended {upstream.value}"
    )


@pytest.mark.parametrize(
    ("running", "limit", "started"),
    [(0, 3, ["a", "b", "c"]), (1, 3, ["a", "b"]), (3, 3, []), (4, 3, []), (0, 1, ["a"])],
)
def test_startable_respects_the_concurrency_limit(
    running: int, limit: int, started: list[str]
) -> None:
    busy = [_task(f"r{i}", S.PROCESSING) for i in range(running)]
    execution = _execution(*busy, _task("a"), _task("b"), _task("c"))
    assert startable(execution, limit) == started


def test_a_dependency_outside_the_run_is_not_waited_for() -> None:
    execution = _execution(_task("down", deps=("not-in-this-run",)))
    assert is_ready(execution, execution.tasks["down"])
    assert startable(execution, 1) == ["down"]
