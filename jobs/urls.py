from django.urls import path

from . import views

app_name = "jobs"

urlpatterns = [
    path("", views.history, name="history"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/cancel/", views.cancel, name="cancel"),
    path("runs/<int:run_id>/retry/", views.retry, name="retry"),
    path("run/<str:name>/", views.launch, name="launch"),
    path("stats/<str:name>/", views.job_stats, name="stats"),
    path("overview/", views.overview, name="overview"),
    path("schedules/<int:task_id>/toggle/", views.schedule_toggle, name="schedule_toggle"),
    path("schedules/<int:task_id>/edit/", views.schedule_edit, name="schedule_edit"),
]
