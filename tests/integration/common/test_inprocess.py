"""The in-process transport (services/common/inprocess.py) behaves as gRPC does: the same calls,
on a real server built by grpc_server.start_server, through a plain gRPC channel and through an
in-process one, give the same replies, initial metadata, status codes, details, ErrorInfo, metric
counts, deadlines, cancellations and streams; and a stopped listener is reached over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from agents.v1 import store_service_pb2, store_service_pb2_grpc

from services.common import channels, inprocess
from services.common.errors import ParleyError, entry_of, status_of
from services.common.grpc_server import REQUEST_ID_KEY, start_server
from services.common.incidents import LEASE_LOST
from services.common.internal_auth import InternalCredential, Role
from services.common.metrics import GRPC_HANDLED

SECRET = "inprocess-test-secret-of-32-bytes-or-more"
STORE = "agents.v1.StoreService"


class Servicer(store_service_pb2_grpc.StoreServiceServicer):
    """Each method shows one way a call can end."""

    def __init__(self) -> None:
        self.claiming = asyncio.Event()
        self.claim_cancelled = asyncio.Event()
        self.seen_metadata: list[dict[str, Any]] = []

    async def ReleaseLeases(self, request: Any, context: Any) -> Any:  # reply + initial metadata
        self.seen_metadata.append(dict(context.invocation_metadata()))
        await context.send_initial_metadata((("x-parley-http-status", "200"),))
        return store_service_pb2.ReleaseLeasesResponse(run_ids=[request.runner_name, "b"])

    async def RenewLeases(self, request: Any, context: Any) -> Any:  # a catalogued failure
        raise ParleyError(LEASE_LOST, "the lease on r1 is lost", run_id="r1")

    async def CommitRun(self, request: Any, context: Any) -> Any:  # a bug
        raise RuntimeError("boom")

    async def SetGeneratedName(self, request: Any, context: Any) -> Any:  # a handler's own abort
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now")

    async def ClaimRun(self, request: Any, context: Any) -> Any:  # a long poll
        self.claiming.set()
        try:
            await asyncio.sleep(request.wait_ms / 1000)
        except asyncio.CancelledError:
            self.claim_cancelled.set()
            raise
        return store_service_pb2.ClaimRunResponse()

    async def WatchWork(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for i in range(3):
            yield store_service_pb2.WatchWorkResponse(kind=2, run_id=f"{request.runner_id}-{i}")
        if request.runner_id == "fails":
            raise ParleyError(LEASE_LOST, "gone mid-stream")


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[Servicer, int, Any]]:
    servicer = Servicer()
    server, port = await start_server(
        "127.0.0.1:0",
        [(store_service_pb2_grpc.add_StoreServiceServicer_to_server, servicer)],
        [STORE],
        internal_secret=SECRET,
    )
    try:
        yield servicer, port, server
    finally:
        await server.stop(None)


def stub(port: int, in_process: bool) -> tuple[Any, Any]:
    channel = channels.open_channel(f"127.0.0.1:{port}", STORE, in_process=in_process)
    if in_process:
        assert isinstance(channel, inprocess.Channel) and channel.find() is not None
    return channel, store_service_pb2_grpc.StoreServiceStub(channel)


RUNNER = InternalCredential(SECRET, Role.RUNNER)  # one token for every call, as a runner's


def runner() -> tuple[tuple[str, str], ...]:
    return RUNNER.metadata()


def outcome(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    status = status_of(exc)
    return {
        "code": exc.code(),
        "details": exc.details(),
        "status": None if status is None else status.SerializeToString(deterministic=True),
        "entry": entry_of(exc).code,
    }


async def failure(call: Any) -> dict[str, Any]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return outcome(caught.value)


def handled(method: str, code: str) -> float:  # unary methods of StoreService
    return GRPC_HANDLED.labels("unary", STORE, method, code)._value.get()


async def observe(stub_: Any) -> dict[str, Any]:
    """Every way of ending a call, as the caller sees it."""
    seen: dict[str, Any] = {}
    release = store_service_pb2.ReleaseLeasesRequest(runner_name="a")
    call = stub_.ReleaseLeases(release, metadata=(*runner(), (REQUEST_ID_KEY, "req-1")), timeout=5)
    reply = await call
    seen["reply"] = (list(reply.run_ids), tuple(await call.initial_metadata()))
    seen["no credential"] = await failure(stub_.ReleaseLeases(release, timeout=5))
    operator = InternalCredential(SECRET, Role.OPERATOR).metadata()
    seen["wrong role"] = await failure(stub_.ReleaseLeases(release, metadata=operator, timeout=5))
    seen["user token"] = await failure(
        stub_.ReleaseLeases(release, metadata=(("authorization", "Bearer x.y.z"),), timeout=5)
    )
    renew = store_service_pb2.RenewLeasesRequest(runner_id="r")
    seen["catalogued"] = await failure(stub_.RenewLeases(renew, metadata=runner(), timeout=5))
    commit = store_service_pb2.CommitRunRequest(run_id="r")
    bug = await failure(
        stub_.CommitRun(commit, metadata=(*runner(), (REQUEST_ID_KEY, "req-bug")), timeout=5)
    )
    seen["bug"] = bug
    name = store_service_pb2.SetGeneratedNameRequest(conversation_id="c")
    seen["abort"] = await failure(stub_.SetGeneratedName(name, metadata=runner(), timeout=5))
    slow = store_service_pb2.ClaimRunRequest(runner_id="r", wait_ms=30_000)
    seen["deadline"] = await failure(stub_.ClaimRun(slow, metadata=runner(), timeout=0.2))
    unimplemented = store_service_pb2.AppendLiveTurnRequest(run_id="r")
    seen["unimplemented"] = (
        await failure(stub_.AppendLiveTurn(unimplemented, metadata=runner(), timeout=5))
    )["code"]
    watch = stub_.WatchWork(store_service_pb2.WatchWorkRequest(runner_id="w"), metadata=runner())
    seen["stream"] = [m.run_id async for m in watch]
    failing = stub_.WatchWork(
        store_service_pb2.WatchWorkRequest(runner_id="fails"), metadata=runner()
    )
    items = [(await failing.read()).run_id for _ in range(3)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await failing.read()
    seen["stream failure"] = (items, outcome(caught.value))
    refused = stub_.WatchWork(store_service_pb2.WatchWorkRequest(runner_id="w"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await refused.read()
    seen["stream refused"] = outcome(caught.value)
    return seen


async def test_both_paths_answer_alike() -> None:
    async with serving() as (servicer, port, _):
        results = {}
        counts = {}
        for in_process in (False, True):
            channel, stub_ = stub(port, in_process)
            before = {
                (m, c): handled(m, c)
                for m, c in [
                    ("ReleaseLeases", "OK"),
                    ("ReleaseLeases", "UNAUTHENTICATED"),
                    ("ReleaseLeases", "PERMISSION_DENIED"),
                    ("RenewLeases", "NOT_FOUND"),
                    ("CommitRun", "INTERNAL"),
                ]
            }
            try:
                results[in_process] = await observe(stub_)
            finally:
                await channel.close()
            counts[in_process] = {k: handled(*k) - v for k, v in before.items()}
        assert results[True] == results[False]
        assert counts[True] == counts[False]
        assert counts[True][("ReleaseLeases", "OK")] == 1
        # What the servicer saw of the caller: its metadata, the same either way.
        wire, direct = servicer.seen_metadata
        assert direct[REQUEST_ID_KEY] == wire[REQUEST_ID_KEY] == "req-1"
        assert direct["authorization"] == wire["authorization"]
        # the details the checks answered with: what they say, not how they got there
        seen = results[True]
        assert seen["no credential"]["code"] == grpc.StatusCode.UNAUTHENTICATED
        assert seen["wrong role"]["code"] == grpc.StatusCode.PERMISSION_DENIED
        assert seen["catalogued"]["entry"] == LEASE_LOST
        assert seen["bug"]["entry"] == "InternalError" and "req-bug" in seen["bug"]["details"]
        assert seen["deadline"]["code"] == grpc.StatusCode.DEADLINE_EXCEEDED
        assert seen["stream"] == ["w-0", "w-1", "w-2"]


@pytest.mark.parametrize("in_process", [False, True])
async def test_cancel_reaches_the_servicer(in_process: bool) -> None:
    async with serving() as (servicer, port, _):
        channel, stub_ = stub(port, in_process)
        try:
            call = stub_.ClaimRun(
                store_service_pb2.ClaimRunRequest(runner_id="r", wait_ms=30_000),
                metadata=runner(),
                timeout=60,
            )
            waiting = asyncio.ensure_future(call)
            async with asyncio.timeout(10):
                await servicer.claiming.wait()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            stream = stub_.WatchWork(
                store_service_pb2.WatchWorkRequest(runner_id="w"), metadata=runner()
            )
            assert (await stream.read()).run_id == "w-0"
            stream.cancel()
            with pytest.raises(asyncio.CancelledError):
                while True:
                    if await stream.read() is grpc.aio.EOF:
                        break
        finally:
            await channel.close()
        async with asyncio.timeout(10):  # over gRPC the server hears of it a moment later
            await servicer.claim_cancelled.wait()


async def test_a_stopped_listener_is_reached_over_grpc() -> None:
    """Once its server stops, an in-process channel's calls go over the wire: the caller sees
    what any remote caller of a stopped server sees."""
    async with serving() as (_, port, server):
        channel, stub_ = stub(port, True)
        try:
            await server.stop(None)
            assert channel.find() is None
            request = store_service_pb2.ReleaseLeasesRequest(runner_name="a")
            code = (await failure(stub_.ReleaseLeases(request, metadata=runner(), timeout=2)))[
                "code"
            ]
            assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        finally:
            await channel.close()


def test_only_one_local_address_is_served_in_process() -> None:
    find = inprocess._listener_for
    assert find("10.0.0.1:1,10.0.0.2:1")() is None
    assert find("dns:///api:50051")() is None
