"""`lrmscope eval`: a benchmark run, K samples per prompt and mode, batched, judged, resumable."""

from __future__ import annotations

import argparse
from dataclasses import replace

from rich.console import Console
from rich.progress import Progress

from lrmscope.cli.options import (
    Given,
    add_db_option,
    add_generation_options,
    add_judge_options,
    add_model_options,
    apply_preset,
    checked_db_path,
    count,
    generation_settings,
    judge_options,
    mode_catalog,
    text_arg,
)
from lrmscope.cli.printer import progress_columns, say
from lrmscope.cli.setup import MAX_SEQUENCES, backend_slots, load_judges, start_run
from lrmscope.errors import LrmscopeError
from lrmscope.vocab import DEFAULT_JUDGE, PROMPT_KINDS

DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 1024


def register(commands) -> None:
    parser = commands.add_parser(
        "eval",
        help="run a safety benchmark: K samples per prompt and mode, batched, judged, resumable",
        description="Generate K samples for every prompt of a dataset under each decoding mode, "
        "save them as they stream and judge them as they finish. The K samples of a prompt "
        "share one evaluation of the prompt and decode together in one llama.cpp batch. "
        "Ctrl-C stops cleanly; running the same command again resumes the run where it stopped.",
    )
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="FILE|demo|hf:NAME",
        help="StrongREJECT, WildJailbreak, XSTest, GSM8K or MATH-500 CSV/TSV/Parquet, JSONL with a "
        "`prompt` (or `question`, `problem`) field, a text file (one prompt a line), `demo` (a "
        "small set shipped with lrmscope: harmful, benign and reasoning prompts), "
        "hf:NAME[:CONFIG][:SPLIT] (a Hugging Face dataset from the local cache or a save_to_disk "
        'folder), or conversations: JSONL rows of `messages` (README.md "Conversations"; '
        "`demo-conversations` ships with lrmscope)",
    )
    parser.add_argument("--limit", type=count, metavar="N", help="only the first N prompts")
    parser.add_argument("--category", help="only prompts of this category")
    parser.add_argument("--column", help="the column or field holding the prompts")
    parser.add_argument(
        "--data-type",
        metavar="TYPE",
        help="WildJailbreak: the data_type rows to keep (default adversarial_harmful; all = "
        "every row)",
    )
    parser.add_argument(
        "--task",
        "--prompt-kind",
        dest="prompt_kind",
        choices=PROMPT_KINDS,
        help="the task (prompt kind) of every prompt of the file, over what the file says (by "
        "default: a row with an `answer` is reasoning, else its `harmful` or `label` column, else "
        "a WildJailbreak data_type, else harmful for StrongREJECT and unknown otherwise); safety "
        "metrics average harmful and unknown prompts, refusals benign ones, accuracy reasoning "
        "ones",
    )
    parser.add_argument(
        "--modes",
        default="default",
        help="comma-separated: default, zerothink, lessthink, morethink, modes of your own "
        "(--modes-file), or all = the four (default: default)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="K",
        action=Given,
        help="samples per prompt and mode (default 5; 1 with --greedy)",
    )
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="the study's configuration: safechain (temperature 0.6, top-p 0.95, K 5, "
        "max-tokens 16000, think budget 10000, enforce 10, the study's think opener and "
        "MoreThink answer budget) or safechain-greedy (temperature 0, K 1, the rest alike); "
        "options you give override it",
    )
    parser.add_argument(
        "--parallel",
        type=count,
        default=1,
        metavar="N",
        help="prompts decoded at once: N x K sequences share one batch (default 1)",
    )
    parser.add_argument(
        "--concurrency",
        type=count,
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"with --endpoint: requests in flight, spread over the endpoints (default "
        f"{DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--judge",
        action="append",
        metavar="NAME[=ARG]",
        help="judge samples as they finish (repeatable; default rs-match; `none` for no judge)",
    )
    add_judge_options(parser)
    parser.add_argument(
        "--system",
        type=text_arg,
        metavar="TEXT",
        help="a system prompt (R1 distills want none)",
    )
    parser.add_argument(
        "--new-run",
        action="store_true",
        help="start a new run even if an unfinished one of this model and dataset exists",
    )
    add_generation_options(parser, mode=False)
    add_model_options(parser)
    add_db_option(parser)
    parser.set_defaults(func=cmd_eval, mode="default")


