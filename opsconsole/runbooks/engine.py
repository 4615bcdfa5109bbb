"""Running a runbook inside its Run: one step at a time, each checkpointed.

The steps' state lives in `Run.result["steps"]`, committed before and after
every step, so a new attempt after a worker death continues at the first
unfinished step and never repeats a finished one.
"""

from django.utils import timezone

from jobs.models import Run
from jobs.runner import PermanentError, RunContext
from opsconsole import audit

from .book import Runbook, StepContext


def initial_steps(book: Runbook, previous: list[dict] | None) -> list[dict]:
    """Fresh step states; steps that succeeded in `previous` (a retried run) stay done."""
    done = {s["name"]: s for s in previous or [] if s["status"] == "succeeded"}
    states = []
    for n, step in enumerate(book.steps, start=1):
        if step.name in done:
            states.append({**done[step.name], "carried_over": True})
        else:
            states.append({"n": n, "name": step.name, "status": "pending"})
    return states


def _now() -> str:
    return timezone.now().isoformat()


def execute_runbook(book: Runbook, ctx: RunContext, params: dict) -> dict:
    mode = params.get("mode", "run")
    if mode == "undo":
        return undo_runbook(book, ctx, params)
    steps = ctx.run.result.get("steps") or initial_steps(book, _previous_steps(params))
    actor = ctx.run.actor or ctx.run.actor_name
    outputs = {s["name"]: s.get("output", {}) for s in steps if s["status"] == "succeeded"}
    for step, state in zip(book.steps, steps, strict=True):
        if state["status"] == "succeeded":
            continue
        if state["status"] == "running" and not step.idempotent:
            state["status"] = "interrupted"
            ctx.checkpoint(steps=steps)
            raise PermanentError(
                f"Step {state['n']} ({step.name}) was interrupted and is not safe to repeat: "
                "check its effect, then retry the step or undo."
            )
        state.update(status="running", started_at=_now(), error="")
        ctx.checkpoint(steps=steps)
        ctx.progress(state["n"] - 1, len(steps), f"step {state['n']}: {step.name}")
        step_ctx = StepContext(
            params=params.get("params", {}),
            actor=actor,
            run=ctx.run,
            outputs=outputs,
            progress=lambda message, n=state["n"]: ctx.progress(n - 1, len(steps), message),
        )
        try:
            output = step.action(step_ctx) or {}
        except Exception as exc:
            state.update(status="failed", ended_at=_now(), error=f"{type(exc).__name__}: {exc}")
            ctx.checkpoint(steps=steps)
            _audit_step(actor, book, state, ctx.run, outcome="failed", error=state["error"])
            raise PermanentError(f"Step {state['n']} ({step.name}) failed: {exc}") from exc
        state.update(status="succeeded", ended_at=_now(), output=output)
        outputs[step.name] = output
        ctx.checkpoint(steps=steps)
        _audit_step(actor, book, state, ctx.run)
    ctx.progress(len(steps), len(steps), "all steps done")
    return {"runbook": book.name, "mode": "run", "steps": steps}


def undo_runbook(book: Runbook, ctx: RunContext, params: dict) -> dict:
    """Run the undo of every step that succeeded in the source run, newest first."""
    previous = _previous_steps(params) or []
    actor = ctx.run.actor or ctx.run.actor_name
    undone = ctx.run.result.get("undone", [])
    by_name = {step.name: step for step in book.steps}
    outputs = {s["name"]: s.get("output", {}) for s in previous if s["status"] == "succeeded"}
    for state in reversed(previous):
        step = by_name.get(state["name"])
        if state["status"] != "succeeded" or step is None or step.undo is None:
            continue
        if state["name"] in undone:
            continue
        step_ctx = StepContext(params.get("params", {}), actor, ctx.run, outputs)
        try:
            output = step.undo(step_ctx) or {}
        except Exception as exc:
            _audit_step(
                actor,
                book,
                state,
                ctx.run,
                action="runbook.undo_step",
                outcome="failed",
                error=f"{type(exc).__name__}: {exc}",
            )
            raise PermanentError(f"Undo of step {state['n']} ({step.name}) failed: {exc}") from exc
        undone.append(state["name"])
        ctx.checkpoint(undone=undone)
        _audit_step(actor, book, {**state, "output": output}, ctx.run, action="runbook.undo_step")
    return {"runbook": book.name, "mode": "undo", "undone": undone}


def _previous_steps(params: dict) -> list[dict] | None:
    source = params.get("resume_from")
    if not source:
        return None
    run = Run.objects.filter(pk=source).first()
    return run.result.get("steps") if run else None


def _audit_step(actor, book, state, run, action="runbook.step", outcome="ok", error=""):
    audit.write(
        actor,
        action,
        f"{book.name}: {state['name']}",
        outcome=outcome,
        error=error,
        run=run,
        params={"step": state["n"], "output": state.get("output", {})},
    )
