"""The MongoDB stand-in (tests/standins/mongo_server.py) as `pymongo` sees it: what the
conversation store's contract suite relies on beyond the store's own calls."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import bson
import pytest
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, OperationFailure

from tests.standins.mongo_server import HEADER, OP_MSG, MongoStandIn


@pytest.fixture
def standin() -> Iterator[MongoStandIn]:
    server = MongoStandIn().start()
    yield server
    server.close()


@pytest.fixture
def client(standin: MongoStandIn) -> Iterator[MongoClient]:
    client: MongoClient = MongoClient(standin.url, serverSelectionTimeoutMS=3000)
    yield client
    client.close()


def _send_raw(standin: MongoStandIn, data: bytes) -> bytes:
    """Send bytes on a fresh connection, end it, and read what comes back until the server closes it."""
    with socket.create_connection(("127.0.0.1", standin.port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _op_msg(payload: bytes, opcode: int = OP_MSG) -> bytes:
    return HEADER.pack(HEADER.size + len(payload), 7, 0, opcode) + payload


def test_bad_messages_close_only_their_connection(standin: MongoStandIn, client: MongoClient) -> None:
    client.db.c.insert_one({"n": 1})
    oversized = HEADER.pack(100_000_000, 1, 0, OP_MSG)  # over maxMessageSizeBytes: not read
    bad_bson = _op_msg(struct.pack("<IB", 0, 0) + struct.pack("<i", 12) + b"\x10n\x00garbage")
    unknown_opcode = _op_msg(b"\x00" * 8, opcode=9999)
    ping = _op_msg(struct.pack("<IB", 0, 0) + bson.encode({"ping": 1, "$db": "admin"}))
    assert _send_raw(standin, ping), "a whole message is answered"
    for message in (oversized, bad_bson, unknown_opcode, ping[:-3]):
        assert _send_raw(standin, message) == b"", "closed without an answer"
    assert client.db.c.find_one({"n": 1}, {"_id": 0}) == {"n": 1}, "the server and other connections go on"


def test_unknown_command_is_command_not_found(client: MongoClient) -> None:
    with pytest.raises(OperationFailure) as failure:
        client.db.command("frobnicate")
    assert failure.value.code == 59
    assert (failure.value.details or {})["codeName"] == "CommandNotFound"


def test_duplicate_keys_name_the_violated_index(client: MongoClient) -> None:
    messages = client.db.messages
    messages.create_index([("conversation_id", 1), ("seq", 1)], unique=True, name="conversation_seq")
    messages.create_index(
        [("conversation_id", 1), ("client_id", 1)],
        unique=True,
        name="conversation_client_id",
        partialFilterExpression={"client_id": {"$type": "string"}},
    )
    messages.insert_one({"conversation_id": 1, "seq": 1, "client_id": "a"})
    messages.insert_one({"conversation_id": 1, "seq": 2, "client_id": None})
    messages.insert_one({"conversation_id": 1, "seq": 3, "client_id": None})  # null is not in the partial index
    with pytest.raises(DuplicateKeyError) as seq_clash:
        messages.insert_one({"conversation_id": 1, "seq": 2, "client_id": "b"})
    with pytest.raises(DuplicateKeyError) as repeated:
        messages.insert_one({"conversation_id": 1, "seq": 4, "client_id": "a"})
    with pytest.raises(DuplicateKeyError) as modified:
        messages.find_one_and_update({"seq": 3}, {"$set": {"seq": 1}})
    assert (seq_clash.value.details or {})["keyPattern"] == {"conversation_id": 1, "seq": 1}
    assert (seq_clash.value.details or {})["keyValue"] == {"conversation_id": 1, "seq": 2}
    assert (repeated.value.details or {})["keyPattern"] == {"conversation_id": 1, "client_id": 1}
    assert (modified.value.details or {})["keyPattern"] == {"conversation_id": 1, "seq": 1}
    assert messages.count_documents({}) == 3


def test_long_reads_page_through_get_more_and_close_their_cursors(standin: MongoStandIn, client: MongoClient) -> None:
    client.db.c.insert_many([{"n": n} for n in range(250)])
    assert [d["n"] for d in client.db.c.find({}, {"_id": 0}).sort("n", 1)] == list(range(250))
    assert standin.commands.count("getMore") == 1, "101 in the first batch, the rest in one getMore"
    cursor = client.db.c.find().batch_size(10)
    next(cursor)
    cursor.close()
    assert "killCursors" in standin.commands


def test_close_cuts_open_connections(standin: MongoStandIn, client: MongoClient) -> None:
    client.admin.command("ping")  # a pooled connection stays open
    port = standin.port
    started = time.monotonic()
    standin.close()
    assert time.monotonic() - started < 5
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
