from django.urls import path

from . import views

urlpatterns = [
    path("auth/token/", views.TokenObtainView.as_view(), name="api-token"),
    path("auth/token/refresh/", views.TokenRefreshView.as_view(), name="api-token-refresh"),
    path("me/", views.MeView.as_view(), name="api-me"),
    path("members/", views.MemberListView.as_view(), name="api-members"),
    path("members/<int:member_id>/", views.MemberDetailView.as_view(), name="api-member"),
    path("invitations/", views.InvitationListCreateView.as_view(), name="api-invitations"),
    path("invitations/<int:invitation_id>/", views.InvitationDetailView.as_view(), name="api-invitation"),
    path("api-keys/", views.APIKeyListCreateView.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>/", views.APIKeyDetailView.as_view(), name="api-key"),
]
