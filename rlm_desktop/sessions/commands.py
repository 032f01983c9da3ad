"""`rlm-desktop history`, `export` and `replay`: saved investigations from the command line.

Exit status: 0 done, 1 the replay did not reproduce the record, 2 usage (no such
investigation, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rlm_desktop.sessions.investigation import InvestigationSummary
from rlm_desktop.sessions.store import Store, StoreError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _usage(error: Exception) -> int:
    """Say why (a KeyError's message is its argument, not its repr) and exit 2."""
    reason = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"rlm-desktop: {reason}", file=sys.stderr)
    return EXIT_USAGE


def run_history(args: argparse.Namespace) -> int:
    try:
        with Store() as store:
            items = store.history()
    except StoreError as exc:
        return _usage(exc)
    if args.json:
        json.dump({"investigations": [item.to_json() for item in items]}, sys.stdout,
                  ensure_ascii=True, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if not items:
        print("No saved investigations.")
        return EXIT_OK
    print(format_history(items))
    return EXIT_OK


def format_history(items: list[InvestigationSummary]) -> str:
    from rlm_desktop.ask import printable
    from rlm_desktop.corpus.document import one_line

    rows = [("ID", "DATE", "STATUS", "COST", "CORPUS", "QUESTION")]
    for item in items:
        rows.append((item.id, time.strftime("%Y-%m-%d %H:%M", time.localtime(item.created)),
                     item.status + item.rerun_label,
                     f"${item.cost_usd:.4f}", one_line(item.corpus, 40),
                     printable(one_line(item.question, 60))))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join([*(row[i].ljust(widths[i]) for i in range(5)), row[5]]).rstrip()
                     for row in rows)


def run_export(args: argparse.Namespace) -> int:
    from rlm_desktop.sessions.export import export, write_report

    try:
        with Store() as store:
            investigation = store.load(store.resolve(args.investigation))
    except (StoreError, KeyError) as exc:
        return _usage(exc)
    text = export(investigation, args.format)
    if not args.output or args.output == "-":
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(args.output)
    try:
        write_report(target, text)
    except OSError as exc:
        print(f"rlm-desktop: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"rlm-desktop: wrote {target}", file=sys.stderr)
    return EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    """Rerun an investigation from its recorded responses and say whether it reproduced."""
    from rlm_desktop.sessions.replay import rerun, same_steps

    try:
        with Store() as store:
            original_id = store.resolve(args.investigation)
            original = store.load(original_id)
            new_id, result, nodes = rerun(store, original_id, replay=True,
                                          save=not args.no_save)
    except (StoreError, KeyError) as exc:
        return _usage(exc)
    same = (result.answer == original.answer and result.citations == original.citations
            and same_steps(nodes, original.nodes))
    data = {"investigation": new_id, "replay_of": original_id,
            "reproduced": same and result.status == original.status,
            **result.to_json()}
    if args.json:
        json.dump(data, sys.stdout, ensure_ascii=True, indent=2)
        sys.stdout.write("\n")
    else:
        verdict = ("reproduced the recorded steps, answer and citations"
                   if data["reproduced"]
                   else f"did NOT reproduce the record (status {result.status}"
                   + (f": {result.error}" if result.error else "") + ")")
        saved = f" (saved as {new_id})" if new_id else ""
        print(f"replay of {original_id}{saved}: {verdict}")
    return EXIT_OK if data["reproduced"] else EXIT_FAILED


def run_resume(args: argparse.Namespace) -> int:
    """Carry on an investigation that was cut short: the record, then the model live."""
    import dataclasses

    from rlm_desktop.ask import LiveTree, report
    from rlm_desktop.sessions.replay import config_of, plan_rerun, run_plan, same_server
    from rlm_desktop.settings import resolve_endpoint

    base_url, api_key = resolve_endpoint(args.base_url, args.api_key)
    overrides = {"max_iterations": args.max_iterations, "max_subcalls": args.max_subcalls,
                 "max_tokens": args.max_tokens, "max_cost_usd": args.max_cost,
                 "timeout_s": args.timeout}
    try:
        with Store() as store:
            original_id = store.resolve(args.investigation)
            original = store.load(original_id)
            recorded_url = original.settings.get("base_url")
            if args.base_url is None and not same_server(recorded_url, base_url):
                raise ValueError(
                    f"it was recorded with {recorded_url or 'OpenAI'}; resuming sends its "
                    f"conversation (with document excerpts) to {base_url or 'OpenAI'}: "
                    "pass --base-url to say where it should go")
            limits = dataclasses.replace(config_of(original).limits, **{
                k: v for k, v in overrides.items() if v is not None})
            plan = plan_rerun(store, original_id, replay=False, resume=True,
                              base_url=base_url, api_key=api_key, limits=limits)
            if plan.config.replay is not None:
                print(f"rlm-desktop: resuming {original_id} ({original.status})",
                      file=sys.stderr)
            tree = [] if args.json else [LiveTree(sys.stdout)]
            new_id, result, nodes = run_plan(store, plan, save=not args.no_save,
                                             subscribers=tree)
            failure = store.write_failure
    except (StoreError, ValueError, KeyError) as exc:
        return _usage(exc)
    cache = plan.config.replay
    served = getattr(cache, "served", 0)
    live = getattr(cache, "live", 0)
    saved = f", saved as {new_id}" if new_id else ""
    spent = sum(n.cost_usd or 0.0 for n in nodes if not n.extra.get("from_record")
                and n.kind != "run")
    print(f"rlm-desktop: {served} model calls from the record, {live} live "
          f"(${spent:.4f} spent now){saved}", file=sys.stderr)
    if live == 0 and result.status != "completed":
        print("rlm-desktop: nothing new was done: it stopped where the record stops "
              "(raise the limit that stopped it, e.g. --max-cost or --max-iterations)",
              file=sys.stderr)
    if failure:
        print(f"rlm-desktop: warning: the resumed run was not saved completely: {failure}",
              file=sys.stderr)
    return report(result, as_json=args.json, investigation=new_id)
