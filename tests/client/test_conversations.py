"""Conversations and messages through the client, against a real `parley up --fake-model`."""

from __future__ import annotations

from parley_client import AgentConfig, Conversation, Parley, TextBlock

from .conftest import DATA_PLANE, example_config


def test_create_returns_a_typed_conversation_with_the_servers_defaults(client: Parley) -> None:
    created = client.conversations.create(
        name="hello world",
        system_prompt="You are a helpful assistant. Answer concisely.",
        defaults=example_config(),
    )
    assert isinstance(created, Conversation)
    assert created.version == 0 and created.name == "hello world"
    assert created.defaults.model == "anthropic.claude-opus-4.6"
    assert created.defaults.data_plane_id == DATA_PLANE
    assert created.defaults.tools == [] and created.defaults.mcp_servers == []
    assert created.created_at is not None
    again = client.conversations.get(created.id)
    assert again.id == created.id and again.system_prompt == created.system_prompt


def test_unset_defaults_are_not_sent_and_take_the_servers_defaults(client: Parley) -> None:
    created = client.conversations.create(
        defaults=AgentConfig(model="anthropic.claude-opus-4.6", data_plane_id=DATA_PLANE)
    )
    assert created.defaults.max_iterations == 3 and created.defaults.max_tokens == 2048
    assert created.defaults.execution_cluster == "shared"
    assert created.name is None
    plain = client.conversations.create(  # a plain dict works as well as the model
        defaults={"model": "anthropic.claude-opus-4.6", "data_plane_id": DATA_PLANE}
    )
    assert plain.defaults.max_iterations == 3


def test_list_pages_use_the_specs_envelope_and_iter_all_walks_them(client: Parley) -> None:
    made = [client.conversations.create(name=f"c{i}", defaults=example_config()) for i in range(5)]
    first = client.conversations.list(page=1, per_page=2)
    assert (first.current_page, first.prev_page, first.next_page) == (1, None, 2)
    assert (first.total_records, first.total_pages) == (5, 3)
    assert [c.name for c in first.records] == ["c4", "c3"]  # newest first
    last = client.conversations.list(page=3, per_page=2)
    assert (last.prev_page, last.next_page, [c.name for c in last.records]) == (2, None, ["c0"])
    walked = list(client.conversations.iter_all(per_page=2))
    assert [c.id for c in walked] == [c.id for c in reversed(made)]


def test_iter_all_yields_each_conversation_once_while_new_ones_push_pages_down(
    client: Parley,
) -> None:
    for i in range(4):
        client.conversations.create(name=f"old{i}", defaults=example_config())
    walk = client.conversations.iter_all(per_page=2)
    seen = [next(walk).name, next(walk).name]  # page 1: old3, old2
    client.conversations.create(name="new", defaults=example_config())  # shifts old2 to page 2
    seen += [c.name for c in walk]
    assert seen == ["old3", "old2", "old1", "old0"]


def test_messages_since_a_version_and_iter_all_across_pages(client: Parley) -> None:
    conversation = client.conversations.create(defaults=example_config())
    first = client.runs.wait(client.runs.start(conversation.id, "one").id)
    second = client.runs.start(conversation.id, "two", expected_version=2)
    client.runs.wait(second.id)
    everything = client.messages.list(conversation.id)
    assert everything.current_version == 4 and everything.next_since is None
    assert [(m.sequence_no, m.role, m.text) for m in everything.messages] == [
        (1, "user", "one"),
        (2, "assistant", "You said: one"),
        (3, "user", "two"),
        (4, "assistant", "You said: two"),
    ]
    assert isinstance(everything.messages[0].content_blocks[0], TextBlock)
    assert everything.messages[1].run_id == first.id
    since = client.messages.list(conversation.id, since=2)
    assert [m.sequence_no for m in since.messages] == [3, 4]
    page = client.messages.list(conversation.id, per_page=3)
    assert len(page.messages) == 3 and page.next_since == 3
    walked = list(client.messages.iter_all(conversation.id, per_page=1))
    assert [m.sequence_no for m in walked] == [1, 2, 3, 4]
    assert [m.sequence_no for m in client.messages.iter_all(conversation.id, since=3)] == [4]
