"""The engine: images and referring expressions in, per-target results out. Numpy in, numpy out; no ROS.

Speed comes from the prompt's order: the image tokens come before the question, so everything up to ``</img>`` (the
ViT, the projector, the LLM over the prefix with its KV cache, and the decoder's image-only stages) depends on the
frame only. ``encode`` computes that once per frame; each ``query`` then runs the LLM over the question/answer suffix
and the decoder's per-query stages. The first question on a new frame (``encode_and_query``) runs prefix and suffix in
one LLM pass and keeps the prefix's part of the KV cache: on a GPU, where a pass of a small LLM costs its kernel
launches more than its arithmetic, two passes would cost nearly twice one. The uncached path (``cache=False``) runs the
official full prompt through ``forward_ids`` and keeps no per-frame state; all three give the same results.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from transformers import DynamicCache

from ..model import MLLMSegModel
from ..model.mask_decoder import ImageContext
from .postprocess import mask_geometry, resize_probability
from .preprocess import as_rgb, preprocess, preprocess_batch
from .commands import (
    DEFAULT_COMMAND_PREFIXES,
    DEFAULT_STOP_PHRASES,
    MAX_COMMAND_CHARS,
    ParsedCommand,
    normalize_command,
    parse_command,
)
from .prompt import IMG_END, build_prompt_turns, clean_expression, load_chat_tokenizer


@dataclass
class SegmentationResult:
    """One target of one frame. Pixel coordinates are in the ORIGINAL image (x right, y down)."""

    expression: str  # the referring expression actually sent to the model
    found: bool  # decision [SEG] and a non-empty mask
    decision: str  # "SEG" or "REJ": the LLM's answer at the target's slot
    confidence: float  # P([SEG]) from a softmax over the [SEG] and [REJ] logits at the slot, in [0, 1]
    probability: np.ndarray  # H x W float32 sigmoid map
    mask: np.ndarray  # H x W bool, probability > threshold (all False when not found)
    bbox: tuple[int, int, int, int] | None  # (x, y, w, h) of the mask
    centroid: tuple[float, float] | None  # (x, y) of the mask (or of its largest component, if configured)
    area: int  # pixels in the mask


@dataclass
class EncodedFrames:
    """Query-independent state of B frames (see the module docstring)."""

    image_sizes: list[tuple[int, int]]  # (height, width) of each original frame
    decoder_context: ImageContext
    cache: DynamicCache  # LLM KV cache of the prompt prefix, B rows
    prefix_last_hidden: torch.Tensor  # B x H, hidden state of the prefix's last token
    source: np.ndarray | None = None  # the frame itself (one frame), to recognise it when it comes again
    color: str = "rgb"

    def shows(self, image: np.ndarray, color: str) -> bool:
        # A byte comparison is exact and costs a tenth of hashing the frame (0.4 ms vs 4 ms at 1280 x 720).
        return self.source is not None and color == self.color and np.array_equal(self.source, image)


@dataclass
class SegmenterOptions:
    threshold: float = 0.5
    centroid_of_largest_component: bool = False
    command_prefixes: tuple[str, ...] = DEFAULT_COMMAND_PREFIXES
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES  # commands that end the current target ("stop", "never mind")
    max_command_chars: int = MAX_COMMAND_CHARS  # longer commands are refused before any parsing or tokenising


def compile_stages(model: MLLMSegModel) -> None:
    """Run the ViT, the LLM and the decoder through ``torch.compile`` (in place; the first calls are slow).

    The LLM is compiled with dynamic shapes: its prompt length changes with every command, and a graph per length
    would recompile on each new command. On a GPU, where a small LLM's pass costs its kernel launches, the fused
    kernels are most of the gain."""
    model.vision_model = torch.compile(model.vision_model)
    model.language_model.model = torch.compile(model.language_model.model, dynamic=True)
    model.use_cuda_graphs = False  # compiled stages keep their own launch savings; graphs over them are untested
    decoder = model.res_decoder
    # The engine calls these two methods directly, so compile them rather than the module's forward.
    decoder.encode_image = torch.compile(decoder.encode_image)
    decoder.decode_queries = torch.compile(decoder.decode_queries)


class Segmenter:
    """``Segmenter.from_pretrained(path)``; then ``segment(image, expressions)`` or ``segment_command(image, text)``.

    Not thread-safe: one caller at a time (the ROS node runs inference on one worker thread).
    """

    def __init__(self, model: MLLMSegModel, tokenizer, options: SegmenterOptions | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.options = options or SegmenterOptions()
        self.config = model.config
        self._prefix_ids = self._build_prefix_ids()
        self._cached: EncodedFrames | None = None
        # Milliseconds of the last call: preprocess; vit (with the projector), llm_prefix, decoder_image (together:
        # encode); llm_suffix, decoder_query (together: query); postprocess (resize, threshold, geometry). A new frame's
        # first question (encode_and_query) has "llm" (prefix and suffix in one pass) in place of the two llm_* parts.
        self.last_timings: dict[str, float] = {}
        # On a GPU, kernels run asynchronously: set this to synchronise at every stage boundary for exact stage times.
        self.synchronize_timings = False

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        threads: int | None = None,
        compile: bool = False,
        quantization: str | None = None,
        allow_pickle: bool = False,
        options: SegmenterOptions | None = None,
        cuda_graphs: bool = True,
    ) -> "Segmenter":
        """Load a checkpoint folder. ``compile`` runs the model through ``torch.compile`` (``compile_stages``; slow
        first calls); ``quantization`` ("int8", "bnb-int8", "bnb-nf4", see ``model/quantization.py``) stores the ViT and LLM
        weights in 8 or 4 bits; ``cuda_graphs`` replays the ViT's and LLM's passes as CUDA graphs on a GPU
        (``model/cuda_graphs.py``; each new prompt length bucket is captured once, in well under a second)."""
        if threads:
            torch.set_num_threads(threads)
        model = MLLMSegModel.from_pretrained(path, dtype=dtype, device=device, allow_pickle=allow_pickle)
        model.use_cuda_graphs = None if cuda_graphs else False
        if quantization is not None:
            from ..model.quantization import quantize

            quantize(model, quantization)
        if compile:
            compile_stages(model)
        return cls(model, load_chat_tokenizer(path), options)

    # --- prompt ---------------------------------------------------------------------------------------------------
    @property
    def max_prompt_tokens(self) -> int:
        return int(getattr(self.config.llm, "max_position_embeddings", 32768))

    def _encode_turns(self, expressions: Sequence[str], answers: Sequence[str] | None = None) -> list[int]:
        turns = build_prompt_turns(expressions, self.config.num_image_tokens, answers, bos=self.tokenizer.bos_token,
                                   template=self.config.template)
        return [i for turn in turns.as_list() for i in self.tokenizer.encode(turn)]

    def prompt_ids(self, expressions: Sequence[str]) -> torch.LongTensor:
        """input_ids [1, T] of the official RES prompt for ``expressions`` (one conversation, answers all [SEG])."""
        expressions = self._validate_expressions(expressions)
        ids = self._encode_turns(expressions)
        if len(ids) > self.max_prompt_tokens:
            raise ValueError(
                f"the prompt for these expressions is {len(ids)} tokens, more than the model's context of "
                f"{self.max_prompt_tokens}; use shorter or fewer expressions"
            )
        return torch.tensor([ids], dtype=torch.long)

    def _build_prefix_ids(self) -> list[int]:
        """Ids up to and including ``</img>``: the same for every question (checked on two different prompts)."""
        img_end = self.tokenizer.encode(IMG_END)
        probes = [self._encode_turns(["a"]), self._encode_turns(["the red cup on the left", "b"])]
        end = next(i for i in range(len(probes[0])) if probes[0][i : i + len(img_end)] == img_end) + len(img_end)
        if probes[0][:end] != probes[1][:end]:
            raise RuntimeError("this tokenizer merges the image block with the question; prefix caching is unsafe")
        return probes[0][:end]

    @staticmethod
    def _validate_expressions(expressions: Sequence[str]) -> list[str]:
        if isinstance(expressions, str):
            expressions = [expressions]
        cleaned = []
        for expression in expressions:
            if not isinstance(expression, str):
                raise ValueError(f"expressions must be strings, got {type(expression).__name__}")
            text = clean_expression(expression)
            if not text:
                raise ValueError(f"empty referring expression {expression!r}")
            cleaned.append(text)
        if not cleaned:
            raise ValueError("no referring expression given")
        return cleaned

    def expressions_from_command(self, command: str) -> list[str]:
        """All of ``command`` as expressions, or ValueError (see ``commands.normalize_command``)."""
        options = self.options
        return normalize_command(command, options.command_prefixes, options.stop_phrases, options.max_command_chars)

    def parse_command(self, command: str) -> ParsedCommand:
        """``command``'s targets, stop and problems with this segmenter's word lists (see ``commands.parse_command``)."""
        options = self.options
        return parse_command(command, options.command_prefixes, options.stop_phrases, options.max_command_chars)

    # --- per-frame work -------------------------------------------------------------------------------------------
    def _image_features(self, images: Sequence[np.ndarray], color: str, timings: dict, lap):
        """RGB frames, ViT features (B x N x C) and image embeddings for the LLM (B x n_img x H)."""
        rgb = [as_rgb(image, color) for image in images]
        pixel_values = preprocess_batch(rgb, self.config.image_size, self.model.device)
        timings["preprocess"] = lap()
        vit_features, image_embeds = self.model.extract_image_features(pixel_values)
        timings["vit"] = lap()
        return rgb, vit_features, image_embeds

    def _run_llm(self, ids: torch.Tensor, image_embeds: torch.Tensor) -> tuple[torch.Tensor, DynamicCache]:
        """The LLM over ``ids`` (B x T, image tokens filled from ``image_embeds``): hidden states (up to the last
        [SEG] slot, ``MLLMSegModel.run_prompt``) and the KV cache of the prompt prefix only (whatever came after it is
        cropped off)."""
        hidden, cache = self.model.run_prompt(ids, image_embeds, keep_cache=True)
        self._crop_to_prefix(cache)
        return hidden, cache

    def _crop_to_prefix(self, cache: DynamicCache) -> None:
        self.model.language_model.crop_cache(cache, len(self._prefix_ids))

    def _suffix_ids(self, expression_lists: list[list[str]]) -> tuple[torch.Tensor, list[int]]:
        """B x S question/answer ids after the prefix, right-padded, and each row's real length. Right padding needs
        no attention mask: with causal attention no real token sees a pad."""
        prefix_length = len(self._prefix_ids)
        suffixes = [self.prompt_ids(e)[0, prefix_length:] for e in expression_lists]
        suffix_ids = torch.zeros(len(suffixes), max(len(s) for s in suffixes), dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            suffix_ids[row, : len(suffix)] = suffix
        return suffix_ids.to(self.model.device), [len(s) for s in suffixes]

    def _prefix_batch(self, batch: int) -> torch.Tensor:
        return torch.tensor([self._prefix_ids] * batch, dtype=torch.long, device=self.model.device)

    @torch.inference_mode()
    def encode(self, images: Sequence[np.ndarray], color: str = "rgb") -> EncodedFrames:
        """ViT, projector, LLM prefix and the decoder's image stages for B frames (batched)."""
        lap, timings = self._stopwatch(), {}
        rgb, vit_features, image_embeds = self._image_features(images, color, timings, lap)
        prefix = self._prefix_batch(len(rgb))
        hidden, cache = self._run_llm(prefix, image_embeds)
        timings["llm_prefix"] = lap()
        context = self.model.res_decoder.encode_image(vit_features, self.model.image_states_from_hidden(prefix, hidden))
        timings["decoder_image"] = lap()
        timings["encode"] = timings["vit"] + timings["llm_prefix"] + timings["decoder_image"]
        self.last_timings = timings
        return EncodedFrames([im.shape[:2] for im in rgb], context, cache, hidden[:, -1])

    @torch.inference_mode()
    def encode_and_query(
        self, images: Sequence[np.ndarray], expressions_per_frame: Sequence[Sequence[str]], color: str = "rgb"
    ) -> tuple[EncodedFrames, list[list[SegmentationResult]]]:
        """``encode`` followed by ``query``, with the LLM run once over prefix and suffix together (module docstring).
        The returned frames answer later questions like ``encode``'s."""
        expression_lists = self._checked_expression_lists(len(images), expressions_per_frame)
        lap, timings = self._stopwatch(), {}
        rgb, vit_features, image_embeds = self._image_features(images, color, timings, lap)
        prefix = self._prefix_batch(len(rgb))
        suffix_ids, lengths = self._suffix_ids(expression_lists)
        hidden, cache = self._run_llm(torch.cat([prefix, suffix_ids], dim=1), image_embeds)  # B x (P + S) x H
        timings["llm"] = lap()
        prefix_length = prefix.shape[1]
        image_states = self.model.image_states_from_hidden(prefix, hidden[:, :prefix_length])
        context = self.model.res_decoder.encode_image(vit_features, image_states)
        timings["decoder_image"] = lap()
        timings["encode"] = timings["vit"] + timings["llm"] + timings["decoder_image"]
        self.last_timings = timings
        frames = EncodedFrames([im.shape[:2] for im in rgb], context, cache, hidden[:, prefix_length - 1])
        # Row p of the shifted states is the state before suffix token p (the prefix's last state first).
        shifted = hidden[:, prefix_length - 1 :]
        return frames, self._results(frames, suffix_ids, lengths, shifted, expression_lists, lap)

    def _checked_expression_lists(self, frames: int, expressions_per_frame) -> list[list[str]]:
        if len(expressions_per_frame) != frames:
            raise ValueError(f"{frames} frames but {len(expressions_per_frame)} expression lists")
        return [self._validate_expressions(e) for e in expressions_per_frame]

    @torch.inference_mode()
    def query(self, frames: EncodedFrames, expressions_per_frame: Sequence[Sequence[str]]) -> list[list[SegmentationResult]]:
        """Answer one conversation (all its expressions) per frame, all frames in one batched suffix pass."""
        expression_lists = self._checked_expression_lists(len(frames.image_sizes), expressions_per_frame)
        lap = self._stopwatch()
        suffix_ids, lengths = self._suffix_ids(expression_lists)
        # The frame's cache keeps only the prefix afterwards, so it serves the next question too.
        hidden = self.model.continue_prompt(self.model.language_model.embed_tokens(suffix_ids), frames.cache)
        hidden = torch.cat([frames.prefix_last_hidden[:, None], hidden], dim=1)  # index p holds the state at p-1
        self.last_timings["llm_suffix"] = lap()
        return self._results(frames, suffix_ids, lengths, hidden, expression_lists, lap)

    def _stopwatch(self):
        """A function returning the milliseconds since its previous call (synchronising CUDA when asked)."""
        last = [time.perf_counter()]
        sync = self.synchronize_timings and self.model.device.type == "cuda"

        def lap() -> float:
            if sync:
                torch.cuda.synchronize(self.model.device)
            now = time.perf_counter()
            elapsed, last[0] = (now - last[0]) * 1e3, now
            return elapsed

        return lap

    def _results(self, frames, suffix_ids, lengths, shifted_hidden, expression_lists, lap) -> list[list[SegmentationResult]]:
        tokens = self.config.tokens
        seg_states, image_index, slot_info = [], [], []
        for row, length in enumerate(lengths):
            ids = suffix_ids[row, :length]
            slots = ((ids == tokens.seg) | (ids == tokens.rej)).nonzero(as_tuple=True)[0]
            logits = self.model.decision_logits_at(shifted_hidden[row, slots])  # n_slots x V
            slot_info.append(logits)
            seg_states.append(shifted_hidden[row, slots])
            image_index.append(torch.full((len(slots),), row, dtype=torch.long))
        all_logits = self.model.decode_masks(
            frames.decoder_context, torch.cat(seg_states), torch.cat(image_index).to(self.model.device)
        )
        probabilities = all_logits.sigmoid().cpu().numpy()
        self.last_timings["decoder_query"] = lap()
        results, offset = [], 0
        for row, expressions in enumerate(expression_lists):
            logits = slot_info[row]
            count = logits.shape[0]
            results.append(
                [
                    self._result(expressions[k], logits[k], probabilities[offset + k], frames.image_sizes[row])
                    for k in range(count)
                ]
            )
            offset += count
        self.last_timings["query"] = self.last_timings.get("llm_suffix", 0.0) + self.last_timings["decoder_query"]
        self.last_timings["postprocess"] = lap()
        return results

    def _result(self, expression: str, logits: torch.Tensor, probability_square: np.ndarray, size) -> SegmentationResult:
        tokens = self.config.tokens
        decision = "REJ" if int(logits.argmax()) == tokens.rej else "SEG"
        confidence = float(torch.sigmoid(logits[tokens.seg] - logits[tokens.rej]))
        probability = resize_probability(probability_square, *size)
        mask = probability > self.options.threshold
        if decision == "REJ":
            mask = np.zeros_like(mask)
        geometry = mask_geometry(mask, self.options.centroid_of_largest_component)
        return SegmentationResult(
            expression=expression,
            found=decision == "SEG" and geometry.area > 0,
            decision=decision,
            confidence=confidence,
            probability=probability,
            mask=mask,
            bbox=geometry.bbox,
            centroid=geometry.centroid,
            area=geometry.area,
        )

    # --- convenience ----------------------------------------------------------------------------------------------
    def _keep(self, frames: EncodedFrames, image: np.ndarray, color: str) -> None:
        frames.source, frames.color = image.copy(), color  # a copy: the caller may reuse its buffer
        self._cached = frames

    def reset_image(self) -> None:
        """Forget the frame ``segment`` keeps (its next call encodes anew). To hold several frames' encodings, use
        ``encode`` and ``query``."""
        self._cached = None

    def segment(
        self, image: np.ndarray, expressions: Sequence[str] | str, color: str = "rgb", cache: bool = True
    ) -> list[SegmentationResult]:
        """Segment ``expressions`` (one conversation) in ``image``. A repeated image reuses its encoding."""
        if not cache:
            return self.segment_uncached(image, expressions, color)
        if self._cached is not None and self._cached.shows(image, color):
            self.last_timings = {}
            return self.query(self._cached, [expressions])[0]
        frames, results = self.encode_and_query([image], [expressions], color)
        self._keep(frames, image, color)
        return results[0]

    def segment_command(self, image: np.ndarray, command: str, color: str = "rgb") -> list[SegmentationResult]:
        """A spoken command ("pick up the red cup; the blue bowl") -> results; each result names the expression used."""
        return self.segment(image, self.expressions_from_command(command), color)

    def segment_batch(
        self, images: Sequence[np.ndarray], expressions_per_image: Sequence[Sequence[str]], color: str = "rgb"
    ) -> list[list[SegmentationResult]]:
        """Several frames (e.g. cameras) in one batched pass."""
        return self.encode_and_query(images, expressions_per_image, color)[1]

    @torch.inference_mode()
    def segment_uncached(self, image: np.ndarray, expressions: Sequence[str] | str, color: str = "rgb") -> list[SegmentationResult]:
        """The official path: the whole prompt in one ``forward_ids`` pass, no per-frame state kept."""
        expressions = self._validate_expressions(expressions)
        rgb = as_rgb(image, color)
        out = self.model.forward_ids(preprocess(rgb, self.config.image_size), self.prompt_ids(expressions))
        probabilities = out.mask_probs[0].cpu().numpy()
        return [
            self._result(expressions[k], out.decision_logits[0][k], probabilities[k], rgb.shape[:2])
            for k in range(len(expressions))
        ]
