"""The work ``forward_ids`` leaves out (tokens after the last slot, the prompt's opening text on repeat calls) must not
change any result, and the reused opening must follow the weights and the ids it was computed for."""
from __future__ import annotations

import torch

from tiny_models import IMAGE_SIZE, NUM_IMAGE_TOKENS, TOKENS, random_model

OPENING = [5, 6, 7, 8, TOKENS["<img>"]]  # "system turn" and <img>, before the first image token


def prompt(opening: list[int] = OPENING, tail: list[int] | None = None) -> torch.Tensor:
    ids = opening + [TOKENS["<IMG_CONTEXT>"]] * NUM_IMAGE_TOKENS + [TOKENS["</img>"], 10, 11, 12]
    ids += [20, 21, TOKENS["[SEG]"], 22, TOKENS["[REJ]"], 23, TOKENS["[SEG]"]]
    return torch.tensor([ids + (tail if tail is not None else [13, TOKENS["<|im_end|>"]])])


def pixels() -> torch.Tensor:
    return torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(3))


def reference(model, pixel_values, input_ids):
    """The same model with the opening recomputed on every call."""
    model.reuse_text_prefix = False
    try:
        return model.forward_ids(pixel_values, input_ids)
    finally:
        model.reuse_text_prefix = True


def assert_same(a, b, atol: float = 1e-5) -> None:
    assert a.decisions == b.decisions
    for x, y in zip(a.mask_logits, b.mask_logits):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)
    for x, y in zip(a.decision_logits, b.decision_logits):
        torch.testing.assert_close(x, y, atol=atol, rtol=0)
    torch.testing.assert_close(a.llm_hidden_states, b.llm_hidden_states, atol=atol, rtol=0)


def test_opening_is_computed_once_and_gives_the_same_results():
    model = random_model()
    model.reuse_text_prefix = True
    pixel_values, input_ids = pixels(), prompt()
    first = model.forward_ids(pixel_values, input_ids)
    second = model.forward_ids(pixel_values, input_ids)
    assert model.text_prefix.misses == 1
    assert_same(first, reference(model, pixel_values, input_ids))
    assert_same(second, first, atol=0)


def test_positions_after_the_last_slot_are_not_run_and_do_not_matter():
    model = random_model()
    pixel_values = pixels()
    short = model.forward_ids(pixel_values, prompt(tail=[]))
    long = model.forward_ids(pixel_values, prompt(tail=[13, 14, 15, TOKENS["<|im_end|>"]]))
    last_slot = prompt().shape[1] - 3
    assert short.llm_hidden_states.shape[1] == long.llm_hidden_states.shape[1] == last_slot
    assert_same(short, long, atol=0)
    assert long.mask_logits[0].shape[0] == 2 and len(long.decisions[0]) == 3  # two [SEG] masks, three slots


def test_a_weight_change_in_place_invalidates_the_opening():
    model = random_model()
    model.reuse_text_prefix = True
    pixel_values, input_ids = pixels(), prompt()
    before = model.forward_ids(pixel_values, input_ids)
    with torch.no_grad():
        model.language_model.model.layers[0].mlp.up_proj.weight.mul_(1.5)  # as an optimiser step would
    after = model.forward_ids(pixel_values, input_ids)
    assert model.text_prefix.misses == 2
    assert not torch.allclose(before.llm_hidden_states, after.llm_hidden_states)
    assert_same(after, reference(model, pixel_values, input_ids))


def test_another_opening_is_computed_for_its_own_ids():
    model = random_model()
    model.reuse_text_prefix = True
    pixel_values = pixels()
    model.forward_ids(pixel_values, prompt())
    other = prompt(opening=[9, 6, 7, 8, TOKENS["<img>"]])
    out = model.forward_ids(pixel_values, other)
    assert model.text_prefix.misses == 2
    assert_same(out, reference(model, pixel_values, other))


def test_batch_rows_share_the_reused_opening():
    model = random_model()
    model.reuse_text_prefix = True
    pixel_values = torch.cat([pixels(), pixels().flip(-1)])
    input_ids = torch.cat([prompt(), prompt()])
    batched = model.forward_ids(pixel_values, input_ids)
    for row in range(2):
        single = reference(model, pixel_values[row : row + 1], input_ids[row : row + 1])
        assert batched.decisions[row] == single.decisions[0]
        torch.testing.assert_close(batched.mask_logits[row], single.mask_logits[0], atol=1e-5, rtol=0)


def test_training_mode_never_reuses_the_opening():
    model = random_model()
    model.reuse_text_prefix = True
    model.train()
    model.forward_ids(pixels(), prompt())
    assert model.text_prefix.misses == 0
