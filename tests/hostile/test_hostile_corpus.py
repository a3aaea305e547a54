"""Every case of the hostile corpus (>= 400 inputs over every input type and every class of
issue 11) ends the way it must: no traceback, no hang, no meaningless completion, and every
rejection in lines that name the file and the field."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.hostile.corpus import build_corpus
from tests.hostile.runner import run_corpus, table


@pytest.mark.slow
def test_the_hostile_corpus_is_handled_cleanly():
    cases = build_corpus()
    assert len(cases) >= 400
    assert {c.klass.split()[0] for c in cases} >= {"1", "2", "3", "4", "5", "6", "8", "9"}
    outcomes = run_corpus(cases)
    bad = [o for o in outcomes if o.verdict != "clean"]
    print(table(outcomes))
    assert not bad, "\n".join(
        f"[{o.verdict}] {o.case.case_id} exit {o.code}: {o.stderr[-300:]}" for o in bad[:10]
    )
    assert Counter(o.verdict for o in outcomes) == {"clean": len(cases)}
