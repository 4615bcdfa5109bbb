app_name = "cachemgr"

urlpatterns: list = []
