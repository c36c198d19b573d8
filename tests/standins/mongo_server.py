"""Stand-in for a MongoDB server, for tests of the MongoDB conversation store through `pymongo`.

A threaded TCP server on 127.0.0.1 that speaks MongoDB's wire protocol
(https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/), so pymongo's real
request path runs: connection handshake, server selection and monitoring, OP_MSG encoding,
cursors paged with getMore, and the decoding of command and write errors. What the commands
do is `mongomock`'s: the stand-in holds one mongomock client and runs every command on it
under one lock, so each operation is atomic, as it is on a server.

The transport:
- OP_MSG (2013): a kind 0 section (the command) plus kind 1 sections (document sequences, e.g.
  an insert's `documents`, added to the command under their identifier). `checksumPresent`
  is accepted (the CRC-32C is not checked); with `moreToCome` the command runs unanswered
  (an unacknowledged write). The answer is an OP_MSG with one kind 0 section.
- OP_QUERY (2004) on `<db>.$cmd`, answered with OP_REPLY (1): only `hello`/`isMaster`, as a
  server of wire version 21 (MongoDB 7.0) accepts it; other commands get code 352
  UnsupportedOpQueryCommand. pymongo opens every connection this way.
- A message over 48 MB (`maxMessageSizeBytes`), an unknown opcode, a malformed section or
  invalid BSON closes that connection; the server and other connections go on.

The server is a standalone of wire version 21 with sessions (pymongo sends `lsid`; sessions
are not modelled) and no `topologyVersion`, so pymongo monitors it by polling `hello`.
Commands: hello/isMaster, ping, buildInfo, endSessions, insert, update, delete, find,
getMore, killCursors, findAndModify, aggregate, count, distinct, create, drop,
createIndexes, listIndexes, listCollections, listDatabases, dropDatabase. Others answer
code 59 CommandNotFound. Fields that say how to run a command rather than what it does
(`lsid`, `$db`, `$clusterTime`, `txnNumber`, `$readPreference`, `readConcern`,
`writeConcern`, `apiVersion`, `maxTimeMS`, `comment`, ...) are ignored.

Cursors are real: a find or aggregate answers its first batch (`batchSize`, default 101
documents as a server's) and keeps the rest under a cursor id for getMore (batches capped at
16 MiB) until it is exhausted or killed. A duplicate key answers as a server does: a
`writeErrors` entry `{index, code: 11000, errmsg, keyPattern, keyValue}` naming the violated
unique index (mongomock does not say which; the stand-in finds the index the document
collides on), and for findAndModify an error reply with code 11000 and the same fields.

Not modelled: authentication, transactions, compression, exhaust cursors, cursor time-outs.

    standin = MongoStandIn().start()
    MongoClient(standin.url).syntera_alpha.messages.insert_one({...})
    ...
    standin.close()
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bson
import mongomock
from bson.int64 import Int64
from mongomock.filtering import filter_applies
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
INT32 = struct.Struct("<i")
CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1
QUERY_FAILURE = 1 << 1  # OP_REPLY responseFlags

MAX_MESSAGE_BYTES = 48_000_000
MAX_BSON_BYTES = 16 * 1024 * 1024
MAX_WRITE_BATCH = 100_000
DEFAULT_FIRST_BATCH = 101
WIRE_VERSION = 21
VERSION = "7.0.0"


class ProtocolError(Exception):
    """A message the server cannot parse: the connection is closed."""


class CommandError(Exception):
    """Raised by a command to answer `{ok: 0, errmsg, code, codeName, **extra}`."""

    def __init__(self, code: int, code_name: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.reply = {"ok": 0.0, "errmsg": message, "code": code, "codeName": code_name, **extra}


@dataclass
class _Cursor:
    ns: str
    docs: list[dict[str, Any]]


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None when the peer closes first."""
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise ProtocolError("unterminated cstring")
    return data[pos:end].decode(), end + 1


