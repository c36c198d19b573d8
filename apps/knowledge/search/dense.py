"""The dense leg of retrieval: the question's vector in each knowledge base's model."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .. import embeddings

QUERY_VECTORS_KEPT = 2048  # the local model's question vectors kept per process


@lru_cache(maxsize=QUERY_VECTORS_KEPT)
def _local_query_vector(schema: str, query: str) -> npt.NDArray[np.float32]:
    vector = np.asarray(embeddings.LocalMiniLM().embed([query])[0], dtype=np.float32)
    vector.setflags(write=False)
    return vector


def query_vector(model: str, query: str, *, schema: str) -> list[float]:
    """The question's vector for `model`. The local model's are kept per tenant (`schema`: no
    tenant's answer time tells what another asked), since visitors ask the same questions
    again; a remote model is asked each time."""
    provider = embeddings.get_provider(model)
    if isinstance(provider, embeddings.LocalMiniLM):
        return _local_query_vector(schema, query).tolist()
    return provider.embed([query])[0]
