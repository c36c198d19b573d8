"""What turns load on first use, loaded once when a worker that runs turns starts: the local
embedder (every turn embeds its query for retrieval), the token counter's encodings and the
OpenAI SDK. Without it the first turns after a start or a deploy all wait for them at once
(a hundred threads behind one lock), seconds each."""

from __future__ import annotations

import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def warm_up() -> None:
    from apps.knowledge.embeddings import LocalMiniLM, get_provider

    from .providers import get_provider as get_llm
    from .tokens import count_tokens

    started = time.perf_counter()
    get_provider(LocalMiniLM.name).embed(["How long does shipping take?"])
    count_tokens("How long does shipping take?", settings.OPENAI_CHAT_MODEL)
    get_llm("openai")
    logger.info("ready for AI turns in %.1f s", time.perf_counter() - started)
