from django.urls import path

from . import views

app_name = "jobs"

urlpatterns = [
    path("", views.history, name="history"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<int:run_id>/cancel/", views.cancel, name="cancel"),
    path("runs/<int:run_id>/retry/", views.retry, name="retry"),
    path("run/<str:name>/", views.launch, name="launch"),
]
