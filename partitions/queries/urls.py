from django.urls import path

from . import views

app_name = "queries"

urlpatterns = [
    path("", views.slow_queries, name="slow"),
    path("reset/", views.reset_stats, name="reset_stats"),
    path("activity/", views.live_activity, name="activity"),
    path("activity/<int:pid>/cancel/", views.cancel_backend, name="cancel_backend"),
    path("activity/<int:pid>/terminate/", views.terminate_backend, name="terminate_backend"),
    path("explain/", views.explain, name="explain"),
    path("indexes/", views.indexes, name="indexes"),
    path("indexes/report/", views.index_report, name="index_report"),
    path("indexes/apply/", views.apply_index, name="apply"),
    path("indexes/applied/", views.applied, name="applied"),
    path("indexes/applied/<int:run_id>/rollback/", views.rollback, name="rollback"),
]
