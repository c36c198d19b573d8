"""Tenants' LLM provider credentials, encrypted at rest, and the choice of provider per turn.

An agent set to OpenAI uses the tenant's stored key (and base URL), else the deployment's
`OPENAI_API_KEY` / `OPENAI_BASE_URL`; with neither, the turn runs on the offline responder
and the audit says why. Keys never leave this module in clear except into the provider.
"""

from __future__ import annotations

import logging

from django.conf import settings

from syntera import outbound
from syntera.crypto import DecryptionError, decrypt, encrypt
from syntera.errors import ApplicationError

from .models import Agent, ProviderCredential
from .providers import PROVIDER_MODULES, ProviderCredentials, capabilities_for

logger = logging.getLogger(__name__)


def check_base_url(base_url: str) -> None:
    """Refuse a tenant's base URL that leads to a private or local address (unless the
    operator's OUTBOUND_ALLOWLIST admits it; the operator's own OPENAI_BASE_URL is trusted).
    The provider's guarded client checks the address again at every connection."""
    if not base_url:
        return
    origin = outbound.origin_of(settings.OPENAI_BASE_URL)
    try:
        outbound.check_url(base_url, trusted_origins=[origin] if origin else [])
    except outbound.OutboundRefused as exc:
        logger.info("LLM base URL refused: %s", exc.detail)
        raise ApplicationError(str(exc), code="url_refused", fields={"base_url": [str(exc)]}) from None


def same_endpoint(first: str, second: str) -> bool:
    """Whether two base URLs name the same endpoint (a trailing slash aside)."""
    return first.strip().rstrip("/") == second.strip().rstrip("/")


def credential_set(
    *, provider: str, api_key: str, base_url: str = "", organization: str = "", label: str
) -> ProviderCredential:
    credential, _ = ProviderCredential.objects.get_or_create(provider=provider)
    if api_key:
        credential.api_key_encrypted = encrypt(api_key)
        credential.key_hint = "…" + api_key[-4:] if len(api_key) >= 12 else "…"
    credential.base_url = base_url
    credential.organization = organization
    credential.updated_by_label = label
    credential.save()
    return credential


def credentials_for(provider: str) -> ProviderCredentials | None:
    """Decrypted credentials for `provider`: the tenant's, else the deployment's, else None."""
    stored = ProviderCredential.objects.filter(provider=provider).first()
    if stored is not None and stored.api_key_encrypted:
        try:
            key = decrypt(stored.api_key_encrypted)
        except DecryptionError:
            key = ""
        if key:
            return ProviderCredentials(api_key=key, base_url=stored.base_url, organization=stored.organization)
    if provider == "openai" and settings.OPENAI_API_KEY:
        return ProviderCredentials(api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL)
    return None


def resolve_provider(agent: Agent) -> tuple[str, ProviderCredentials | None, str]:
    """(provider name, credentials, why the agent's own choice was not used or ""). Without
    the credentials it needs, the agent answers with the offline responder, which needs none."""
    if agent.provider not in PROVIDER_MODULES:
        return Agent.Provider.OFFLINE.value, None, ""
    if not capabilities_for(agent.provider).needs_credentials:
        return agent.provider, None, ""
    credentials = credentials_for(agent.provider)
    if credentials is None:
        return Agent.Provider.OFFLINE.value, None, f"no {agent.provider} API key is configured"
    return agent.provider, credentials, ""
