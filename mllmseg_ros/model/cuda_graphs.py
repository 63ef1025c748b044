"""CUDA graphs of the ViT's, the LLM's and the mask decoder's inference passes: each pass's kernels replayed with one
launch.

On a GPU, a 1B model's passes cost their kernel launches more than their arithmetic: Python and transformers issue
hundreds of small kernels per pass, each far shorter than the time it takes to launch it. A CUDA graph records the
kernels of one pass once and replays them all with one launch (the speed-up: benchmarks/README.md).

A graph is fixed to its input shapes and memory addresses, so:

* each runner keeps one graph per input shape (least recently used dropped past ``max_graphs``), copies each call's
  inputs into the graph's own input buffers and hands back copies of its outputs (the next replay overwrites them);
* the LLM's prompt length changes with every command, so prompts are right-padded to a multiple of ``bucket`` tokens.
  With causal attention no real token sees a pad, so the real positions' hidden states and keys/values are those of
  the unpadded prompt (up to the rounding of differently shaped matrix products);
* a graph reads the weights at the addresses it was captured with: a runner drops its graphs when any parameter's
  storage changes (``.to()``, quantization, ``torch.compile``, PEFT replace them; ``load_state_dict`` copies in place,
  which the graphs then read).

torch's own ``torch.compile(mode="reduce-overhead")`` also uses CUDA graphs, but compiling the three stages took longer
than two minutes on the H100 machine, where capturing the eager passes takes a fraction of a second per shape. No
library captures a transformers pass that fills or continues a KV cache with bucketed lengths, hence this module.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn
from transformers import DynamicCache

from .language import LanguageModel
from .mask_decoder import ImageContext
from .prefix_cache import storage_fingerprint

logger = logging.getLogger(__name__)


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor]  # the buffers the graph reads its inputs from
    outputs: list[torch.Tensor]  # the tensors the graph writes its outputs to


class CudaGraphRunner:
    """Runs ``fn`` (tensors in, list of tensors out, no host synchronisation inside) by replaying a graph captured
    once per input signature. ``prepare``, if given, runs before each warm-up and before the capture, outside them
    (for host-side set-up the capture may not contain)."""

    def __init__(
        self,
        fn: Callable[..., list[torch.Tensor]],
        prepare: Callable[[], None] | None = None,
        max_graphs: int = 8,
        warmup_runs: int = 2,
    ) -> None:
        self.fn = fn
        self.prepare = prepare
        self.max_graphs = max_graphs
        self.warmup_runs = warmup_runs
        self._graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self.captures = 0  # graphs captured so far (the tests and benchmarks read it)

    def clear(self) -> None:
        self._graphs.clear()

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """The outputs, in the graph's own memory: valid until the next call with the same input shapes."""
        key = tuple((tuple(x.shape), x.dtype, x.device) for x in inputs)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._capture(inputs)
            self._graphs[key] = graph
            if len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        for buffer, value in zip(graph.inputs, inputs):
            buffer.copy_(value)
        graph.graph.replay()
        return graph.outputs

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> _Graph:
        buffers = [x.clone() for x in inputs]
        device = buffers[0].device
        # Warm-up on a side stream, as torch's documentation asks: lazy initialisation (cuBLAS handles, autotuning)
        # must not happen during the capture.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_runs):
                if self.prepare is not None:
                    self.prepare()
                self.fn(*buffers)
        torch.cuda.current_stream(device).wait_stream(side)
        if self.prepare is not None:
            self.prepare()
        graph = torch.cuda.CUDAGraph()
        # thread_local: the ROS node's other threads may use CUDA (freeing cached memory, say) during a capture.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            outputs = self.fn(*buffers)
        self.captures += 1
        return _Graph(graph, buffers, list(outputs))


