"""Stand-in for Pinecone (serverless vector database), for tests of the Pinecone vector store.

It stands in for the two REST APIs that the official `pinecone` Python SDK (v10, API
version 2026-07) calls for a dense index created with a dimension and a metric:

- the control plane (`https://api.pinecone.io`, the SDK's `PINECONE_CONTROLLER_HOST`):
  `GET /indexes` and `GET /indexes/{name}`, which resolve an index name to its host;
- the data plane of each index (its own host, one local server per index):
  `POST /vectors/upsert`, `POST /query`, `POST /vectors/delete`, `GET /vectors/fetch`,
  `GET /vectors/list`, `POST /describe_index_stats`.

Faithful where the store depends on it: the `Api-Key` header is checked (401 otherwise);
vectors live in namespaces ("" is `__default__`); an upsert of an existing id replaces it;
the index has one dimension and rejects other lengths (400); upserts are capped at 1000
vectors and 2 MB (413), deletes at 1000 ids; metadata is validated (strings, numbers,
booleans, lists of strings); queries rank every vector that passes the metadata filter
(`$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`, implicit equality) by the index
metric (cosine similarity, dot product, or squared Euclidean distance) and return exactly
`topK` of them when that many pass, as Pinecone's single-stage filtering does. Responses
are camelCase JSON like Pinecone's (`upsertedCount`, `matches`, `usage.readUnits`, ...).

Not modelled: sparse vectors, pods and read capacity, imports, the records/documents APIs,
eventual consistency (every write is visible to the next read). Index hosts are returned
as `http://127.0.0.1:<port>` (Pinecone returns a bare HTTPS host name).

    standin = PineconeStandIn(api_key="pc-test").start()
    index = standin.create_index("syntera-384", dimension=384)
    Pinecone(api_key="pc-test", host=standin.url).index(name="syntera-384").query(...)
    ...
    standin.stop()
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import HTTPError, JSONServer, Request, Route, param

DEFAULT_NAMESPACE = "__default__"
MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_DELETE_IDS = 1000
MAX_TOP_K = 10_000
MAX_METADATA_BYTES = 40 * 1024
FILTER_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"}


def _error(status: int, code: str, message: str) -> HTTPError:
    return HTTPError(status, {"error": {"code": code, "message": message}, "status": status})


def _bad(message: str) -> HTTPError:
    return _error(400, "INVALID_ARGUMENT", message)


@dataclass
class StoredVector:
    id: str
    values: list[float]
    unit: np.ndarray  # values / |values|, for cosine scoring
    raw: np.ndarray
    metadata: dict[str, Any] | None


def _namespace(value: Any) -> str:
    if value in (None, ""):
        return DEFAULT_NAMESPACE
    if not isinstance(value, str):
        raise _bad("namespace must be a string")
    return value


def _check_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _bad("metadata must be an object")
    for key, value in metadata.items():
        if key.startswith("$"):
            raise _bad(f"metadata key {key!r} must not start with '$'")
        ok = (
            isinstance(value, (str, bool, int, float))
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ) and value is not None
        if not ok:
            raise _bad(f"Metadata value for field {key!r} must be a string, number, boolean or list of strings")
    if len(json.dumps(metadata).encode()) > MAX_METADATA_BYTES:
        raise _bad("Metadata size exceeds the limit of 40960 bytes per vector")
    return dict(metadata)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, list):  # a list of strings matches when any element does
        return any(_equal(item, wanted) for item in stored)
    if _is_number(stored) and _is_number(wanted):
        return float(stored) == float(wanted)
    return type(stored) is type(wanted) and stored == wanted


def _check_filter(expression: Any) -> None:
    """Reject what Pinecone rejects: non-object filters, unknown operators, bad operands."""
    if not isinstance(expression, dict):
        raise _bad("filter must be an object")
    for key, value in expression.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise _bad(f"{key} takes a non-empty array of filters")
            for part in value:
                _check_filter(part)
        elif key.startswith("$"):
            raise _bad(f"Invalid filter operator {key}")
        elif isinstance(value, dict):
            if not value:
                raise _bad(f"Empty condition for field {key!r}")
            for op, operand in value.items():
                if op not in FILTER_OPERATORS:
                    raise _bad(f"Invalid filter operator {op}")
                if op in ("$in", "$nin") and not isinstance(operand, list):
                    raise _bad(f"{op} takes an array")
                if op in ("$gt", "$gte", "$lt", "$lte") and not _is_number(operand):
                    raise _bad(f"{op} takes a number")
                if op == "$exists" and not isinstance(operand, bool):
                    raise _bad("$exists takes a boolean")
        elif isinstance(value, list) or value is None:
            raise _bad(f"Invalid value for field {key!r}")


def matches_filter(metadata: dict[str, Any] | None, expression: dict[str, Any]) -> bool:
    metadata = metadata or {}
    for key, value in expression.items():
        if key == "$and":
            if not all(matches_filter(metadata, part) for part in value):
                return False
            continue
        if key == "$or":
            if not any(matches_filter(metadata, part) for part in value):
                return False
            continue
        conditions = value if isinstance(value, dict) else {"$eq": value}
        present = key in metadata
        stored = metadata.get(key)
        for op, operand in conditions.items():
            if op == "$exists":
                ok = present == operand
            elif op == "$eq":
                ok = present and _equal(stored, operand)
            elif op == "$ne":
                ok = not present or not _equal(stored, operand)
            elif op == "$in":
                ok = present and any(_equal(stored, item) for item in operand)
            elif op == "$nin":
                ok = not present or not any(_equal(stored, item) for item in operand)
            else:
                if not present or not _is_number(stored):
                    return False
                number = float(stored)
                ok = {
                    "$gt": number > operand,
                    "$gte": number >= operand,
                    "$lt": number < operand,
                    "$lte": number <= operand,
                }[op]
            if not ok:
                return False
    return True


class PineconeIndexServer(JSONServer):
    """The data plane of one dense index: its own host, its namespaces, its vectors."""

    def __init__(self, *, api_key: str, name: str, dimension: int, metric: str = "cosine") -> None:
        super().__init__()
        if metric not in ("cosine", "dotproduct", "euclidean"):
            raise ValueError(metric)
        self.api_key = api_key
        self.name = name
        self.dimension = dimension
        self.metric = metric
        self.namespaces: dict[str, dict[str, StoredVector]] = {}

    def authorize(self, request: Request) -> None:
        if request.headers.get("api-key") != self.api_key:
            raise _error(401, "UNAUTHENTICATED", "Invalid API Key")

    def routes(self) -> dict[tuple[str, str], Route]:
        return {
            ("POST", "/vectors/upsert"): self.upsert,
            ("POST", "/query"): self.query,
            ("POST", "/vectors/delete"): self.delete,
            ("GET", "/vectors/fetch"): self.fetch,
            ("GET", "/vectors/list"): self.list_ids,
            ("POST", "/describe_index_stats"): self.stats,
            ("GET", "/describe_index_stats"): self.stats,
        }

    # --- helpers for tests ------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.namespaces.clear()
        self.clear_log()

    def ids(self, namespace: str) -> set[str]:
        with self._lock:
            return set(self.namespaces.get(namespace or DEFAULT_NAMESPACE, {}))

    def record(self, namespace: str, vector_id: str) -> StoredVector | None:
        with self._lock:
            return self.namespaces.get(namespace or DEFAULT_NAMESPACE, {}).get(vector_id)

    # --- routes -----------------------------------------------------------------------

    def _values(self, values: Any, what: str) -> list[float]:
        if isinstance(values, str):  # tolerated: base64 float32, as some clients send
            values = np.frombuffer(base64.b64decode(values), dtype="<f4").tolist()
        if not isinstance(values, list) or not all(_is_number(v) for v in values):
            raise _bad(f"{what} must be an array of numbers")
        if len(values) != self.dimension:
            raise _bad(f"Vector dimension {len(values)} does not match the dimension of the index {self.dimension}")
        stored = np.asarray(values, dtype=np.float32)  # Pinecone stores float32
        if not np.isfinite(stored).all():
            raise _bad(f"{what} contains a non-finite value")
        return [float(v) for v in stored.tolist()]

    def upsert(self, request: Request) -> Any:
        if len(request.raw) > MAX_REQUEST_BYTES:
            raise _error(
                413,
                "PAYLOAD_TOO_LARGE",
                f"Request size {len(request.raw) / 1e6:.1f}MB exceeds the maximum supported size of 2MB",
            )
        body = request.body if isinstance(request.body, dict) else {}
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise _bad("vectors is required and must be a non-empty array")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise _bad(f"Exceeded the maximum of {MAX_UPSERT_VECTORS} vectors per upsert request")
        if any("sparseValues" in v for v in vectors if isinstance(v, dict)):
            raise _bad("Sparse vectors are not supported by this dense index")
        staged: list[StoredVector] = []
        for item in vectors:
            if not isinstance(item, dict):
                raise _bad("each vector must be an object")
            vector_id = item.get("id")
            if not isinstance(vector_id, str) or not 1 <= len(vector_id) <= 512 or not vector_id.isascii():
                raise _bad("Vector ID must be an ASCII string of 1 to 512 characters")
            values = self._values(item.get("values"), "values")
            raw = np.asarray(values, dtype=np.float64)
            norm = float(np.linalg.norm(raw))
            if self.metric == "cosine" and norm == 0.0:
                raise _bad("Dense vectors must contain at least one non-zero value for the cosine metric")
            unit = raw / norm if norm else raw
            staged.append(StoredVector(vector_id, values, unit, raw, _check_metadata(item.get("metadata"))))
        space = self.namespaces.setdefault(_namespace(body.get("namespace")), {})
        for stored in staged:  # validated as a whole first: a bad vector writes nothing
            space[stored.id] = stored
        return {"upsertedCount": len(staged)}

    def query(self, request: Request) -> Any:
        body = request.body if isinstance(request.body, dict) else {}
        top_k = body.get("topK")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise _bad(f"topK must be an integer between 1 and {MAX_TOP_K}")
        if body.get("sparseVector") is not None:
            raise _bad("Sparse vectors are not supported by this dense index")
        has_vector, has_id = body.get("vector") is not None, body.get("id") is not None
        if has_vector == has_id:
            raise _bad("Exactly one of vector or id must be provided")
        namespace = _namespace(body.get("namespace"))
        space = self.namespaces.get(namespace, {})
        if has_id:
            source = space.get(str(body["id"]))
            if source is None:
                return {
                    "results": [],
                    "matches": [],
                    "namespace": body.get("namespace") or "",
                    "usage": {"readUnits": 1},
                }
            query = source.raw
        else:
            query = np.asarray(self._values(body["vector"], "vector"), dtype=np.float64)
        expression = body.get("filter")
        if expression is not None:
            _check_filter(expression)
        candidates = [v for v in space.values() if expression is None or matches_filter(v.metadata, expression)]
        matches: list[dict[str, Any]] = []
        if candidates:
            if self.metric == "cosine":
                norm = float(np.linalg.norm(query)) or 1.0
                scores = np.stack([v.unit for v in candidates]) @ (query / norm)
                order = np.argsort(-scores, kind="stable")
            elif self.metric == "dotproduct":
                scores = np.stack([v.raw for v in candidates]) @ query
                order = np.argsort(-scores, kind="stable")
            else:
                scores = ((np.stack([v.raw for v in candidates]) - query) ** 2).sum(axis=1)
                order = np.argsort(scores, kind="stable")
            for position in order[:top_k]:
                stored = candidates[int(position)]
                match: dict[str, Any] = {"id": stored.id, "score": float(scores[int(position)])}
                match["values"] = list(stored.values) if body.get("includeValues") else []
                if body.get("includeMetadata") and stored.metadata is not None:
                    match["metadata"] = dict(stored.metadata)
                matches.append(match)
        read_units = max(1, math.ceil(len(space) / 100_000) * 5)
        return {
            "results": [],
            "matches": matches,
            "namespace": body.get("namespace") or "",
            "usage": {"readUnits": read_units},
        }

    def delete(self, request: Request) -> Any:
        body = request.body if isinstance(request.body, dict) else {}
        namespace = _namespace(body.get("namespace"))
        ids, delete_all, expression = body.get("ids"), body.get("deleteAll"), body.get("filter")
        if sum(x is not None and x is not False for x in (ids, delete_all, expression)) != 1:
            raise _bad("Exactly one of ids, deleteAll or filter must be provided")
        space = self.namespaces.get(namespace)
        if ids is not None:
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise _bad("ids must be a non-empty array of strings")
            if len(ids) > MAX_DELETE_IDS:
                raise _bad(f"Exceeded the maximum of {MAX_DELETE_IDS} ids per delete request")
            for vector_id in ids:
                if space is not None:
                    space.pop(vector_id, None)
        elif delete_all:
            if space is None:
                raise _error(404, "NOT_FOUND", f"Namespace {namespace} not found")
            space.clear()
        else:
            _check_filter(expression)
            if not expression:
                raise _bad("filter must not be empty")
            if space is not None:
                for vector_id in [v.id for v in space.values() if matches_filter(v.metadata, expression)]:
                    del space[vector_id]
        if space is not None and not space:
            del self.namespaces[namespace]  # Pinecone drops a namespace with no vectors
        return {}

    def fetch(self, request: Request) -> Any:
        ids = request.query.get("ids") or []
        if not ids:
            raise _bad("ids is required")
        namespace = param(request, "namespace")
        space = self.namespaces.get(_namespace(namespace), {})
        found = {
            i: {
                "id": i,
                "values": list(space[i].values),
                **({"metadata": space[i].metadata} if space[i].metadata else {}),
            }
            for i in ids
            if i in space
        }
        return {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}

    def list_ids(self, request: Request) -> Any:
        namespace = param(request, "namespace")
        prefix = param(request, "prefix")
        limit = int(param(request, "limit") or 100)
        if not 1 <= limit <= 100:
            raise _bad("limit must be between 1 and 100")
        token = param(request, "paginationToken")
        start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
        ids = sorted(i for i in self.namespaces.get(_namespace(namespace), {}) if i.startswith(prefix))
        page = ids[start : start + limit]
        body: dict[str, Any] = {"vectors": [{"id": i} for i in page], "namespace": namespace, "usage": {"readUnits": 1}}
        if start + limit < len(ids):
            body["pagination"] = {"next": base64.urlsafe_b64encode(str(start + limit).encode()).decode()}
        return body

    def stats(self, request: Request) -> Any:
        if isinstance(request.body, dict) and request.body.get("filter"):
            raise _bad("describe_index_stats does not support a filter on serverless indexes")
        counts = {name: {"vectorCount": len(space)} for name, space in self.namespaces.items() if space}
        return {
            "namespaces": counts,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(c["vectorCount"] for c in counts.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }


class PineconeStandIn(JSONServer):
    """The control plane (describe/list indexes) plus one data-plane server per index."""

    def __init__(self, *, api_key: str = "pc-standin-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.indexes: dict[str, PineconeIndexServer] = {}

    def start(self) -> PineconeStandIn:
        super().start()
        return self

    def stop(self) -> None:
        for index in self.indexes.values():
            index.stop()
        super().stop()

    def create_index(self, name: str, *, dimension: int, metric: str = "cosine") -> PineconeIndexServer:
        index = PineconeIndexServer(api_key=self.api_key, name=name, dimension=dimension, metric=metric)
        index.start()
        with self._lock:
            self.indexes[name] = index
        return index

    def reset(self) -> None:
        for index in self.indexes.values():
            index.reset()
        self.clear_log()

    def authorize(self, request: Request) -> None:
        if request.headers.get("api-key") != self.api_key:
            raise _error(401, "UNAUTHENTICATED", "Invalid API Key")

    def routes(self) -> dict[tuple[str, str], Route]:
        return {("GET", "/indexes"): self.list_indexes, ("GET", "/indexes/{name}"): self.describe_index}

    def _describe(self, index: PineconeIndexServer) -> dict[str, Any]:
        return {
            "name": index.name,
            "host": index.url,
            "status": {"ready": True, "state": "Ready"},
            # An index created with a dimension and a metric, as the 2026-07 API shows it:
            # its dense values are the reserved `_values` field.
            "schema": {
                "fields": {"_values": {"type": "dense_vector", "dimension": index.dimension, "metric": index.metric}}
            },
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "deletion_protection": "disabled",
            "tags": None,
        }

    def list_indexes(self, request: Request) -> Any:
        return {"indexes": [self._describe(index) for index in self.indexes.values()]}

    def describe_index(self, request: Request) -> Any:
        name = param(request, "name")
        index = self.indexes.get(name)
        if index is None:
            raise _error(404, "NOT_FOUND", f"Resource {name} not found")
        return self._describe(index)
