"""The LLM: a transformers decoder (Qwen2, or Llama for converted InternLM2 weights) plus a separate output head.

The head is a plain ``nn.Linear`` outside the transformers model so that the vocabulary projection runs only at the
few positions where a [SEG]/[REJ] decision is read, never over the whole sequence (the official code projects every
position: ~150k x 300 on the 1B model).
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaModel, PretrainedConfig, Qwen2Model

BACKBONES = {"qwen2": Qwen2Model, "internlm2": LlamaModel}


class LanguageModel(nn.Module):
    """Keys ``model.*`` and ``lm_head.weight`` match the official Qwen2 layout (InternLM2 is converted to it)."""

    def __init__(self, family: str, config: PretrainedConfig) -> None:
        super().__init__()
        self.config = config
        self.model = BACKBONES[family](config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.model.embed_tokens

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """inputs_embeds B x T x H -> last hidden states B x T x H (after the final norm)."""
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state
