"""Parity with the official implementation on every golden case (float32, CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

CASE_IMAGES = {
    "A_seg_rej": "image0",
    "B_single_seg": "image1",
    "C_nonsquare_seg": "image2_nonsquare",
    "D_single_rej": "image1",
}
MASK_ATOL = 1e-4
FEATURE_ATOL = 1e-4
LOGIT_ATOL = 5e-4
PROBE_STRIDE_VIT = 257  # manifest: cases.*.probe_stats["vit.last_hidden_state"].stride


def load_case(golden_dir, case: str):
    case_dir = golden_dir / "cases" / case
    pixel_values = torch.from_numpy(np.load(golden_dir / "inputs" / f"{CASE_IMAGES[case]}_pixel_values.npy"))
    input_ids = torch.from_numpy(np.load(case_dir / "input_ids.npy"))
    return case_dir, pixel_values, input_ids


def golden_decisions(golden_dir, case_dir, input_ids: torch.Tensor) -> list[str]:
    ids = json_tokens(golden_dir)
    output_ids = np.load(case_dir / "output_ids.npy")[0]
    slots = np.nonzero((input_ids[0].numpy() == ids["seg"]) | (input_ids[0].numpy() == ids["rej"]))[0]
    return ["REJ" if output_ids[p] == ids["rej"] else "SEG" for p in slots]


def json_tokens(golden_dir) -> dict[str, int]:
    import json

    return json.loads((golden_dir / "manifest.json").read_text())["run_meta"]["token_ids"]


@pytest.fixture(scope="module", params=sorted(CASE_IMAGES))
def case_run(request, golden_dir, golden_model):
    case_dir, pixel_values, input_ids = load_case(golden_dir, request.param)
    return case_dir, input_ids, golden_model.forward_ids(pixel_values, input_ids)


def test_masks_match_official(case_run):
    case_dir, _, out = case_run
    expected = np.load(case_dir / "pred_masks.npy")
    assert len(out.mask_probs) == 1
    assert out.mask_probs[0].shape == expected.shape
    np.testing.assert_allclose(out.mask_probs[0].numpy(), expected, atol=MASK_ATOL, rtol=0)


def test_mask_logits_match_official(case_run):
    case_dir, _, out = case_run
    path = case_dir / "pred_logits.npy"
    if not path.exists():  # the [REJ]-only case has no mask and no logits file
        assert out.mask_logits[0].shape[0] == 0
        return
    np.testing.assert_allclose(out.mask_logits[0].numpy(), np.load(path), atol=LOGIT_ATOL, rtol=0)


def test_decisions_match_official(case_run, golden_dir):
    case_dir, input_ids, out = case_run
    assert out.decisions[0] == golden_decisions(golden_dir, case_dir, input_ids)
    np.testing.assert_allclose(
        out.decision_logits[0].numpy(), np.load(case_dir / "llm_logits_at_decisions.npy"), atol=LOGIT_ATOL, rtol=0
    )


@pytest.mark.parametrize(
    "attribute, golden_file",
    [
        ("image_embeds", "vit_embeds_mlp1_out.npy"),
        ("llm_hidden_states", "llm_last_hidden_state.npy"),
        ("image_states", "llm_img_hidden_used.npy"),
        ("seg_states", "seg_hidden_used.npy"),
    ],
)
def test_intermediates_match_official(case_run, golden_dir, attribute: str, golden_file: str):
    case_dir, input_ids, out = case_run
    value = getattr(out, attribute)
    value = value[0] if isinstance(value, list) else value
    expected = np.load(case_dir / golden_file)
    if attribute == "llm_hidden_states":
        # Computed up to the last [SEG]/[REJ] slot only: nothing reads the states from there on.
        ids = json_tokens(golden_dir)
        slots = np.nonzero((input_ids[0].numpy() == ids["seg"]) | (input_ids[0].numpy() == ids["rej"]))[0]
        assert value.shape[1] == slots[-1] < expected.shape[1]
        expected = expected[:, : value.shape[1]]
    value = value.reshape(expected.shape) if attribute == "image_states" else value
    np.testing.assert_allclose(value.numpy(), expected, atol=FEATURE_ATOL, rtol=0)


def test_vit_features_match_official(case_run):
    """Full ViT feature where the golden set stores it, else its strided probe of the last hidden state."""
    case_dir, _, out = case_run
    full = case_dir / "vit_feature.npy"
    if full.exists():
        np.testing.assert_allclose(out.vit_features.numpy(), np.load(full), atol=FEATURE_ATOL, rtol=0)
        return
    probe = load_file(str(case_dir / "probes.safetensors"))["vit.last_hidden_state"].numpy()
    width = out.vit_features.shape[-1]
    flat_index = np.arange(probe.size) * PROBE_STRIDE_VIT  # probes are flat[::stride] of [1, 1 + N, C]
    patch = flat_index >= width  # drop the class-token row, which the model does not return
    ours = out.vit_features.reshape(-1).numpy()[flat_index[patch] - width]
    np.testing.assert_allclose(ours, probe[patch], atol=FEATURE_ATOL, rtol=0)


def test_batch_of_two_prompts_equals_single_runs(golden_dir, golden_model):
    """Two golden cases of the same length run as one batch give the per-case results."""
    runs = [load_case(golden_dir, case) for case in ("A_seg_rej", "C_nonsquare_seg")]
    pixel_values = torch.cat([r[1] for r in runs])
    width = max(r[2].shape[1] for r in runs)
    pad = json_tokens(golden_dir)["pad"]
    input_ids = torch.full((2, width), pad, dtype=torch.long)
    attention_mask = torch.zeros(2, width, dtype=torch.bool)
    for row, (_, _, ids) in enumerate(runs):
        input_ids[row, : ids.shape[1]] = ids[0]
        attention_mask[row, : ids.shape[1]] = True
    batched = golden_model.forward_ids(pixel_values, input_ids, attention_mask)
    for row, (case_dir, _, ids) in enumerate(runs):
        np.testing.assert_allclose(batched.mask_probs[row].numpy(), np.load(case_dir / "pred_masks.npy"), atol=MASK_ATOL, rtol=0)
        assert batched.decisions[row] == golden_decisions(golden_dir, case_dir, ids)
