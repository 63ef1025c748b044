"""The LLM: a transformers decoder (Qwen2, Qwen3, or Llama for converted InternLM2 weights) plus an output head.

The head is a plain ``nn.Linear`` outside the transformers model so that the vocabulary projection runs only at the
few positions where a [SEG]/[REJ] decision is read, never over the whole sequence (the official code projects every
position: ~150k x 300 on the 1B model).
"""
from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import DynamicCache, LlamaModel, PretrainedConfig, Qwen2Model, Qwen3Model

BACKBONES = {"qwen2": Qwen2Model, "qwen3": Qwen3Model, "internlm2": LlamaModel}


class LanguageModel(nn.Module):
    """Keys ``model.*`` and ``lm_head.weight`` match the official Qwen2/Qwen3 layout (InternLM2 is converted to it)."""

    def __init__(self, family: str, config: PretrainedConfig) -> None:
        super().__init__()
        self.config = config
        self.model = BACKBONES[family](config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # transformers 5 renamed the backbone's ``past_key_values`` argument to ``cache``; accept either.
        backbone_params = inspect.signature(BACKBONES[family].forward).parameters
        self._cache_argument = "cache" if "cache" in backbone_params else "past_key_values"

    def new_cache(self) -> DynamicCache:
        return DynamicCache(config=self.config)

    @staticmethod
    def crop_cache(cache: DynamicCache, length: int) -> None:
        """Keep the first ``length`` positions of ``cache`` (a no-op when it holds no more)."""
        added = cache.get_seq_length() - length
        if added > 0:
            cache.crop(-added)  # a negative crop removes that many tokens in every transformers version we support

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.model.embed_tokens

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: DynamicCache | None = None,
    ) -> torch.Tensor:
        """inputs_embeds B x T x H -> last hidden states B x T x H (after the final norm).

        With ``cache`` (holding P earlier tokens) the T tokens continue it, at positions P.. unless ``position_ids``
        says otherwise, and their keys and values are appended to it."""
        out = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=cache is not None,
            **{self._cache_argument: cache},
        )
        return out.last_hidden_state
