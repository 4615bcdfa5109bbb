from django.urls import path

from . import views

app_name = "partitions"

urlpatterns = [
    path("", views.inventory, name="inventory"),
    path("<str:warehouse>/table/", views.table_detail, name="table"),
    path("<str:warehouse>/plan/", views.plan, name="plan"),
    path("migrations/<int:migration_id>/", views.migration_detail, name="migration"),
    path("migrations/<int:migration_id>/start/", views.start, name="start"),
    path("migrations/<int:migration_id>/rollback/", views.rollback, name="rollback"),
    path("migrations/<int:migration_id>/drop-original/", views.drop_original, name="drop_original"),
    path("retention/", views.retention, name="retention"),
]
