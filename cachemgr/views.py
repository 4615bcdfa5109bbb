"""Cache pages: thin views (role, form, one service call); htmx requests get the partial."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from jobs import runner
from jobs.models import Run
from opsconsole import audit
from opsconsole.roles import has_role, role_required
from opsconsole.shared import SharedAnswers

from . import charts, registry, targets
from .forms import (
    AnalyzeForm,
    ConfirmPatternForm,
    InvalidateKeyForm,
    KeyForm,
    KeySearchForm,
    NamespaceForm,
    PatternForm,
    TagForm,
    TTLForm,
    WarmForm,
)
from .services import advice, analysis, invalidation, keys, stats, warming

FAULTS = (targets.UnknownTarget, targets.TargetUnavailable)


def _target(request) -> str:
    return request.GET.get("target") or request.POST.get("target") or targets.default()


def _base(target: str) -> dict:
    return {"targets": targets.names(), "target": target}


def _errors(form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


def _back(name: str, target: str, **query) -> str:
    return f"{reverse(name)}?{urlencode({'target': target, **query})}"


# --- stats ------------------------------------------------------------------------


@role_required("viewer")
def stats_page(request):
    target = _target(request)
    context = _base(target)
    status = 200
    try:
        targets.url(target)
        context.update(_live_stats.get(target))
    except targets.UnknownTarget as exc:
        context["error"], status = str(exc), 404
    except targets.TargetUnavailable as exc:
        context["error"] = str(exc)
    if request.htmx:
        return render(request, "cachemgr/partials/_stats_live.html", context, status=status)
    context.update(_history_context(request, target))
    return render(request, "cachemgr/stats.html", context, status=status)


def _history_context(request, target: str) -> dict:
    span = request.GET.get("range", "24h")
    if span not in stats.HISTORY_RANGES:
        span = "24h"
    if target not in targets.names():  # nothing to share: no snapshots, an empty chart
        return _read_history((target, span))
    return _histories.get((target, span))


def _read_live(target: str) -> dict:
    return {"server": stats.server_stats(target), "discovery": stats.namespaces(target)}


def _read_history(key: tuple[str, str]) -> dict:
    target, span = key
    rows = list(
        stats.history(target, stats.HISTORY_RANGES[span]).values_list(
            "taken_at", "hit_rate", "used_memory", "ops_per_sec", "evicted_keys"
        )
    )
    return {"range": span, "ranges": list(stats.HISTORY_RANGES), "charts": charts.history(rows)}


# A target's INFO figures, namespaces and history charts are the same for every operator:
# read (and the charts drawn) once per SHARED_READ_S by a web process, however many
# operators poll the page. An unreachable target is not kept (the next request retries).
_live_stats = SharedAnswers(_read_live)
_histories = SharedAnswers(_read_history)


@role_required("viewer")
def stats_history(request):
    target = _target(request)
    context = {**_base(target), **_history_context(request, target)}
    return render(request, "cachemgr/partials/_history.html", context)


# --- key browser ----------------------------------------------------------------


@role_required("viewer")
def key_list(request):
    form = KeySearchForm(request.GET or None)
    target = _target(request)
    context = {**_base(target), "form": form, "page": None, "page_sizes": keys.PAGE_SIZES}
    status = 200
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        data = form.cleaned_data if form.is_bound else {}
        pattern = data.get("pattern") or "*"
        page_size = data.get("page_size") or keys.PAGE_SIZES[0]
        try:
            targets.url(target)
            context["page"] = keys.search(
                target,
                pattern,
                data.get("cursor") or 0,
                page_size,
                listed_before=data.get("listed") or 0,
            )
            context.update(pattern=pattern, page_size=page_size)
        except targets.UnknownTarget as exc:
            context["error"], status = str(exc), 404
        except targets.TargetUnavailable as exc:
            context["error"] = str(exc)
    template = "cachemgr/partials/_key_rows.html" if request.htmx else "cachemgr/keys.html"
    return render(request, template, context, status=status)


@role_required("viewer")
def key_detail(request):
    target = _target(request)
    context = {**_base(target), "ttl_form": None}
    status = 200
    try:
        key = keys.key_from_hex(request.GET.get("key", ""))
        targets.url(target)
        context["detail"] = keys.inspect(target, key)
        context["key_form"] = KeyForm(initial={"target": target, "key": key.hex()})
        context["ttl_form"] = TTLForm(initial={"target": target, "key": key.hex()})
    except ValueError:
        context["error"], status = "That key reference is not valid hex.", 400
    except targets.UnknownTarget as exc:
        context["error"], status = str(exc), 404
    except targets.TargetUnavailable as exc:
        context["error"] = str(exc)
    return render(request, "cachemgr/key_detail.html", context, status=status)


@role_required("operator")
@require_POST
def key_delete(request):
    form = KeyForm(request.POST)
    target = _target(request)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect(_back("cachemgr:keys", target))
    data = form.cleaned_data
    if invalidation.first_submission(data["request_key"]):
        try:
            deleted = keys.delete_key(
                data["target"], data["key"], request.user, audit.client_ip(request)
            )
            messages.success(request, f"Deleted {keys.show(data['key'])} ({deleted} key).")
        except FAULTS as exc:
            messages.error(request, str(exc))
    return redirect(_back("cachemgr:keys", target))


@role_required("operator")
@require_POST
def key_ttl(request):
    form = TTLForm(request.POST)
    target = _target(request)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect(_back("cachemgr:keys", target))
    data = form.cleaned_data
    if invalidation.first_submission(data["request_key"]):
        try:
            changed = keys.set_ttl(
                data["target"], data["key"], data["seconds"], request.user, audit.client_ip(request)
            )
            what = f"TTL set to {data['seconds']} s" if data["seconds"] else "TTL cleared"
            if changed:
                messages.success(request, f"{keys.show(data['key'])}: {what}.")
            else:
                messages.warning(request, f"{keys.show(data['key'])}: unchanged (key gone?).")
        except FAULTS as exc:
            messages.error(request, str(exc))
    return redirect(_back("cachemgr:key_detail", target, key=data["key"].hex()))


# --- invalidation ---------------------------------------------------------------


@role_required("operator")
def invalidate(request):
    target = _target(request)
    initial = {"target": target}
    context = {
        **_base(target),
        "key_form": InvalidateKeyForm(initial=initial),
        "pattern_form": PatternForm(initial=initial),
        "tag_form": TagForm(initial=initial),
        "namespace_form": NamespaceForm(initial=initial),
        "runs": Run.objects.filter(name=invalidation.JOB_NAME)[:10],
    }
    return render(request, "cachemgr/invalidate.html", context)


@role_required("operator")
def invalidate_preview(request):
    form = PatternForm(request.GET or None)
    target = _target(request)
    context = {**_base(target), "form": form}
    if not form.is_valid():
        messages.error(request, _errors(form) or "Enter a target and a pattern.")
        return redirect(_back("cachemgr:invalidate", target))
    data = form.cleaned_data
    try:
        preview = invalidation.start_pattern_invalidation(
            data["target"], data["pattern"], request.user, dry_run=True
        )
    except FAULTS as exc:
        messages.error(request, str(exc))
        return redirect(_back("cachemgr:invalidate", target))
    context.update(_preview_context(request, preview))
    return render(request, "cachemgr/invalidate_preview.html", context)


def _preview_context(request, preview, confirm_form=None, errors=()) -> dict:
    is_admin = has_role(request.user, "admin")
    return {
        "preview": preview,
        "is_admin": is_admin,
        "confirm_form": confirm_form
        or ConfirmPatternForm(initial={"target": preview.target, "pattern": preview.pattern}),
        "confirm_errors": list(errors),
        "refused": preview.matches_everything and not is_admin,
    }


@role_required("operator")
@require_POST
def invalidate_pattern(request):
    form = ConfirmPatternForm(request.POST)
    target = _target(request)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect(_back("cachemgr:invalidate", target))
    data = form.cleaned_data
    try:
        run = invalidation.start_pattern_invalidation(
            data["target"],
            data["pattern"],
            request.user,
            confirm=data["confirm"],
            is_admin=has_role(request.user, "admin"),
            request_key=data["request_key"] or None,
            ip_address=audit.client_ip(request),
        )
    except invalidation.ConfirmationNeeded as exc:
        context = {**_base(target), **_preview_context(request, exc.preview, form)}
        context["confirm_errors"] = exc.errors
        return render(request, "cachemgr/invalidate_preview.html", context, status=400)
    except (*FAULTS, runner.LaunchRefused) as exc:
        messages.error(request, str(exc))
        return redirect(_back("cachemgr:invalidate", target))
    messages.success(request, f"Invalidating {data['pattern']} on {data['target']}.")
    return redirect("jobs:run_detail", run.pk)


def _quick_action(request, form_class, action, describe):
    """Validate, run `action(data)` once per form submission, flash the outcome."""
    form = form_class(request.POST)
    target = _target(request)
    if not form.is_valid():
        messages.error(request, _errors(form))
    elif invalidation.first_submission(form.cleaned_data["request_key"]):
        try:
            messages.success(request, describe(form.cleaned_data, action(form.cleaned_data)))
        except (*FAULTS, invalidation.BadPattern) as exc:
            messages.error(request, str(exc))
    return redirect(_back("cachemgr:invalidate", target))


@role_required("operator")
@require_POST
def invalidate_key(request):
    return _quick_action(
        request,
        InvalidateKeyForm,
        lambda d: invalidation.invalidate_key(
            d["target"], d["key"], request.user, audit.client_ip(request)
        ),
        lambda d, n: f"Key {d['key']!r}: {n} deleted.",
    )


@role_required("operator")
@require_POST
def invalidate_tag(request):
    return _quick_action(
        request,
        TagForm,
        lambda d: invalidation.invalidate_tag(
            d["target"], d["tag"], request.user, audit.client_ip(request)
        ),
        lambda d, n: f"Tag {d['tag']}: {n:,} keys deleted.",
    )


@role_required("operator")
@require_POST
def bump_namespace(request):
    return _quick_action(
        request,
        NamespaceForm,
        lambda d: invalidation.bump_namespace(
            d["target"], d["namespace"], request.user, audit.client_ip(request)
        ),
        lambda d, v: f"Namespace {d['namespace']}: v{v['old_version']} → v{v['new_version']}.",
    )


# --- warming ----------------------------------------------------------------------


@role_required("viewer")
def warm(request):
    target = _target(request)
    context = {
        **_base(target),
        "form": WarmForm(initial={"target": target}),
        "runs": Run.objects.filter(name__startswith=warming.JOB_NAME)[:10],
        "rows": [],
    }
    try:
        context["rows"] = warming.overview(target)
    except FAULTS as exc:
        context["error"] = str(exc)
    return render(request, "cachemgr/warm.html", context)


@role_required("operator")
@require_POST
def warm_start(request):
    form = WarmForm(request.POST)
    target = _target(request)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect(_back("cachemgr:warm", target))
    data = form.cleaned_data
    try:
        run = warming.start_warm(
            data["target"],
            data["warmer"],
            request.user,
            limit=data["limit"],
            request_key=data["request_key"] or None,
            ip_address=audit.client_ip(request),
        )
    except (*FAULTS, registry.UnknownWarmer, runner.LaunchRefused) as exc:
        messages.error(request, str(exc))
        return redirect(_back("cachemgr:warm", target))
    return redirect("jobs:run_detail", run.pk)


# --- exact analysis and advice ---------------------------------------------------------


@role_required("viewer")
def analysis_page(request):
    target = _target(request)
    context = {**_base(target), "form": AnalyzeForm(initial={"target": target}), "row": None}
    status = 200
    try:
        targets.url(target)
        context["row"] = row = analysis.latest(target)
        context["history"] = analysis.history(target)
        if row is not None:
            context["namespaces"] = analysis.namespace_rows(row)
            context["previous"] = analysis.previous_complete(row)
    except targets.UnknownTarget as exc:
        context["error"], status = str(exc), 404
    return render(request, "cachemgr/analysis.html", context, status=status)


@role_required("operator")
@require_POST
def analysis_start(request):
    form = AnalyzeForm(request.POST)
    target = _target(request)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect(_back("cachemgr:analysis", target))
    data = form.cleaned_data
    try:
        resume = analysis.stopped(data["target"], data["resume"]) if data["resume"] else None
        run = analysis.start_analysis(
            data["target"],
            request.user,
            resume=resume,
            request_key=data["request_key"] or None,
            ip_address=audit.client_ip(request),
        )
    except (*FAULTS, analysis.NotResumable, runner.LaunchRefused) as exc:
        messages.error(request, str(exc))
        return redirect(_back("cachemgr:analysis", target))
    return redirect("jobs:run_detail", run.pk)


@role_required("viewer")
def advice_page(request):
    target = _target(request)
    context = _base(target)
    status = 200
    try:
        targets.url(target)
        context["advice"] = advice.advice(target)
    except targets.UnknownTarget as exc:
        context["error"], status = str(exc), 404
    except targets.TargetUnavailable as exc:
        context["error"] = str(exc)
    return render(request, "cachemgr/advice.html", context, status=status)
