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

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from transformers import DynamicCache

from ..model import MLLMSegModel
from ..model.compilation import compile_stages
from ..model.mask_decoder import ImageContext
from ..model.model_card import read_model_card
from .postprocess import (MaskGeometry, SegmentationResult, found_confidence, mask_geometry, masks_on_device,
                          resize_probability)
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
        # Masks, boxes and centroids computed where the model runs (None: on CUDA devices), so that only masks and a
        # few numbers cross to the host; True on the CPU runs that path there (the tests compare it with the host path).
        self.postprocess_on_device: bool | None = None
        self._image_state_columns: torch.Tensor | None = None

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
        announce: Callable[[str], None] = logging.getLogger("mllmseg_ros").warning,
    ) -> "Segmenter":
        """Load a checkpoint folder. ``compile`` runs the model through ``torch.compile`` (``compile_stages``; slow
        first calls); ``quantization`` ("int8", "bnb-int8", "bnb-nf4", see ``model/quantization.py``) stores the ViT and LLM
        weights in 8 or 4 bits; ``cuda_graphs`` replays the ViT's and LLM's passes as CUDA graphs on a GPU
        (``model/cuda_graphs.py``; each new prompt length bucket is captured once, in well under a second).
        ``announce`` gets the model card's one line when there is one (``model/model_card.py``: a demo model)."""
        if threads:
            torch.set_num_threads(threads)
        model = MLLMSegModel.from_pretrained(path, dtype=dtype, device=device, allow_pickle=allow_pickle)
        model.use_cuda_graphs = None if cuda_graphs else False
        if quantization is not None:
            from ..model.quantization import quantize

            quantize(model, quantization)
        if compile:
            compile_stages(model)
        card = read_model_card(path)
        if card is not None and card.load_notice(path):
            announce(card.load_notice(path))
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

    def _suffix_ids(self, expression_lists: list[list[str]]) -> tuple[torch.Tensor, list[list[int]]]:
        """B x S question/answer ids after the prefix, right-padded, and each row's [SEG]/[REJ] answer positions, found
        on the host (on the device, finding them would wait for every kernel queued before). Right padding needs no
        attention mask: with causal attention no real token sees a pad."""
        prefix_length = len(self._prefix_ids)
        tokens = self.config.tokens
        suffixes = [self.prompt_ids(e)[0, prefix_length:] for e in expression_lists]
        suffix_ids = torch.zeros(len(suffixes), max(len(s) for s in suffixes), dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            suffix_ids[row, : len(suffix)] = suffix
        slots = [tokens.is_answer_slot(s).nonzero(as_tuple=True)[0].tolist() for s in suffixes]
        return suffix_ids.to(self.model.device), slots

    def _image_states(self, prefix_hidden: torch.Tensor) -> torch.Tensor:
        """B x n_img x H hidden states at p-1 of the prefix's image tokens p (``image_states_from_hidden``, with the
        columns known from the fixed prefix instead of searched for on the device)."""
        if self._image_state_columns is None or self._image_state_columns.device != prefix_hidden.device:
            image_token = self.config.tokens.img_context
            columns = [p - 1 for p, token in enumerate(self._prefix_ids) if token == image_token]
            self._image_state_columns = torch.tensor(columns, dtype=torch.long, device=prefix_hidden.device)
        return prefix_hidden[:, self._image_state_columns]

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
        context = self.model.encode_decoder_image(vit_features, self._image_states(hidden))
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
        suffix_ids, slots = self._suffix_ids(expression_lists)
        hidden, cache = self._run_llm(torch.cat([prefix, suffix_ids], dim=1), image_embeds)  # B x (P + S) x H
        timings["llm"] = lap()
        prefix_length = prefix.shape[1]
        context = self.model.encode_decoder_image(vit_features, self._image_states(hidden[:, :prefix_length]))
        timings["decoder_image"] = lap()
        timings["encode"] = timings["vit"] + timings["llm"] + timings["decoder_image"]
        self.last_timings = timings
        frames = EncodedFrames([im.shape[:2] for im in rgb], context, cache, hidden[:, prefix_length - 1])
        # Row p of the shifted states is the state before suffix token p (the prefix's last state first).
        shifted = hidden[:, prefix_length - 1 :]
        return frames, self._results(frames, slots, shifted, expression_lists, lap)

    def _checked_expression_lists(self, frames: int, expressions_per_frame) -> list[list[str]]:
        if len(expressions_per_frame) != frames:
            raise ValueError(f"{frames} frames but {len(expressions_per_frame)} expression lists")
        return [self._validate_expressions(e) for e in expressions_per_frame]

    @torch.inference_mode()
    def query(self, frames: EncodedFrames, expressions_per_frame: Sequence[Sequence[str]]) -> list[list[SegmentationResult]]:
        """Answer one conversation (all its expressions) per frame, all frames in one batched suffix pass."""
        expression_lists = self._checked_expression_lists(len(frames.image_sizes), expressions_per_frame)
        lap = self._stopwatch()
        suffix_ids, slots = self._suffix_ids(expression_lists)
        # The frame's cache keeps only the prefix afterwards, so it serves the next question too.
        hidden = self.model.continue_prompt(self.model.language_model.embed_tokens(suffix_ids), frames.cache)
        hidden = torch.cat([frames.prefix_last_hidden[:, None], hidden], dim=1)  # index p holds the state at p-1
        self.last_timings["llm_suffix"] = lap()
        return self._results(frames, slots, hidden, expression_lists, lap)

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

    def _results(self, frames, slots, shifted_hidden, expression_lists, lap) -> list[list[SegmentationResult]]:
        """Every row's answers: decisions and masks of its [SEG]/[REJ] slots (``slots``, positions into
        ``shifted_hidden``, whose index p holds the state before suffix token p)."""
        device = self.model.device
        rows = [row for row, row_slots in enumerate(slots) for _ in row_slots]
        image_index = torch.tensor(rows, dtype=torch.long).to(device)
        states = shifted_hidden[image_index, torch.tensor([p for s in slots for p in s], dtype=torch.long).to(device)]
        logits, rejected = self.model.decide(states)  # n x V, n
        probabilities = self.model.decode_masks(frames.decoder_context, states, image_index).sigmoid()  # n x S x S
        self.last_timings["decoder_query"] = lap()
        expressions = [e for row_expressions in expression_lists for e in row_expressions]
        flat = self._answers(expressions, logits, rejected, probabilities, [frames.image_sizes[row] for row in rows])
        self.last_timings["query"] = self.last_timings.get("llm_suffix", 0.0) + self.last_timings["decoder_query"]
        self.last_timings["postprocess"] = lap()
        results, offset = [], 0
        for row_slots in slots:
            results.append(flat[offset:offset + len(row_slots)])
            offset += len(row_slots)
        return results

    def _answers(self, expressions: list[str], logits: torch.Tensor, rejected: torch.Tensor, probabilities: torch.Tensor,
                 sizes: list[tuple[int, int]]) -> list[SegmentationResult]:
        """Results of n answers from their vocabulary logits (n x V) and decisions (``MLLMSegModel.decide``), mask
        probabilities (n x S x S, on the model's device) and image sizes (height, width)."""
        tokens = self.config.tokens
        seg_probability = torch.sigmoid(logits[:, tokens.seg] - logits[:, tokens.rej])
        on_device = self.postprocess_on_device
        if on_device is None:
            on_device = probabilities.device.type == "cuda"
        if on_device:
            masks = masks_on_device(probabilities, sizes, self.options.threshold, ~rejected)
        rejected, seg_probability = rejected.tolist(), seg_probability.tolist()
        probabilities = probabilities.cpu().numpy()
        peaks = probabilities.reshape(len(expressions), -1).max(1).tolist() if expressions else []
        results = []
        for k, expression in enumerate(expressions):
            if on_device:
                probability, (mask, geometry) = probabilities[k], masks[k]
                if self.options.centroid_of_largest_component and geometry.area:
                    geometry = mask_geometry(mask, True)
            else:
                probability = resize_probability(probabilities[k], *sizes[k])
                mask = probability > self.options.threshold if not rejected[k] else np.zeros(sizes[k], dtype=bool)
                geometry = mask_geometry(mask, self.options.centroid_of_largest_component)
            confidence = found_confidence(seg_probability[k], peaks[k], geometry.area == 0, self.options.threshold)
            results.append(self._result(expression, rejected[k], seg_probability[k], confidence, probability, mask,
                                        geometry))
        return results

    @staticmethod
    def _result(expression: str, rejected: bool, seg_probability: float, confidence: float, probability: np.ndarray,
                mask: np.ndarray, geometry: MaskGeometry) -> SegmentationResult:
        return SegmentationResult(
            expression=expression,
            found=not rejected and geometry.area > 0,
            decision="REJ" if rejected else "SEG",
            confidence=confidence,
            seg_probability=seg_probability,
            probability_map=probability,
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
        rejected = torch.tensor([d == "REJ" for d in out.decisions[0]], dtype=torch.bool, device=self.model.device)
        return self._answers(expressions, out.decision_logits[0], rejected, out.mask_probs[0],
                             [rgb.shape[:2]] * len(expressions))
