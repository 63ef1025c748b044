"""LoRA merging at load time (model/conversion.py): W = W_base + scaling * B @ A under the plain key, the peft
wrapper and base_layer names gone, the base's dtype kept; a checkpoint without adapters is left alone; broken ones
are refused with the modules named. (InternLM2 -> Llama: test/model/test_internlm2.py.)"""
from __future__ import annotations

import pytest
import torch

from mllmseg_ros.model.conversion import merge_lora
from mllmseg_ros.model.errors import CheckpointError


def adapter(rank: int = 2, rows: int = 4, columns: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, columns, generator=generator), torch.randn(rank, columns, generator=generator),
            torch.randn(rows, rank, generator=generator))


def test_a_peft_checkpoint_is_merged_under_the_plain_keys():
    base, a, b = adapter()
    wrapped = "base_model.model.language_model.layers.0.q_proj"
    state = {f"{wrapped}.base_layer.weight": base.to(torch.bfloat16), f"{wrapped}.lora_A.default.weight": a,
             f"{wrapped}.lora_B.default.weight": b, "base_model.model.mlp1.0.weight": torch.ones(2)}
    merged = merge_lora(state, scaling=2.0)
    assert set(merged) == {"language_model.layers.0.q_proj.weight", "mlp1.0.weight"}
    weight = merged["language_model.layers.0.q_proj.weight"]
    assert weight.dtype == torch.bfloat16  # the base's dtype
    torch.testing.assert_close(weight, (base.to(torch.bfloat16).float() + 2.0 * b @ a).to(torch.bfloat16))


def test_adapters_beside_plain_weights_are_merged_too():
    """No base_layer keys (the base saved under its own name): the lora_A keys alone say there is something to merge."""
    base, a, b = adapter(seed=1)
    merged = merge_lora({"m.q.weight": base, "m.q.lora_A.default.weight": a, "m.q.lora_B.default.weight": b}, 0.5)
    assert set(merged) == {"m.q.weight"}
    torch.testing.assert_close(merged["m.q.weight"], base + 0.5 * b @ a)


def test_base_layer_names_alone_are_unwrapped():
    weight = torch.ones(2, 2)
    assert merge_lora({"m.q.base_layer.weight": weight, "m.k.weight": weight}, 2.0) == {"m.q.weight": weight,
                                                                                      "m.k.weight": weight}


def test_a_checkpoint_without_adapters_is_returned_as_it_is():
    state = {"language_model.layers.0.q_proj.weight": torch.ones(2), "mlp1.0.bias": torch.zeros(2)}
    assert merge_lora(state, 2.0) is state


def test_unpaired_adapters_are_refused_with_the_first_five_named():
    state = {"m.q.base_layer.weight": torch.ones(4, 3)}
    for index in range(6):
        state[f"m.p{index}.lora_A.default.weight"] = torch.ones(2, 3)
    with pytest.raises(CheckpointError) as raised:
        merge_lora(state, 2.0)
    assert str(raised.value) == ("LoRA checkpoint has unpaired lora_A/lora_B for "
                                 "['m.p0', 'm.p1', 'm.p2', 'm.p3', 'm.p4']")


def test_an_adapter_without_its_base_weight_is_refused():
    _, a, b = adapter()
    with pytest.raises(CheckpointError) as raised:
        merge_lora({"m.q.lora_A.default.weight": a, "m.q.lora_B.default.weight": b, "m.k.base_layer.weight": a}, 2.0)
    assert str(raised.value) == "LoRA adapter m.q has no base_layer weight"