def _document(data: bytes, pos: int, end: int) -> tuple[dict[str, Any], int]:
    if pos + 4 > end:
        raise ProtocolError("truncated document")
    (size,) = INT32.unpack_from(data, pos)
    if size < 5 or pos + size > end:
        raise ProtocolError("document length out of bounds")
    return bson.decode(data[pos : pos + size]), pos + size


def _message(opcode: int, request_id: int, payload: bytes) -> bytes:
    return HEADER.pack(HEADER.size + len(payload), 0, request_id, opcode) + payload


def _op_msg(answer: dict[str, Any], request_id: int) -> bytes:
    return _message(OP_MSG, request_id, struct.pack("<IB", 0, 0) + bson.encode(answer))


def _op_reply(answer: dict[str, Any], request_id: int, flags: int = 0) -> bytes:
    return _message(OP_REPLY, request_id, struct.pack("<iqii", flags, 0, 0, 1) + bson.encode(answer))


def _value_at(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None  # a missing field is indexed as null
        value = value[part]
    return value


def _ns(collection: Any) -> str:
    return f"{collection.database.name}.{collection.name}"


def _sort(spec: Any) -> list[tuple[str, Any]] | None:
    return list(spec.items()) if spec else None


def _is_operator_update(update: Any) -> bool:
    return isinstance(update, dict) and bool(update) and all(k.startswith("$") for k in update)


class MongoStandIn:
    """One MongoDB "server": start(), `url`, close(). `commands` lists the names received."""

    def __init__(self, *, first_batch_size: int = DEFAULT_FIRST_BATCH) -> None:
        self.engine: Any = mongomock.MongoClient()
        self.first_batch_size = first_batch_size
        self.commands: list[str] = []
        self._lock = threading.RLock()
        self._cursors: dict[int, _Cursor] = {}
        self._cursor_ids = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._closing = False
        self._server: socketserver.ThreadingTCPServer | None = None

    # --- control ----------------------------------------------------------------------

    def start(self) -> MongoStandIn:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True  # close() joins them; a stand-in left open does not hold up exit
        self._server, self._closing = server, False
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="MongoStandIn", daemon=True
        ).start()
        return self

    def close(self) -> None:
        """Stop accepting, cut the open connections, and wait for their threads to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._lock:
            self._closing = True  # a connection thread that starts from now on ends at once
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _, thread in connections:
            thread.join(timeout=10)
        server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    # --- transport --------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        connection_id = next(self._connection_ids)
        with self._lock:
            if self._closing:
                return
            self._connections[sock] = threading.current_thread()
        try:
            while True:
                header = _recv_exact(sock, HEADER.size)
                if header is None:
                    return
                length, request_id, _, opcode = HEADER.unpack(header)
                if not HEADER.size < length <= MAX_MESSAGE_BYTES:
                    return  # what a server does with a message it will not read: hang up
                body = _recv_exact(sock, length - HEADER.size)
                if body is None:
                    return
                reply = self._handle(opcode, request_id, body, connection_id)
                if reply is not None:
                    sock.sendall(reply)
        except (ProtocolError, bson.errors.BSONError, UnicodeDecodeError, struct.error, OSError):
            return
        finally:
            with self._lock:
                self._connections.pop(sock, None)

    def _handle(self, opcode: int, request_id: int, body: bytes, connection_id: int) -> bytes | None:
        if opcode == OP_MSG:
            return self._handle_msg(request_id, body, connection_id)
        if opcode == OP_QUERY:
            return self._handle_query(request_id, body, connection_id)
        raise ProtocolError(f"unsupported opcode {opcode}")

    def _handle_msg(self, request_id: int, body: bytes, connection_id: int) -> bytes | None:
        (flags,) = struct.unpack_from("<I", body, 0)
        if flags & 0xFFFF & ~(CHECKSUM_PRESENT | MORE_TO_COME):
            raise ProtocolError(f"unknown required flag bits {flags:#x}")  # bits 0-15 must be understood
        end = len(body) - (4 if flags & CHECKSUM_PRESENT else 0)
        pos, command, sequences = 4, None, {}
        while pos < end:
            kind, pos = body[pos], pos + 1
            if kind == 0:
                if command is not None:
                    raise ProtocolError("more than one kind 0 section")
                command, pos = _document(body, pos, end)
            elif kind == 1:
                if pos + 4 > end:
                    raise ProtocolError("truncated document sequence")
                (size,) = INT32.unpack_from(body, pos)
                section_end = pos + size
                if size < 5 or section_end > end:
                    raise ProtocolError("document sequence length out of bounds")
                name, pos = _cstring(body, pos + 4)
                docs = []
                while pos < section_end:
                    doc, pos = _document(body, pos, section_end)
                    docs.append(doc)
                sequences[name] = docs
            else:
                raise ProtocolError(f"unknown section kind {kind}")
        if command is None or pos != end:
            raise ProtocolError("no command section, or sections past the message's end")
        for name, docs in sequences.items():
            if name in command:
                answer = CommandError(2, "BadValue", f"duplicate field {name!r} in a command and its sequences").reply
                return None if flags & MORE_TO_COME else _op_msg(answer, request_id)
            command[name] = docs
        db = command.get("$db")
        if not isinstance(db, str) or not db:
            answer = CommandError(40571, "Location40571", "OP_MSG requests require a $db argument").reply
        else:
            answer = self.run(command, db, connection_id)
        return None if flags & MORE_TO_COME else _op_msg(answer, request_id)

    def _handle_query(self, request_id: int, body: bytes, connection_id: int) -> bytes:
        namespace, pos = _cstring(body, 4)
        query, _ = _document(body, pos + 8, len(body))  # after numberToSkip and numberToReturn
        if "$query" in query:  # a command wrapped with read preference, as sent to mongos
            query = query["$query"]
        name = next(iter(query), "")
        if not namespace.endswith(".$cmd") or name not in ("hello", "isMaster", "ismaster"):
            failure = {"$err": f"Unsupported OP_QUERY command: {name}", "code": 352, "ok": 0.0}
            return _op_reply(failure, request_id, QUERY_FAILURE)
        return _op_reply(self.run(query, namespace[: -len(".$cmd")], connection_id), request_id)

    # --- commands ---------------------------------------------------------------------

    def run(self, command: dict[str, Any], db: str, connection_id: int = 0) -> dict[str, Any]:
        """Run one decoded command on database `db`; the answer is what goes on the wire."""
        name = next(iter(command), "")
        with self._lock:
            self.commands.append(name)
        if name in ("hello", "isMaster", "ismaster"):
            return self._hello(connection_id)
        handler = self._handlers().get(name)
        if handler is None:
            return CommandError(59, "CommandNotFound", f"no such command: '{name}'").reply
        try:
            with self._lock:
                answer = handler(db, command)
        except CommandError as error:
            return error.reply
        except OperationFailure as error:  # mongomock's refusals (bad operators, index conflicts)
            return CommandError(error.code or 2, "BadValue", str(error)).reply
        except (NotImplementedError, TypeError, ValueError, KeyError) as error:
            return CommandError(2, "BadValue", f"{type(error).__name__}: {error}").reply
        return {**answer, "ok": 1.0}

    def _handlers(self) -> dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]]:
        return {
            "ping": lambda db, cmd: {},
            "endSessions": lambda db, cmd: {},
            "buildInfo": self._build_info,
            "buildinfo": self._build_info,
            "insert": self._insert,
            "update": self._update,
            "delete": self._delete,
            "find": self._find,
            "getMore": self._get_more,
            "killCursors": self._kill_cursors,
            "findAndModify": self._find_and_modify,
            "findandmodify": self._find_and_modify,
            "aggregate": self._aggregate,
            "count": self._count,
            "distinct": self._distinct,
            "create": self._create,
            "drop": self._drop,
            "createIndexes": self._create_indexes,
            "listIndexes": self._list_indexes,
            "listCollections": self._list_collections,
            "listDatabases": self._list_databases,
            "dropDatabase": self._drop_database,
        }

    def _hello(self, connection_id: int) -> dict[str, Any]:
        return {
            "helloOk": True,
            "isWritablePrimary": True,
            "ismaster": True,
            "maxBsonObjectSize": MAX_BSON_BYTES,
            "maxMessageSizeBytes": MAX_MESSAGE_BYTES,
            "maxWriteBatchSize": MAX_WRITE_BATCH,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": connection_id,
            "minWireVersion": 0,
            "maxWireVersion": WIRE_VERSION,
            "readOnly": False,
            "ok": 1.0,
        }

    def _build_info(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": VERSION,
            "versionArray": [int(p) for p in VERSION.split(".")] + [0],
            "gitVersion": "standin",
            "bits": 64,
            "debug": False,
            "maxBsonObjectSize": MAX_BSON_BYTES,
        }

    def _collection(self, db: str, cmd: dict[str, Any], field: str) -> Any:
        name = cmd[field]
        if not isinstance(name, str) or not name:
            raise CommandError(73, "InvalidNamespace", f"Invalid namespace specified '{db}.{name}'")
        return self.engine[db][name]

    def _exists(self, collection: Any) -> bool:
        return bool(collection.name in collection.database.list_collection_names())

    # writes

    def _insert(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "insert")
        docs = cmd.get("documents") or []
        if len(docs) > MAX_WRITE_BATCH:
            raise CommandError(16, "InvalidLength", f"Write batch sizes must be between 1 and {MAX_WRITE_BATCH}")
        n, errors = 0, []
        for index, doc in enumerate(docs):
            try:
                collection.insert_one(doc)
            except DuplicateKeyError:
                errors.append({"index": index, **self._duplicate(collection, doc, None)})
                if cmd.get("ordered", True):
                    break
                continue
            n += 1
        return {"n": n, **({"writeErrors": errors} if errors else {})}

    def _update(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "update")
        n, modified, upserted, errors = 0, 0, [], []
        for index, spec in enumerate(cmd.get("updates") or []):
            query, update, upsert = spec.get("q") or {}, spec.get("u"), bool(spec.get("upsert"))
            try:
                if _is_operator_update(update):
                    write = collection.update_many if spec.get("multi") else collection.update_one
                    result = write(query, update, upsert=upsert, array_filters=spec.get("arrayFilters"))
                elif spec.get("multi"):
                    raise CommandError(9, "FailedToParse", "multi update is not supported for replacement-style update")
                else:
                    result = collection.replace_one(query, update, upsert=upsert)
            except DuplicateKeyError:
                image, own_id = self._post_image(collection, query, update, upsert, None)
                errors.append({"index": index, **self._duplicate(collection, image, own_id)})
                if cmd.get("ordered", True):
                    break
                continue
            n += result.matched_count
            modified += result.modified_count
            if result.upserted_id is not None:
                n += 1
                upserted.append({"index": index, "_id": result.upserted_id})
        answer: dict[str, Any] = {"n": n, "nModified": modified}
        if upserted:
            answer["upserted"] = upserted
        if errors:
            answer["writeErrors"] = errors
        return answer

    def _delete(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "delete")
        n = 0
        for spec in cmd.get("deletes") or []:
            query = spec.get("q") or {}
            result = collection.delete_one(query) if spec.get("limit") == 1 else collection.delete_many(query)
            n += result.deleted_count
        return {"n": n}

    def _find_and_modify(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, next(iter(cmd)))
        query, sort, fields = cmd.get("query") or {}, _sort(cmd.get("sort")), cmd.get("fields") or None
        if cmd.get("remove"):
            value = collection.find_one_and_delete(query, projection=fields, sort=sort)
            return {"lastErrorObject": {"n": int(value is not None)}, "value": value}
        update, upsert = cmd.get("update"), bool(cmd.get("upsert"))
        existing = collection.find_one(query, sort=sort)
        returned = ReturnDocument.AFTER if cmd.get("new") else ReturnDocument.BEFORE
        modify = collection.find_one_and_update if _is_operator_update(update) else collection.find_one_and_replace
        try:
            value = modify(query, update, projection=fields, sort=sort, upsert=upsert, return_document=returned)
        except DuplicateKeyError:
            image, own_id = self._post_image(collection, query, update, upsert, sort)
            error = self._duplicate(collection, image, own_id)
            del error["code"]
            raise CommandError(11000, "DuplicateKey", error.pop("errmsg"), **error) from None
        status: dict[str, Any] = {"n": int(existing is not None or upsert), "updatedExisting": existing is not None}
        if existing is None and upsert:
            status["upserted"] = (collection.find_one(query, {"_id": 1}, sort=sort) or {}).get("_id")
        return {"lastErrorObject": status, "value": value}

    def _post_image(
        self, collection: Any, query: dict[str, Any], update: Any, upsert: bool, sort: Any
    ) -> tuple[dict[str, Any], Any]:
        """The document an update would have written (replayed on a scratch copy), and its _id."""
        target = collection.find_one(query, sort=sort)
        scratch = mongomock.MongoClient()["scratch"]["image"]
        if target is not None:
            scratch.insert_one(target)
        selector = {} if target is not None else query
        if _is_operator_update(update):
            scratch.update_one(selector, update, upsert=upsert)
        else:
            scratch.replace_one(selector, update, upsert=upsert)
        return scratch.find_one() or {}, None if target is None else target["_id"]

    def _duplicate(self, collection: Any, doc: dict[str, Any], own_id: Any) -> dict[str, Any]:
        """The write error of a server for `doc` colliding on a unique index (the first one, in
        creation order, that already holds its key), with keyPattern and keyValue."""
        ns = _ns(collection)
        for name, spec in collection.index_information().items():
            if not spec.get("unique") and name != "_id_":
                continue
            partial = spec.get("partialFilterExpression")
            if partial and not filter_applies(partial, doc):
                continue  # the document is not in this index
            pattern = dict(spec["key"])
            value = {field: _value_at(doc, field) for field in pattern}
            clauses = [
                value,
                *([partial] if partial else []),
                *([{"_id": {"$ne": own_id}}] if own_id is not None else []),
            ]
            if collection.find_one({"$and": clauses}, {"_id": 1}) is None:
                continue
            shown = ", ".join(f"{field}: {v!r}" for field, v in value.items())
            return {
                "code": 11000,
                "errmsg": f"E11000 duplicate key error collection: {ns} index: {name} dup key: {{ {shown} }}",
                "keyPattern": pattern,
                "keyValue": value,
            }
        return {"code": 11000, "errmsg": f"E11000 duplicate key error collection: {ns}"}

    # reads and cursors

    def _find(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "find")
        limit = int(cmd.get("limit") or 0)
        if limit < 0:
            raise CommandError(51024, "Location51024", "BSON field 'limit' value must be >= 0")
        cursor = collection.find(cmd.get("filter") or {}, cmd.get("projection") or None)
        if sort := _sort(cmd.get("sort")):
            cursor = cursor.sort(sort)
        if skip := int(cmd.get("skip") or 0):
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        single = bool(cmd.get("singleBatch"))
        return self._open_cursor(_ns(collection), list(cursor), cmd.get("batchSize"), single)

    def _aggregate(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(cmd["aggregate"], str):
            raise CommandError(2, "BadValue", "only collection aggregations are supported by this server")
        collection = self._collection(db, cmd, "aggregate")
        docs = list(collection.aggregate(cmd.get("pipeline") or []))
        return self._open_cursor(_ns(collection), docs, (cmd.get("cursor") or {}).get("batchSize"), False)

    def _open_cursor(self, ns: str, docs: list[dict[str, Any]], batch_size: Any, single: bool) -> dict[str, Any]:
        batch = self._batch(docs, self.first_batch_size if batch_size is None else int(batch_size))
        cursor_id = 0
        if len(batch) < len(docs) and not single:
            cursor_id = next(self._cursor_ids)
            self._cursors[cursor_id] = _Cursor(ns, docs[len(batch) :])
        return {"cursor": {"firstBatch": batch, "id": Int64(cursor_id), "ns": ns}}

    @staticmethod
    def _batch(docs: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
        """Up to `size` documents (0: no count limit) within 16 MiB, at least one."""
        batch: list[dict[str, Any]] = []
        total = 0
        for doc in docs:
            if size and len(batch) >= size:
                break
            total += len(bson.encode(doc))
            if batch and total > MAX_BSON_BYTES:
                break
            batch.append(doc)
        return batch

    def _get_more(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        cursor_id = int(cmd["getMore"])
        ns = f"{db}.{cmd.get('collection')}"
        cursor = self._cursors.get(cursor_id)
        if cursor is None or cursor.ns != ns:
            raise CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        batch = self._batch(cursor.docs, int(cmd.get("batchSize") or 0))
        del cursor.docs[: len(batch)]
        if not cursor.docs:
            del self._cursors[cursor_id]
            cursor_id = 0
        return {"cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": ns}}

    def _kill_cursors(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        ns = f"{db}.{cmd['killCursors']}"
        killed, missing = [], []
        for cursor_id in cmd.get("cursors") or []:
            cursor = self._cursors.get(int(cursor_id))
            if cursor is not None and cursor.ns == ns:
                del self._cursors[int(cursor_id)]
                killed.append(cursor_id)
            else:
                missing.append(cursor_id)
        return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [], "cursorsUnknown": []}

    def _count(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "count")
        options = {k: int(cmd[k]) for k in ("skip", "limit") if cmd.get(k)}
        return {"n": collection.count_documents(cmd.get("query") or {}, **options)}

    def _distinct(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "distinct")
        return {"values": collection.distinct(cmd["key"], cmd.get("query") or {})}

    # namespaces and indexes

    def _create(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "create")
        if self._exists(collection):
            raise CommandError(48, "NamespaceExists", f"Collection {db}.{collection.name} already exists.")
        self.engine[db].create_collection(collection.name)
        return {}

    def _drop(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "drop")
        if not self._exists(collection):  # MongoDB 7.0 answers ok for a missing collection
            return {}
        indexes = len(collection.index_information())
        collection.drop()
        return {"nIndexesWas": indexes, "ns": f"{db}.{collection.name}"}

    def _create_indexes(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "createIndexes")
        created = not self._exists(collection)
        before = len(collection.index_information()) or 1  # a new collection starts with _id_
        for spec in cmd.get("indexes") or []:
            if not isinstance(spec, dict) or not spec.get("key") or not spec.get("name"):
                raise CommandError(9, "FailedToParse", "an index specification needs 'key' and 'name'")
            options = {k: v for k, v in spec.items() if k not in ("key", "v", "ns")}
            collection.create_index(list(spec["key"].items()), **options)
        after = len(collection.index_information())
        answer: dict[str, Any] = {
            "numIndexesBefore": before,
            "numIndexesAfter": after,
            "createdCollectionAutomatically": created,
        }
        if after == before:
            answer["note"] = "all indexes already exist"
        return answer

    def _list_indexes(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        collection = self._collection(db, cmd, "listIndexes")
        if not self._exists(collection):
            raise CommandError(26, "NamespaceNotFound", f"ns does not exist: {db}.{collection.name}")
        specs = [
            {"v": 2, "key": dict(info["key"]), "name": name, **{k: v for k, v in info.items() if k not in ("key", "v")}}
            for name, info in collection.index_information().items()
        ]
        return self._open_cursor(_ns(collection), specs, (cmd.get("cursor") or {}).get("batchSize"), False)

    def _list_collections(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        found = []
        for name in self.engine[db].list_collection_names():
            entry = {"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}}
            if filter_applies(cmd.get("filter") or {}, entry):
                found.append({"name": name, "type": "collection"} if cmd.get("nameOnly") else entry)
        return self._open_cursor(f"{db}.$cmd.listCollections", found, (cmd.get("cursor") or {}).get("batchSize"), False)

    def _list_databases(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        databases = []
        for name in self.engine.list_database_names():
            entry = {"name": name, "sizeOnDisk": 0, "empty": False}
            if filter_applies(cmd.get("filter") or {}, entry):
                databases.append({"name": name} if cmd.get("nameOnly") else entry)
        return {"databases": databases, **({} if cmd.get("nameOnly") else {"totalSize": 0})}

    def _drop_database(self, db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        self.engine.drop_database(db)
        return {}
