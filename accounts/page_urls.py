from django.urls import path

from accounts import pages

urlpatterns = [
    path("login", pages.login, name="page-login"),
    path("logout", pages.logout, name="page-logout"),
    path("register", pages.register, name="page-register"),
    path("forgot-password", pages.forgot_password, name="page-forgot-password"),
    path("reset-password", pages.reset_password, name="page-reset-password"),
    path("account", pages.account, name="page-account"),
    path("members", pages.members, name="page-members"),
    path("audit", pages.audit, name="page-audit"),
]
