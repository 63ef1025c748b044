"""The LLM's state for the text every prompt opens with, computed once and reused.

Each MLLMSeg prompt starts with the same text: the system turn, the user's role tag and ``<img>``, about 20 tokens
before the first image token. With causal attention their keys, values and hidden states depend on nothing that comes
later, so a pass over them gives the same numbers on every call. ``TextPrefixCache`` keeps them (batch 1) and seeds a
fresh ``DynamicCache`` with them, so the LLM runs from the first image token on.

An entry is valid for its token ids and for the LLM weights it was computed with: a fingerprint of every parameter's
and buffer's storage and in-place version counter (bumped by optimiser steps and ``load_state_dict``) plus the backbone
module's identity (replaced by quantization, ``torch.compile`` and PEFT) is compared on each use.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache

from .language import LanguageModel


@dataclass
class _Entry:
    token_ids: tuple[int, ...]
    weights: tuple
    keys_values: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: 1 x kv_heads x P x head_dim each
    hidden: torch.Tensor  # 1 x P x H, last hidden states of the prefix


def storage_fingerprint(modules: tuple[nn.Module, ...], versions: bool = False) -> tuple:
    """Address and dtype (and, with ``versions``, the in-place version counter) of every parameter and buffer of
    ``modules``: changes when a weight moves to other storage (``.to()``, quantization, PEFT) or, with ``versions``,
    is changed in place (optimiser steps, ``load_state_dict``)."""
    return tuple((t.data_ptr(), t.dtype, _version(t) if versions else None)
                 for module in modules for t in (*module.parameters(), *module.buffers()))


def weights_fingerprint(language_model: LanguageModel) -> tuple:
    """Changes whenever the LLM's weights may have changed (see the module docstring)."""
    return (id(language_model.model), storage_fingerprint((language_model,), versions=True))


def _version(tensor: torch.Tensor) -> int | None:
    try:
        return tensor._version
    except RuntimeError:  # weights created under torch.inference_mode() have no version counter
        return None


class TextPrefixCache:
    """One entry: a model answers prompts of one template, so its opening text does not change."""

    def __init__(self) -> None:
        self._entry: _Entry | None = None
        self.misses = 0  # passes run to fill the entry (the tests read it)

    def seed(
        self, language_model: LanguageModel, prefix_ids: torch.Tensor, prefix_embeds: torch.Tensor, batch: int
    ) -> tuple[DynamicCache, torch.Tensor]:
        """A new ``DynamicCache`` holding the prefix for ``batch`` rows, and the prefix's hidden states 1 x P x H.

        prefix_ids: P token ids (the same in every row); prefix_embeds: 1 x P x H, their input embeddings.
        """
        entry = self._lookup(language_model, prefix_ids, prefix_embeds)
        cache = language_model.new_cache()
        for layer, (keys, values) in enumerate(entry.keys_values):
            # update() copies into the cache (torch.cat), so later updates never touch the stored tensors.
            cache.update(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1), layer)
        return cache, entry.hidden

    def _lookup(self, language_model: LanguageModel, prefix_ids: torch.Tensor, prefix_embeds: torch.Tensor) -> _Entry:
        token_ids = tuple(prefix_ids.tolist())
        weights = weights_fingerprint(language_model)
        entry = self._entry
        if entry is not None and entry.token_ids == token_ids and entry.weights == weights:
            return entry
        self.misses += 1
        cache = language_model.new_cache()
        hidden = language_model(prefix_embeds, cache=cache)
        keys_values = [(layer.keys, layer.values) for layer in cache.layers]
        self._entry = _Entry(token_ids, weights, keys_values, hidden)
        return self._entry
