from django.urls import path

from apikeys import pages

urlpatterns = [
    path("keys", pages.key_list, name="page-keys"),
]
