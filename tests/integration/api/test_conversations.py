"""Creating, listing and reading conversations; identity and scoping."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from agents.v1 import conversation_service_pb2 as svc
from google.protobuf import json_format

from services.common.auth import READ_SCOPE, WRITE_SCOPE, mint_token

from .conftest import SECRET, Api, defaults, expect_error

SCHEMA_OK = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


async def test_create_fills_documented_defaults(api: Api) -> None:
    who = api.user()
    created = await api.create(who)
    assert created.version == 0 and (created.company_id, created.user_id) == who
    assert uuid.UUID(created.id).version == 4
    assert not created.HasField("name") and not created.HasField("system_prompt")
    echoed = json_format.MessageToDict(created.defaults, preserving_proto_field_name=True)
    assert echoed == {
        **defaults(),
        "execution_cluster": "shared",
        "max_iterations": 3,
        "max_tokens": 2048,
        "temperature": 0.0,
        "stream": True,
        "prompt_caching": True,
    }
    got = await api.public.GetConversation(
        svc.GetConversationRequest(id=created.id), metadata=api.auth(who)
    )
    assert got == created


async def test_create_keeps_what_was_given(api: Api) -> None:
    who = api.user()
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["event"],
        "properties": {
            "event": {
                "anyOf": [
                    {"type": "object", "properties": {"type": {"const": "login"}}},
                    {"type": "object", "properties": {"type": {"const": "logout"}}},
                ]
            }
        },
    }
    created = await api.create(
        who,
        name="event logger",
        system_prompt="Be brief.",
        defaults=defaults(
            max_iterations=8,
            temperature=0.5,
            output_format_schema=schema,
            tools=[{"name": "ask", "input_schema": SCHEMA_OK}],
            mcp_servers=[{"alias": "docs", "url": "https://docs.test/mcp"}],
        ),
    )
    assert (created.name, created.system_prompt) == ("event logger", "Be brief.")
    echoed = json_format.MessageToDict(created.defaults, preserving_proto_field_name=True)
    assert echoed["output_format_schema"] == schema
    assert (echoed["max_iterations"], echoed["temperature"]) == (8, 0.5)


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ({}, "InvalidRequest", "defaults"),
        (
            {"defaults": {"data_plane_id": "f79cbdae-4848-47ca-95e8-69588364d185"}},
            "InvalidRequest",
            "model",
        ),
        ({"defaults": {"model": "anthropic.claude-opus-4.6"}}, "InvalidRequest", "data_plane_id"),
        ({"defaults": defaults(model="gpt-4")}, "UnknownModel", "anthropic.claude-opus-4.6"),
        (
            {"defaults": defaults(data_plane_id=str(uuid.UUID(int=7)))},
            "UnknownDataPlane",
            "data_plane_id",
        ),
        (
            {"defaults": defaults(execution_cluster="dedicated")},
            "UnknownExecutionCluster",
            "dedicated",
        ),
        ({"defaults": defaults(max_iterations=101)}, "InvalidRequest", "max_iterations"),
        ({"defaults": defaults(max_tokens=70000)}, "InvalidRequest", "max_tokens"),
        ({"defaults": defaults(temperature=2.0)}, "InvalidRequest", "temperature"),
        (
            {"defaults": defaults(output_format_schema={"type": "object", "oneOf": []})},
            "UnsupportedOutputSchema",
            "oneOf",
        ),
        (
            {"defaults": defaults(mcp_servers=[{"alias": "my_docs", "url": "https://x.test"}])},
            "InvalidToolAlias",
            "my_docs",
        ),
        (
            {"defaults": defaults(mcp_servers=[{"alias": "docs", "url": "ftp://x.test"}])},
            "McpUrlNotAllowed",
            "ftp",
        ),
        (
            {
                "defaults": defaults(
                    mcp_servers=[
                        {"alias": "docs", "url": "https://x.test", "tools": [{"name": "x" * 60}]}
                    ]
                )
            },
            "ToolNameTooLong",
            "64",
        ),
        (
            {"defaults": defaults(tools=[{"name": "confirm-booking"}])},
            "InvalidCallerToolName",
            "confirm-booking",
        ),
        (
            {"defaults": defaults(tools=[{"name": "ask", "input_schema": {"type": "string"}}])},
            "InvalidRequest",
            "input_schema",
        ),
    ],
)
async def test_create_validation(api: Api, body: dict, code: str, detail: str) -> None:
    request = json_format.ParseDict(body, svc.CreateConversationRequest())
    error, info = await expect_error(
        api.public.CreateConversation(request, metadata=api.auth(api.user())), code
    )
    assert detail in error.details()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.domain == "parley.dev" and info.metadata["slug"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer garbage",
        "Basic dXNlcjpw",
        "Bearer " + mint_token("another-secret-that-is-32-bytes-long!", 1, 1),
    ],
)
async def test_bad_tokens_are_unauthenticated(api: Api, authorization: str | None) -> None:
    metadata = (("authorization", authorization),) if authorization else ()
    for call in (
        api.public.ListConversations(svc.ListConversationsRequest(), metadata=metadata),
        api.public.GetRun(svc.GetRunRequest(id=str(uuid.uuid4())), metadata=metadata),
        api.public.CreateConversation(svc.CreateConversationRequest(), metadata=metadata),
    ):
        error, _ = await expect_error(call, "Unauthenticated")
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_expired_token(api: Api) -> None:
    token = mint_token(SECRET, 1, 1, ttl_seconds=-10)
    error, _ = await expect_error(
        api.public.ListConversations(
            svc.ListConversationsRequest(), metadata=(("authorization", f"Bearer {token}"),)
        ),
        "Unauthenticated",
    )
    assert "expired" in error.details()


async def test_scopes(api: Api) -> None:
    who = api.user()
    error, _ = await expect_error(
        api.public.CreateConversation(
            json_format.ParseDict({"defaults": defaults()}, svc.CreateConversationRequest()),
            metadata=api.auth(who, READ_SCOPE),
        ),
        "PermissionDenied",
    )
    assert WRITE_SCOPE in error.details()
    error, _ = await expect_error(
        api.public.ListConversations(
            svc.ListConversationsRequest(), metadata=api.auth(who, WRITE_SCOPE)
        ),
        "PermissionDenied",
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and READ_SCOPE in error.details()
    conversation = await api.create(who)
    await expect_error(
        api.public.StartRun(api.start_request(conversation.id), metadata=api.auth(who, READ_SCOPE)),
        "PermissionDenied",
    )
    await expect_error(
        api.public.GetConversation(
            svc.GetConversationRequest(id=conversation.id), metadata=api.auth(who, WRITE_SCOPE)
        ),
        "PermissionDenied",
    )
    await api.public.ListConversations(
        svc.ListConversationsRequest(), metadata=api.auth(who, READ_SCOPE)
    )


@pytest.mark.parametrize("relation", ["same-company-other-user", "other-company-same-user"])
async def test_other_users_objects_look_missing(api: Api, relation: str) -> None:
    owner = api.user()
    intruder = (
        (owner[0], owner[1] + 1)
        if relation == "same-company-other-user"
        else (owner[0] + 1, owner[1])
    )
    conversation = await api.create(owner, name="private")
    run = await api.start(owner, conversation.id)
    them = api.auth(intruder)
    missing_c, missing_r = str(uuid.uuid4()), str(uuid.uuid4())
    for cid in (conversation.id, missing_c):
        error, _ = await expect_error(
            api.public.GetConversation(svc.GetConversationRequest(id=cid), metadata=them),
            "ConversationNotFound",
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == f"conversation {cid} was not found"
        await expect_error(
            api.public.ListMessages(svc.ListMessagesRequest(id=cid), metadata=them),
            "ConversationNotFound",
        )
        await expect_error(
            api.public.StartRun(api.start_request(cid), metadata=them), "ConversationNotFound"
        )
    for rid in (run.id, missing_r):
        error, _ = await expect_error(
            api.public.GetRun(svc.GetRunRequest(id=rid), metadata=them), "RunNotFound"
        )
        assert error.details() == f"run {rid} was not found"
    listed = await api.public.ListConversations(
        svc.ListConversationsRequest(per_page=200), metadata=them
    )
    assert listed.total_records == 0


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-uuid",
        "1",
        " ",
        "",
        "00000000-0000-0000-0000-00000000000g",
        "'; DROP TABLE conversations; --",
    ],
)
async def test_malformed_ids_are_not_found(api: Api, bad_id: str) -> None:
    me = api.auth(api.user())
    await expect_error(
        api.public.GetConversation(svc.GetConversationRequest(id=bad_id), metadata=me),
        "ConversationNotFound",
    )
    await expect_error(
        api.public.ListMessages(svc.ListMessagesRequest(id=bad_id), metadata=me),
        "ConversationNotFound",
    )
    await expect_error(api.public.GetRun(svc.GetRunRequest(id=bad_id), metadata=me), "RunNotFound")
    await expect_error(
        api.public.StartRun(api.start_request(bad_id), metadata=me), "ConversationNotFound"
    )


async def list_page(api: Api, who: tuple[int, int], **query: int) -> svc.ListConversationsResponse:
    return await api.public.ListConversations(
        svc.ListConversationsRequest(**query), metadata=api.auth(who)
    )


async def test_list_empty(api: Api) -> None:
    page = await list_page(api, api.user())
    assert (page.current_page, page.total_records, page.total_pages, list(page.records)) == (
        1,
        0,
        0,
        [],
    )
    assert not page.HasField("prev_page") and not page.HasField("next_page")
    beyond = await list_page(api, api.user(), page=3)
    assert not beyond.HasField("prev_page") and not beyond.HasField("next_page")


async def test_list_pages_newest_first(api: Api) -> None:
    who = api.user()
    ids = [(await api.create(who, name=f"c{i}")).id for i in range(4)]
    newest_first = ids[::-1]
    everything = await list_page(api, who)
    assert [c.id for c in everything.records] == newest_first
    assert (everything.total_records, everything.total_pages) == (4, 1)
    assert not everything.HasField("prev_page") and not everything.HasField("next_page")

    first = await list_page(api, who, page=1, per_page=2)  # exact multiple: 2 full pages
    assert [c.id for c in first.records] == newest_first[:2]
    assert (first.current_page, first.next_page, first.total_pages) == (1, 2, 2)
    assert not first.HasField("prev_page")
    last = await list_page(api, who, page=2, per_page=2)
    assert [c.id for c in last.records] == newest_first[2:]
    assert last.prev_page == 1 and not last.HasField("next_page")
    beyond = await list_page(api, who, page=5, per_page=2)
    assert list(beyond.records) == [] and beyond.current_page == 5
    assert beyond.prev_page == 2 and not beyond.HasField("next_page")
    odd = await list_page(api, who, page=2, per_page=3)
    assert [c.id for c in odd.records] == newest_first[3:] and odd.total_pages == 2


@pytest.mark.parametrize("query", [{"page": 0}, {"page": -1}, {"per_page": 0}, {"per_page": -5}])
async def test_list_bad_paging(api: Api, query: dict) -> None:
    error, info = await expect_error(
        api.public.ListConversations(
            svc.ListConversationsRequest(**query), metadata=api.auth(api.user())
        ),
        "InvalidRequest",
    )
    ((field, value),) = query.items()
    assert info.metadata["field"] == field and f"got {value}" in error.details()


async def test_list_per_page_is_capped_at_200(api: Api) -> None:
    who = api.user()
    for batch in range(0, 201, 50):
        await asyncio.gather(*(api.create(who) for _ in range(min(50, 201 - batch))))
    page = await list_page(api, who, per_page=1000)
    assert len(page.records) == 200 and page.total_pages == 2 and page.next_page == 2
    assert page.total_records == 201
    default = await list_page(api, who)
    assert len(default.records) == 50 and default.total_pages == 5


@pytest.mark.parametrize("query", [{"since": -1}, {"per_page": 0}])
async def test_list_messages_bad_paging(api: Api, query: dict) -> None:
    who = api.user()
    conversation = await api.create(who)
    _, info = await expect_error(
        api.public.ListMessages(
            svc.ListMessagesRequest(id=conversation.id, **query), metadata=api.auth(who)
        ),
        "InvalidRequest",
    )
    assert info.metadata["field"] == next(iter(query))


async def test_list_messages_of_a_new_conversation(api: Api) -> None:
    who = api.user()
    conversation = await api.create(who)
    page = await api.public.ListMessages(
        svc.ListMessagesRequest(id=conversation.id), metadata=api.auth(who)
    )
    assert page.current_version == 0 and list(page.messages) == []
    assert not page.HasField("next_since")
