from django.urls import include, path
from django.views.generic import RedirectView

from work import views

urlpatterns = [
    path("", RedirectView.as_view(url="/dashboard/", permanent=False)),
    path("accounts/", include("allauth.urls")),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("items/", views.item_list, name="item_list"),
    path("recap/", views.recap, name="recap"),
]