class _Captured:
    """A runner that drops its graphs when the weights it reads move."""

    def __init__(self, modules: tuple[nn.Module, ...], runner: CudaGraphRunner) -> None:
        self.modules = modules
        self.runner = runner
        self._fingerprint: tuple | None = None

    def __call__(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        fingerprint = storage_fingerprint(self.modules)
        if fingerprint != self._fingerprint:
            self.runner.clear()
            self._fingerprint = fingerprint
        return self.runner(*inputs)


class GraphedImageFeatures:
    """``extract(pixel_values)`` of fixed B x 3 x S x S inputs through one graph per batch size."""

    def __init__(
        self, modules: tuple[nn.Module, ...], extract: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    ) -> None:
        self._captured = _Captured(modules, CudaGraphRunner(lambda pixels: list(extract(pixels))))

    @property
    def captures(self) -> int:
        return self._captured.runner.captures

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vit_features, image_embeds = self._captured(pixel_values)
        return vit_features.clone(), image_embeds.clone()


class GraphedDecoder:
    """The mask decoder's two stages (``MaskDecoder.encode_image`` per batch size, ``decode_queries`` per number of
    queries) through graphs: eager, their few dozen small kernels each cost a launch, several milliseconds a frame."""

    def __init__(self, decoder: nn.Module) -> None:
        def image_stage(vit_features: torch.Tensor, llm_image_states: torch.Tensor) -> list[torch.Tensor]:
            context = decoder.encode_image(vit_features, llm_image_states)
            return [context.fused, context.cross_view]

        def query_stage(fused: torch.Tensor, image_index: torch.Tensor, seg_states: torch.Tensor) -> list[torch.Tensor]:
            # decode_queries reads the context's fused tokens only
            return [decoder.decode_queries(ImageContext(fused, fused), image_index, seg_states)]

        self._image = _Captured((decoder,), CudaGraphRunner(image_stage))
        self._queries = _Captured((decoder,), CudaGraphRunner(query_stage))

    @property
    def captures(self) -> int:
        return self._image.runner.captures + self._queries.runner.captures

    def encode_image(self, vit_features: torch.Tensor, llm_image_states: torch.Tensor) -> ImageContext:
        fused, cross_view = self._image(vit_features, llm_image_states)
        return ImageContext(fused.clone(), cross_view.clone())  # a frame's context serves later questions too

    def decode_queries(self, context: ImageContext, image_index: torch.Tensor, seg_states: torch.Tensor) -> torch.Tensor:
        return self._queries(context.fused, image_index, seg_states)[0].clone()


class GraphedPromptPass:
    """The LLM over B x T embeddings: hidden states and, if asked, a ``DynamicCache`` of the T positions, like
    ``LanguageModel(embeds, cache=language_model.new_cache())``; or, given a ``prefix`` cache of P earlier positions
    (left unchanged), the hidden states of the T positions that continue it (a follow-up question on a frame)."""

    def __init__(self, language_model: LanguageModel, bucket: int = 32, max_tokens: int = 2048) -> None:
        self.language_model = language_model
        self.bucket = bucket
        self.max_tokens = max_tokens  # longer prompts run eagerly: rare, and each length would hold a large graph
        self._cache: DynamicCache | None = None  # the cache the next warm-up or capture fills
        self._captured = _Captured((language_model,), CudaGraphRunner(self._pass, prepare=self._prepare_cache))
        self._batch_shape: tuple[int, torch.dtype, torch.device] | None = None

    @property
    def captures(self) -> int:
        return self._captured.runner.captures

    def padded_length(self, tokens: int) -> int:
        return -(-tokens // self.bucket) * self.bucket

    def supports(self, tokens: int) -> bool:
        return self.padded_length(tokens) <= self.max_tokens

    def _prepare_cache(self) -> None:
        # DynamicCache creates each layer's storage on its first update (a host-side tensor creation the capture may
        # not hold): do that here, with empty keys and values, so the captured pass only concatenates onto them.
        batch, dtype, device = self._batch_shape
        config = self.language_model.config
        heads = config.num_key_value_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        empty = torch.empty(batch, heads, 0, head_dim, dtype=dtype, device=device)
        cache = self.language_model.new_cache()
        for layer in range(config.num_hidden_layers):
            cache.update(empty, empty, layer)
        self._cache = cache

    def _pass(self, embeds: torch.Tensor, *prefix_keys_values: torch.Tensor) -> list[torch.Tensor]:
        cache = self._cache
        for layer in range(len(prefix_keys_values) // 2):  # a continuation: the prefix copied in, inside the graph
            cache.update(prefix_keys_values[2 * layer], prefix_keys_values[2 * layer + 1], layer)
        with _fixed_rope(self.language_model, cache.get_seq_length() + embeds.shape[1]):
            hidden = self.language_model(embeds, cache=cache)
        if prefix_keys_values:
            return [hidden]
        return [hidden] + [t for layer in cache.layers for t in (layer.keys, layer.values)]

    def __call__(
        self, embeds: torch.Tensor, keep_cache: bool, prefix: DynamicCache | None = None
    ) -> tuple[torch.Tensor, DynamicCache | None]:
        if keep_cache and prefix is not None:
            raise ValueError("keep_cache is for whole prompts; a continuation leaves its prefix cache as it was")
        batch, tokens, width = embeds.shape
        padded = embeds.new_zeros(batch, self.padded_length(tokens), width)  # zeros: finite pads for any kernel
        padded[:, :tokens] = embeds
        self._batch_shape = (batch, embeds.dtype, embeds.device)
        prefix_keys_values = [] if prefix is None else [t for layer in prefix.layers for t in (layer.keys, layer.values)]
        hidden, *keys_values = self._captured(padded, *prefix_keys_values)
        cache = None
        if keep_cache:
            cache = self.language_model.new_cache()
            for layer in range(len(keys_values) // 2):
                # update() concatenates onto an empty cache, i.e. copies out of the graph's memory.
                cache.update(keys_values[2 * layer][:, :, :tokens], keys_values[2 * layer + 1][:, :, :tokens], layer)
        return hidden[:, :tokens].clone(), cache


@contextmanager
def _fixed_rope(language_model: LanguageModel, tokens: int) -> Iterator[None]:
    """Dynamic-NTK rotary embeddings (InternLM2 LLMs) as plain ones while a short pass is recorded.

    transformers' dynamic RoPE compares the largest position with its cached length on the host on every pass, which
    a capture cannot hold. Up to the original context length it leaves the frequencies at their initial values, which
    are the plain RoPE frequencies (the NTK base change is 1 at that length), so the plain computation is the same.
    The graph reads the frequency buffer in place; if a longer eager pass later replaces it, the buffer's new storage
    drops the graphs (``storage_fingerprint``)."""
    switched = []
    for module in language_model.modules():
        rope_type = getattr(module, "rope_type", None)
        original = getattr(module, "original_max_seq_len", None)
        if (isinstance(rope_type, str) and "dynamic" in rope_type and original is not None and tokens <= original
                and getattr(module, "max_seq_len_cached", None) == original):
            switched.append((module, rope_type))
            module.rope_type = "default"
    try:
        yield
    finally:
        for module, rope_type in switched:
            module.rope_type = rope_type


def capture_failed(stage: str, error: Exception) -> None:
    logger.warning("CUDA graph capture of the %s failed (%s: %s); running it without graphs from now on", stage,
                   type(error).__name__, error)
