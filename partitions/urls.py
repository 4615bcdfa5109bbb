app_name = "partitions"

urlpatterns: list = []
