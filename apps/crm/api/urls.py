from django.urls import path

from . import views

urlpatterns = [
    path("contacts/", views.ContactListView.as_view(), name="api-contacts"),
    path("contacts/<int:contact_id>/", views.ContactDetailView.as_view(), name="api-contact"),
    path("contacts/<int:contact_id>/memory", views.ContactMemoryView.as_view(), name="api-contact-memory"),
    path("contacts/<int:contact_id>/merge/", views.ContactMergeView.as_view(), name="api-contact-merge"),
    path("leads/", views.LeadListView.as_view(), name="api-leads"),
]
