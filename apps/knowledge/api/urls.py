from django.urls import path

from . import views

urlpatterns = [
    path("knowledge-bases/", views.KnowledgeBaseListView.as_view(), name="api-knowledge-bases"),
    path("knowledge-bases/<int:kb_id>/", views.KnowledgeBaseDetailView.as_view(), name="api-knowledge-base"),
    path("knowledge-bases/<int:kb_id>/sources/", views.SourceListView.as_view(), name="api-sources"),
    path("knowledge-bases/<int:kb_id>/sources/<int:source_id>/", views.SourceDetailView.as_view(), name="api-source"),
    path(
        "knowledge-bases/<int:kb_id>/sources/<int:source_id>/resync",
        views.SourceResyncView.as_view(),
        name="api-source-resync",
    ),
    path("knowledge/search", views.SearchView.as_view(), name="api-knowledge-search"),
]
