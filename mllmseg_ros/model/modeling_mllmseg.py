"""MLLMSeg: InternViT + pixel shuffle + projector + LLM + light-weight mask decoder, in one teacher-forced pass.

``forward_ids`` takes the full prompt ids, answer included (``...:[SEG]...``), exactly as the official evaluation
does; no text is generated. Two details the released weights were trained with are kept on purpose:

* off-by-one: for every position p of interest the hidden state at p-1 is used, both for the [SEG] query (the token
  before [SEG]) and for the image (the ``<img>`` token plus the first n-1 ``<IMG_CONTEXT>`` tokens);
* the [SEG]/[REJ] decision at an answer slot p is argmax(logits[p-1]) == [REJ] id. It does not change which masks are
  made: one mask per [SEG] in the input ids.

Work the official pass does and this one leaves out, with the same results: the vocabulary head everywhere but at the
decision positions, the LLM over the tokens from the last [SEG]/[REJ] on (nothing reads their states), and, on the CPU,
the LLM over the prompt's opening text, which is the same on every call (``prefix_cache.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import DynamicCache

from .configuration import MLLMSegConfig
from .cuda_graphs import GraphedDecoder, GraphedImageFeatures, GraphedPromptPass, capture_failed
from .language import LanguageModel
from .mask_decoder import ImageContext, MaskDecoder
from .prefix_cache import TextPrefixCache
from .vision import InternVisionModel, build_projector, pixel_shuffle


@dataclass
class MLLMSegOutput:
    """Results of ``forward_ids`` for a batch of B prompts (lists have one entry per batch item)."""

    mask_logits: list[torch.Tensor]  # n_seg x S x S float32, pre-sigmoid, one map per [SEG] in the input ids
    mask_probs: list[torch.Tensor]  # n_seg x S x S float32, sigmoid(mask_logits)
    decisions: list[list[str]]  # "SEG"/"REJ" per [SEG]/[REJ] slot of the input ids, in order
    decision_logits: list[torch.Tensor]  # n_slots x V float32, LLM logits at p-1 of each slot
    vit_features: torch.Tensor  # B x N x Cv, ViT patch features (class token dropped)
    image_embeds: torch.Tensor  # B x n_img x H, projector output placed at the <IMG_CONTEXT> positions
    llm_hidden_states: torch.Tensor  # B x L x H, LLM last hidden states (after the final norm) of the first L positions,
    # L = the position of the last [SEG]/[REJ] slot (later positions are not computed)
    seg_states: list[torch.Tensor] = field(default_factory=list)  # n_seg x H, hidden states used as queries
    image_states: torch.Tensor | None = None  # B x n_img x H, hidden states used as the LLM image features


class MLLMSegModel(nn.Module):
    def __init__(self, config: MLLMSegConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_model = InternVisionModel(config.vision, config.select_layer)
        self.mlp1 = build_projector(config)
        self.language_model = LanguageModel(config.llm_family, config.llm)
        self.res_decoder = MaskDecoder(config)
        # Reuse the LLM state of the prompt's opening text across calls (prefix_cache.py). None: on the CPU only. On a
        # GPU a small LLM's pass costs its kernel launches more than its arithmetic, so leaving 20 tokens out of 300
        # saves little there, while seeding the cache adds two copies per layer.
        self.reuse_text_prefix: bool | None = None
        self.text_prefix = TextPrefixCache()
        # Replay the ViT's, the LLM's and the decoder's inference passes as CUDA graphs (cuda_graphs.py). None: on CUDA
        # devices, under torch.inference_mode(); a failed capture turns that stage's graphs off with a warning.
        self.use_cuda_graphs: bool | None = None
        self._image_graphs: GraphedImageFeatures | None = None
        self._prompt_graphs: GraphedPromptPass | None = None
        self._decoder_graphs: GraphedDecoder | None = None
        self._failed_graphs: set[str] = set()  # stages whose capture failed: they run eagerly from then on
        self.eval()  # inference by default (the decoder has dropout and BatchNorm); training calls .train()

    # --- loading ------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        allow_pickle: bool = False,
    ) -> "MLLMSegModel":
        """Load a checkpoint folder in the official layout (see ``loading.py``). Never runs code from the folder."""
        from .loading import load_pretrained

        return load_pretrained(cls, path, dtype=dtype, device=device, allow_pickle=allow_pickle)

    @property
    def dtype(self) -> torch.dtype:
        return self.mlp1[1].weight.dtype

    @property
    def device(self) -> torch.device:
        return self.mlp1[1].weight.device

    # --- CUDA graphs ----------------------------------------------------------------------------------------------
    def cuda_graphs_active(self, stage: str | None = None) -> bool:
        """Whether the next inference pass (of ``stage``: "vit", "prompt", "continuation", "decoder") replays CUDA
        graphs."""
        return (self.use_cuda_graphs is not False and stage not in self._failed_graphs and self.device.type == "cuda"
                and not self.training and torch.is_inference_mode_enabled())

    @property
    def cuda_graph_captures(self) -> int:
        """Graphs captured so far (ViT, LLM and decoder together)."""
        graphs = (self._image_graphs, self._prompt_graphs, self._decoder_graphs)
        return sum(g.captures for g in graphs if g is not None)

    def _graphs_failed(self, stage: str, error: Exception) -> None:
        capture_failed(stage, error)
        self._failed_graphs.add(stage)

    def _prompt_pass_graphs(self) -> GraphedPromptPass:
        if self._prompt_graphs is None:
            self._prompt_graphs = GraphedPromptPass(self.language_model)
        return self._prompt_graphs

    # --- stages -------------------------------------------------------------------------------------------------
    def extract_image_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values B x 3 x S x S -> (ViT features B x N x Cv, image embeddings for the LLM B x n_img x H)."""
        pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
        if self.cuda_graphs_active("vit"):
            if self._image_graphs is None:
                self._image_graphs = GraphedImageFeatures((self.vision_model, self.mlp1), self._image_features)
            try:
                return self._image_graphs(pixel_values)
            except RuntimeError as error:
                self._graphs_failed("vit", error)
        return self._image_features(pixel_values)

    def _image_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vit_features = self.vision_model(pixel_values)
        batch, tokens, width = vit_features.shape
        side = int(tokens**0.5)
        grid = vit_features.reshape(batch, side, side, width)  # B x g x g x Cv
        shuffled = pixel_shuffle(grid, self.config.downsample_ratio, self.config.ps_version)
        image_embeds = self.mlp1(shuffled.reshape(batch, -1, shuffled.shape[-1]))  # B x n_img x H
        return vit_features, image_embeds

    def embed_inputs(self, input_ids: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the <IMG_CONTEXT> rows replaced by the image embeddings: B x T x H."""
        embeds = self.language_model.embed_tokens(input_ids)
        is_image = input_ids == self.config.tokens.img_context
        counts = is_image.sum(dim=1)
        expected = image_embeds.shape[1]
        if bool((counts != expected).any()):
            raise ValueError(
                f"each prompt must hold {expected} <IMG_CONTEXT> tokens (one per image token); got {counts.tolist()}"
            )
        if bool(is_image[:, 0].any()):
            raise ValueError("an <IMG_CONTEXT> token at position 0 has no preceding token for the decoder to read")
        embeds[is_image] = image_embeds.reshape(-1, image_embeds.shape[-1]).to(embeds.dtype)
        return embeds

    def run_language_model(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states B x T x H. ``attention_mask``: B x T padding mask (positions follow it)."""
        position_ids = None
        if attention_mask is not None:
            if bool(attention_mask.all()):
                attention_mask = None  # lets SDPA take its causal fast path
            else:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return self.language_model(inputs_embeds, attention_mask=attention_mask, position_ids=position_ids)

    def run_prompt(
        self,
        input_ids: torch.Tensor,
        image_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        keep_cache: bool = False,
    ) -> tuple[torch.Tensor, DynamicCache | None]:
        """The LLM over prompts for inference: (hidden states B x L x H of the first L positions, the KV cache of those
        L positions if ``keep_cache``).

        L is the position of the last [SEG]/[REJ] slot (the whole prompt for rows without one): the decision and the
        query of slot p read position p-1, and nothing reads later ones. The opening text comes from
        ``self.text_prefix`` when ``reuse_text_prefix`` allows and every row starts with the same ids.
        """
        embeds = self.embed_inputs(input_ids, image_embeds)  # B x T x H; checks the image tokens
        length = self.positions_read(input_ids)
        embeds, input_ids = embeds[:, :length], input_ids[:, :length]
        if attention_mask is not None and not bool(attention_mask[:, :length].all()):
            if keep_cache:
                raise ValueError("keep_cache needs unpadded prompts (no attention mask)")
            return self.run_language_model(embeds, attention_mask[:, :length]), None
        start = self.reusable_opening_length(input_ids)
        if start == 0 and self.cuda_graphs_active("prompt") and self._prompt_pass_graphs().supports(length):
            try:
                return self._prompt_graphs(embeds, keep_cache)
            except RuntimeError as error:
                self._graphs_failed("prompt", error)
        if start == 0:
            cache = self.language_model.new_cache() if keep_cache else None
            return self.language_model(embeds, cache=cache), cache
        batch = input_ids.shape[0]
        cache, opening_hidden = self.text_prefix.seed(self.language_model, input_ids[0, :start], embeds[:1, :start], batch)
        hidden = self.language_model(embeds[:, start:], cache=cache)  # positions start.. follow from the cache
        return torch.cat([opening_hidden.expand(batch, -1, -1), hidden], dim=1), (cache if keep_cache else None)

    def continue_prompt(self, embeds: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        """The LLM over B x S embeddings that continue the P positions in ``cache``: hidden states B x S x H. The cache
        is left holding its P positions, ready for the next continuation."""
        prefix_length = cache.get_seq_length()
        if self.cuda_graphs_active("continuation") and self._prompt_pass_graphs().supports(prefix_length + embeds.shape[1]):
            try:
                return self._prompt_graphs(embeds, keep_cache=False, prefix=cache)[0]
            except RuntimeError as error:
                self._graphs_failed("continuation", error)
        try:
            return self.language_model(embeds, cache=cache)
        finally:
            self.language_model.crop_cache(cache, prefix_length)

    def positions_read(self, input_ids: torch.Tensor) -> int:
        """Number of leading positions whose hidden states are read: those before the last slot or image token (whose
        p-1 is read); all positions of a row without a slot."""
        tokens = self.config.tokens
        total = input_ids.shape[1]
        is_slot = tokens.is_answer_slot(input_ids)
        is_read = is_slot | (input_ids == tokens.img_context)
        last_read = total - 1 - is_read.flip(1).int().argmax(dim=1)  # B
        return int(torch.where(is_slot.any(dim=1), last_read, total).max())

    def reusable_opening_length(self, input_ids: torch.Tensor) -> int:
        """Length of the text before the first image token if it may come from ``text_prefix``, else 0."""
        reuse = self.reuse_text_prefix
        if reuse is None:
            reuse = self.device.type == "cpu"
        if not reuse or self.training:
            return 0
        start = int((input_ids == self.config.tokens.img_context).int().argmax(dim=1).min())
        if start == 0 or not bool((input_ids[:, :start] == input_ids[:1, :start]).all()):
            return 0
        return start

    def decision_logits_at(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for a few hidden states only: n x H -> n x V (float32)."""
        return self.language_model.lm_head(hidden).float()

    def decide(self, states_before_slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The [SEG]/[REJ] decision at n answer slots from the hidden states at their p-1 (n x H): the vocabulary
        logits (n x V, float32) and a bool n-vector, True where the slot answers [REJ]. The answer is the logits'
        argmax; any token other than [REJ] counts as [SEG], as in the official code."""
        logits = self.decision_logits_at(states_before_slots)
        return logits, logits.argmax(-1) == self.config.tokens.rej

    def image_states_from_hidden(self, input_ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states at p-1 of every <IMG_CONTEXT> position p: B x n_img x H."""
        batch = input_ids.shape[0]
        rows, cols = (input_ids == self.config.tokens.img_context).nonzero(as_tuple=True)
        return hidden[rows, cols - 1].reshape(batch, -1, hidden.shape[-1])

    def _graphed_decoder(self) -> GraphedDecoder | None:
        """The decoder's stages as graphs, where graphs are active (None: run them eagerly)."""
        if not self.cuda_graphs_active("decoder"):
            return None
        if self._decoder_graphs is None:
            self._decoder_graphs = GraphedDecoder(self.res_decoder)
        return self._decoder_graphs

    def encode_decoder_image(self, vit_features: torch.Tensor, image_states: torch.Tensor) -> ImageContext:
        """The decoder's query-independent stages (``MaskDecoder.encode_image``) for B images."""
        graphs = self._graphed_decoder()
        if graphs is not None:
            try:
                return graphs.encode_image(vit_features, image_states)
            except RuntimeError as error:
                self._graphs_failed("decoder", error)
        return self.res_decoder.encode_image(vit_features, image_states)

    def decode_masks(self, context: ImageContext, seg_states: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        """Mask logits n x S x S (float32) for [SEG] states of images in ``context``."""
        seg_states = seg_states.to(self.dtype)
        graphs = self._graphed_decoder()
        if graphs is not None:
            try:
                return graphs.decode_queries(context, image_index, seg_states).float()
            except RuntimeError as error:
                self._graphs_failed("decoder", error)
        return self.res_decoder.decode_queries(context, image_index, seg_states).float()

    # --- the whole pass -----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def forward_ids(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> MLLMSegOutput:
        """pixel_values B x 3 x S x S float, input_ids B x T int (the official prompt, answer included)."""
        if pixel_values.dim() != 4 or input_ids.dim() != 2 or pixel_values.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"expected pixel_values [B,3,H,W] and input_ids [B,T] with the same B; "
                f"got {tuple(pixel_values.shape)} and {tuple(input_ids.shape)}"
            )
        input_ids = input_ids.to(device=self.device, dtype=torch.long)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        vit_features, image_embeds = self.extract_image_features(pixel_values)
        hidden, _ = self.run_prompt(input_ids, image_embeds, attention_mask)
        image_states = self.image_states_from_hidden(input_ids, hidden)
        context = self.encode_decoder_image(vit_features, image_states)

        tokens = self.config.tokens
        decisions, decision_logits, seg_states, image_index = [], [], [], []
        for b in range(input_ids.shape[0]):
            ids = input_ids[b]
            slots = tokens.is_answer_slot(ids).nonzero(as_tuple=True)[0]
            slots = slots[slots > 0]
            logits, rejected = self.decide(hidden[b, slots - 1])  # n_slots x V, n_slots
            decision_logits.append(logits)
            decisions.append(["REJ" if r else "SEG" for r in rejected.tolist()])
            seg_positions = slots[ids[slots] == tokens.seg]
            seg_states.append(hidden[b, seg_positions - 1])
            image_index.append(torch.full((len(seg_positions),), b, dtype=torch.long, device=self.device))
        all_logits = self.decode_masks(context, torch.cat(seg_states), torch.cat(image_index))
        mask_logits = list(all_logits.split([len(s) for s in seg_states]))
        return MLLMSegOutput(
            mask_logits=mask_logits,
            mask_probs=[m.sigmoid() for m in mask_logits],
            decisions=decisions,
            decision_logits=decision_logits,
            vit_features=vit_features,
            image_embeds=image_embeds,
            llm_hidden_states=hidden,
            seg_states=seg_states,
            image_states=image_states,
        )