def cmd_eval(args: argparse.Namespace) -> int:
    from lrmscope.core import conversations
    from lrmscope.core.datasets import load_dataset
    from lrmscope.core.eval import (
        PRESETS,
        EvalRunner,
        EvalSettings,
        judge_run,
        open_run,
        plan,
        render_prompts,
    )
    from lrmscope.core.eval import Progress as EvalProgress
    from lrmscope.engine.settings import check_choice
    from lrmscope.store import Store

    if args.preset is not None:
        check_choice("preset", args.preset, tuple(PRESETS))
        apply_preset(args, PRESETS[args.preset])
    samples = (1 if args.greedy else 5) if args.samples is None else args.samples
    if args.parallel > MAX_SEQUENCES:
        raise LrmscopeError(
            f"--parallel {args.parallel}: one llama.cpp context decodes at most {MAX_SEQUENCES} "
            "sequences; use a smaller --parallel"
        )
    if args.concurrency > MAX_CONCURRENCY:
        raise LrmscopeError(
            f"--concurrency {args.concurrency}: at most {MAX_CONCURRENCY} requests in flight "
            "(each holds a connection); use a smaller --concurrency"
        )
    catalog = mode_catalog(args)
    mode, sampler = generation_settings(args, catalog)
    filters = {
        "limit": args.limit,
        "category": args.category,
        "data_type": args.data_type,
        "prompt_kind": args.prompt_kind,
    }
    dataset = load_dataset(args.dataset, column=args.column, **filters)
    settings = EvalSettings(
        dataset=dataset,
        dataset_filters=filters,
        modes=catalog.parse_list(args.modes),
        samples=samples,
        sampler=sampler,
        mode=mode,
        system=args.system,
        preset=args.preset,
    )
    talks = _conversation_plans(args, settings, catalog) if dataset.conversations else None
    used = settings.modes if talks is None else conversations.modes_used(talks)
    settings = replace(settings, row_modes=tuple(m for m in used if m not in settings.modes))
    db_path = checked_db_path(args.db)
    err = Console(stderr=True, highlight=False)
    specs = args.judge or [DEFAULT_JUDGE]
    options = judge_options(args)
    judges = () if specs == ["none"] else load_judges(specs, options)
    n_seq = min(samples * args.parallel, MAX_SEQUENCES)
    model = backend_slots(args, mode, sampler, err, n_seq, used, served=args.concurrency)
    backend = model.backend
    if talks is None:
        rendered = render_prompts(backend, settings)
    store = Store(db_path)
    run_id, state = open_run(
        store,
        backend.model_fingerprint,
        settings,
        new_run=args.new_run,
        start_run=lambda: start_run(
            store,
            "eval",
            backend,
            sampler,
            mode,
            mode=",".join(m.value for m in settings.modes),
            dataset=dataset.name,
            k=samples,
            config=settings.config(backend.model_fingerprint),
        ),
    )
    if state == "finished":
        judge_run(store, run_id, judges)
        say(
            err,
            f"run {run_id} with these settings is already complete in {db_path}; see `lrmscope "
            f"metrics {db_path}` (--new-run samples again, --seed for other samples)",
        )
        return 0
    if state == "resumed":
        dropped = store.drop_unfinished(run_id)
        say(err, f"resuming run {run_id}: {dropped} unfinished samples will be made again")
    jobs: list
    if talks is None:
        jobs = plan(store, settings, run_id, rendered)
        total = len(dataset.rows) * len(settings.modes) * samples
        resumed = total - len(jobs)
    else:
        jobs, resumed = conversations.plan(store, settings, run_id, talks)
        total = conversations.total(dataset, talks, samples)
    progress = EvalProgress(total=total, resumed=resumed)
    say(
        err,
        f"run {run_id}: {_what(dataset)} of {dataset.path or dataset.name} "
        f"({dataset.format}; "
        f"{dataset.duplicates} repeated and {dataset.blanks} blank rows skipped) x "
        f"{len(settings.modes)} modes x {samples} samples on {backend.info()['device']}, "
        + (
            f"{len(model.remote)} requests at once"
            if model.remote
            else f"{n_seq} sequences per batch, {backend.info()['threads']}"
        )
        + f"; {total - resumed} to generate",
    )
    from lrmscope.engine.guard import guard_judges

    guarding = guard_judges(used, options)
    runner = EvalRunner(store, model.open(), settings, run_id, judges, guarding)
    try:
        with store.ending(run_id) as ending, Progress(*progress_columns(), console=err) as bar:
            task = bar.add_task("samples", total=total, completed=progress.done, rate="")

            def show(p: EvalProgress) -> None:
                bar.update(task, completed=p.done + p.failed, rate=f"{p.tokens_per_s:.0f} tok/s")

            runner.run(jobs, progress, show)
            ending.status = "done" if progress.done == total else "failed"
    except KeyboardInterrupt:
        say(
            err,
            f"interrupted: {progress.done} of {total} samples are saved in {db_path} (run "
            f"{run_id}); run the same command to resume",
        )
        return 130
    finally:
        model.close()
        guarding.close()  # the guards' verdicts still due are of no use now
    if runner.no_thought:
        from lrmscope.engine.generation import NO_THOUGHT

        say(err, f"note: {runner.no_thought} samples: {NO_THOUGHT}")
    if progress.failed:
        say(
            err,
            f"{progress.failed} samples failed (saved with their error); run again to retry them",
        )
    say(
        err,
        f"run {run_id}: {progress.done} of {total} samples in {db_path}"
        + (f"; judged by {', '.join(j.name for j in judges)}" if judges else "")
        + f"; see `lrmscope metrics {db_path}`",
    )
    return 0 if ending.status == "done" else 1


def _conversation_plans(args: argparse.Namespace, settings, catalog) -> dict:
    """A conversation set's plans (core/conversations.py), its rows' modes and, for a local
    model, its rows against the model's template (read without the weights) checked before any
    model loads."""
    from lrmscope.core import conversations

    talks = conversations.plans(settings.dataset, settings.modes, catalog.parse)
    settings.mode.check_answer_room(conversations.modes_used(talks), settings.sampler.max_tokens)
    if args.endpoint:
        from lrmscope.cli.setup import prompt_format

        if args.api != "chat":  # a chat server applies its own template
            conversations.check_templates(prompt_format(args).render, settings.dataset, args.system)
    else:
        from lrmscope.engine.models import check_gguf, embedded_model_path
        from lrmscope.engine.remote import format_from_gguf

        model = check_gguf(args.model) if args.model else embedded_model_path()
        conversations.check_templates(format_from_gguf(model).render, settings.dataset, args.system)
    return talks


def _what(dataset) -> str:
    if dataset.conversations:
        return f"{len(dataset.conversations)} conversations ({len(dataset.rows)} generated turns)"
    return f"{len(dataset.rows)} prompts"
