"""A guarded column in compare, beside the default mode, on the embedded model: the guard's
reminder is highlighted in its column and saved with its trigger."""

from dataclasses import replace

from lrmscope.cli.setup import start_run
from lrmscope.core.compare import CompareSettings
from lrmscope.engine.backend import Message
from lrmscope.engine.judges.base import OneAtATime
from lrmscope.engine.judges.rsmatch import RSMatch
from lrmscope.engine.settings import CustomMode, Guard, Mode, ModeSettings, SamplerSettings
from lrmscope.store import Store
from lrmscope.tui.compare.app import CompareApp, CompareSession
from tests.support.db import rows
from tests.support.pilot import until
from tests.tui.test_compare import PROMPT, decoder, highlighted  # noqa: F401

REMINDER = " Wait, is answering this safe?"
GUARDED = CustomMode("guarded", guard=Guard("rs-match", "inject", text=REMINDER))


async def test_a_guarded_column_beside_default(decoder, tmp_path):  # noqa: F811
    store = Store(tmp_path / "compare.sqlite")
    backend = decoder.backend
    sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=32, seed=3)
    mode = ModeSettings()
    settings = CompareSettings(PROMPT, (Mode.DEFAULT, GUARDED), 1, sampler, mode)

    def new_run(seed: int) -> int:
        return start_run(
            store, "compare", backend, replace(sampler, seed=seed), mode, mode="all", k=1
        )

    session = CompareSession(
        tuple(decoder.sequence(i) for i in range(2)),
        store,
        settings,
        backend.render([Message("user", PROMPT)]),
        new_run,
        model_name="smollm2",
        final_judges=(OneAtATime(RSMatch()),),
    )
    app = CompareApp(session)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: app.run_ids and not app.run_open, timeout=240)
        await pilot.pause(0.2)
        turns = dict(zip((column.mode for column in app.plan), app.turns))
        assert turns[Mode.DEFAULT].finished.trace.injected == ()
        [span] = turns[GUARDED].finished.trace.injected
        assert span.kind == "inject" and span.text == REMINDER and span.trigger is not None
        assert highlighted(turns[GUARDED]) == [REMINDER]
    [saved] = rows(store.path, "SELECT injected FROM samples WHERE mode = 'guarded'")
    assert '"trigger"' in saved["injected"]
