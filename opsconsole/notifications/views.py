from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from opsconsole import audit
from opsconsole.roles import has_role, role_required

from . import services
from .forms import ChannelForm, MuteForm, SubscribeForm
from .models import Channel, Delivery, Subscription

DELIVERIES_SHOWN = 200


def _page(request, *, subscribe_form=None, channel_form=None, new_channel=None, status=200):
    is_admin = has_role(request.user, "admin")
    mine = Subscription.objects.select_related("channel", "user")
    context = {
        "subscriptions": mine if is_admin else mine.filter(user=request.user),
        "channels": Channel.objects.all(),
        "subscribe_form": subscribe_form or SubscribeForm(),
        "channel_form": channel_form or ChannelForm(),
        "new_channel": new_channel,
        "is_admin": is_admin,
    }
    return render(request, "opsconsole/notifications.html", context, status=status)


@role_required("viewer")
def notifications(request):
    return _page(request)


@role_required("viewer")
@require_POST
def subscribe(request):
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return _page(request, subscribe_form=form, status=400)
    data = form.cleaned_data
    try:
        services.subscribe(
            request.user,
            request.user,
            data["channel"],
            data["event"],
            data["target"],
            ip_address=audit.client_ip(request),
        )
    except services.NotificationRefused as exc:
        form.add_error(None, str(exc))
        return _page(request, subscribe_form=form, status=400)
    messages.success(request, f"Subscribed to {data['event']} on {data['channel']}.")
    return redirect("notifications")


@role_required("viewer")
@require_POST
def unsubscribe(request, subscription_id: int):
    subscription = get_object_or_404(Subscription, pk=subscription_id)
    try:
        services.unsubscribe(request.user, subscription, ip_address=audit.client_ip(request))
    except services.NotificationRefused as exc:
        messages.error(request, str(exc))
    return redirect("notifications")


@role_required("admin")
@require_POST
def channel_create(request):
    """Create a channel; a generated webhook signing secret is shown on this response only."""
    form = ChannelForm(request.POST)
    if not form.is_valid():
        return _page(request, channel_form=form, status=400)
    data = form.cleaned_data
    try:
        created = services.create_channel(
            request.user,
            data["name"],
            data["kind"],
            form.values(),
            ip_address=audit.client_ip(request),
        )
    except services.NotificationRefused as exc:
        form.add_error(None, str(exc))
        return _page(request, channel_form=form, status=400)
    return _page(request, new_channel=created)


@role_required("admin")
@require_POST
def channel_mute(request, channel_id: int):
    channel = get_object_or_404(Channel, pk=channel_id)
    form = MuteForm(request.POST)
    form.is_valid()  # a boolean: anything but "on" is False
    muted = form.cleaned_data.get("muted", False)
    services.set_muted(request.user, channel, muted, ip_address=audit.client_ip(request))
    messages.success(request, f"{channel.name} {'muted' if muted else 'unmuted'}.")
    return redirect("notifications")


@role_required("viewer")
def deliveries(request):
    """The delivery log: every message, its attempts and the last failure's reason."""
    rows = Delivery.objects.select_related("channel")[:DELIVERIES_SHOWN]
    return render(request, "opsconsole/deliveries.html", {"deliveries": rows})
