"""The [SEG]/[REJ] answer slots and their decision have one home (SpecialTokens.is_answer_slot, MLLMSegModel.decide),
used by the official-path forward_ids and the engine's cached path alike."""
from __future__ import annotations

import torch

from tiny_models import TOKENS, pixel_values, prompt_ids, random_model


def test_answer_slots_are_the_seg_and_rej_positions():
    model = random_model()
    ids = prompt_ids(n_seg=2, n_rej=1)[0]
    slots = model.config.tokens.is_answer_slot(ids).nonzero(as_tuple=True)[0].tolist()
    assert [int(ids[p]) for p in slots] == [TOKENS["[SEG]"]] * 2 + [TOKENS["[REJ]"]]


def test_decide_is_what_forward_ids_answers():
    model = random_model(seed=3)
    ids = prompt_ids(n_seg=2, n_rej=1, seed=1)
    out = model.forward_ids(pixel_values(), ids)
    slots = model.config.tokens.is_answer_slot(ids[0]).nonzero(as_tuple=True)[0]
    logits, rejected = model.decide(out.llm_hidden_states[0, slots - 1])
    torch.testing.assert_close(logits, out.decision_logits[0])
    assert ["REJ" if r else "SEG" for r in rejected.tolist()] == out.decisions[0]
    assert rejected.tolist() == (logits.argmax(-1) == TOKENS["[REJ]"]).tolist()
