from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "apps.events"
    label = "events"
    verbose_name = "Domain events"

    def ready(self) -> None:
        from . import types  # noqa: F401  (fills the registry of event types)
