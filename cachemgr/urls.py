from django.urls import path

from . import views

app_name = "cachemgr"

urlpatterns = [
    path("", views.stats_page, name="stats"),
    path("history/", views.stats_history, name="history"),
    path("keys/", views.key_list, name="keys"),
    path("keys/inspect/", views.key_detail, name="key_detail"),
    path("keys/delete/", views.key_delete, name="key_delete"),
    path("keys/ttl/", views.key_ttl, name="key_ttl"),
    path("invalidate/", views.invalidate, name="invalidate"),
    path("invalidate/preview/", views.invalidate_preview, name="invalidate_preview"),
    path("invalidate/pattern/", views.invalidate_pattern, name="invalidate_pattern"),
    path("invalidate/key/", views.invalidate_key, name="invalidate_key"),
    path("invalidate/tag/", views.invalidate_tag, name="invalidate_tag"),
    path("invalidate/namespace/", views.bump_namespace, name="bump_namespace"),
    path("warm/", views.warm, name="warm"),
    path("warm/start/", views.warm_start, name="warm_start"),
    path("analysis/", views.analysis_page, name="analysis"),
    path("analysis/start/", views.analysis_start, name="analysis_start"),
    path("advice/", views.advice_page, name="advice"),
]
