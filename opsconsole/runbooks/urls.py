from django.urls import path

from . import views

app_name = "runbooks"

urlpatterns = [
    path("", views.runbook_list, name="list"),
    path("runs/<int:run_id>/", views.runbook_run, name="run"),
    path("runs/<int:run_id>/retry-step/", views.retry_step, name="retry_step"),
    path("runs/<int:run_id>/undo/", views.undo, name="undo"),
    path("runs/<int:run_id>/abandon/", views.abandon, name="abandon"),
    path("requests/<int:request_id>/decide/", views.decide, name="decide"),
    path("<str:name>/", views.runbook_detail, name="detail"),
]
