"""The benchmark's LangGraph graphs: Parley's `no_tool` and `one_tool` turn shapes for LangGraph
Agent Server (`langgraph dev`), loaded by it from this file (see langgraph_server.py).

A model node that is a zero-latency fake model function, answering like tests/bench/
fake_converse.py does (from the conversation alone), and an in-process tool node running `echo`:

- `no_tool`: model -> END; the model answers "4".
- `one_tool`: model -> tools -> model -> END; the first call returns a tool call of `echo` with
  `{"text": "ping"}`, the tool answers `echo:ping`, the second call answers `done: echo:ping`.

The tool node is a plain function rather than `langgraph.prebuilt.ToolNode` (which adds argument
validation and callbacks): LangGraph's cheapest way to run a tool, as the best case asks.
Runs in the LangGraph virtualenv (.venv-langgraph), never imports Parley.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph

TOOL_INPUT = {"text": "ping"}


def echo(text: str) -> str:
    return f"echo:{text}"


def _model(with_tool: bool):
    def model(state: MessagesState) -> dict[str, list[AnyMessage]]:
        last = state["messages"][-1]
        if isinstance(last, ToolMessage):
            return {"messages": [AIMessage(content=f"done: {last.content}")]}
        if with_tool:
            call = {"name": "echo", "args": TOOL_INPUT, "id": f"tu_{len(state['messages'])}"}
            return {"messages": [AIMessage(content="", tool_calls=[call])]}
        return {"messages": [AIMessage(content="4")]}

    return model


def tools(state: MessagesState) -> dict[str, list[AnyMessage]]:
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    return {
        "messages": [
            ToolMessage(content=echo(**call["args"]), tool_call_id=call["id"], name=call["name"])
            for call in last.tool_calls
        ]
    }


def _route(state: MessagesState) -> str:
    last: Any = state["messages"][-1]
    return "tools" if getattr(last, "tool_calls", None) else END


def _graph(with_tool: bool):
    builder = StateGraph(MessagesState)
    builder.add_node("model", _model(with_tool))
    builder.add_edge(START, "model")
    if with_tool:
        builder.add_node("tools", tools)
        builder.add_conditional_edges("model", _route, ["tools", END])
        builder.add_edge("tools", "model")
    else:
        builder.add_edge("model", END)
    return builder.compile()


no_tool = _graph(with_tool=False)
one_tool = _graph(with_tool=True)
