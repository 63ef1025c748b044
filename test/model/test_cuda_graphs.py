"""CUDA graphs of the ViT and LLM passes (model/cuda_graphs.py).

On the CPU: the padded, cache-preparing LLM pass that the graphs record gives the unpadded pass's hidden states and
keys/values (checked by running the recorded function directly), and a runner drops its graphs when the weights move.
The GPU side (the engine with graphs against the engine without) is in test/engine/test_engine_options.py.
"""
from __future__ import annotations

import pytest
import torch

from tiny_models import INTERNLM2, QWEN2, QWEN3, random_model

LLM_CONFIGS = {"qwen2": QWEN2, "internlm2": INTERNLM2, "qwen3": QWEN3}

from mllmseg_ros.model import cuda_graphs
from mllmseg_ros.model.cuda_graphs import GraphedPromptPass


class _DirectRunner:
    """Stands in for CudaGraphRunner on the CPU: runs the function that would be captured, with its set-up."""

    def __init__(self, fn, prepare=None, **_):
        self.fn, self.prepare, self.captures, self.cleared = fn, prepare, 0, 0

    def clear(self):
        self.cleared += 1

    def __call__(self, *inputs):
        if self.prepare is not None:
            self.prepare()
        return self.fn(*inputs)


@pytest.fixture
def direct_runner(monkeypatch):
    monkeypatch.setattr(cuda_graphs, "CudaGraphRunner", _DirectRunner)


@pytest.mark.parametrize("llm", ["qwen2", "internlm2", "qwen3"])  # internlm2: dynamic-NTK RoPE, recorded as plain RoPE
@pytest.mark.parametrize("batch,tokens", [(1, 7), (2, 32), (1, 33)])
def test_padded_pass_matches_the_unpadded_one(direct_runner, batch, tokens, llm):
    model = random_model(LLM_CONFIGS[llm])
    language_model = model.language_model
    torch.manual_seed(1)
    embeds = torch.randn(batch, tokens, language_model.config.hidden_size)
    graphed = GraphedPromptPass(language_model, bucket=16)
    with torch.inference_mode():
        expected_cache = language_model.new_cache()
        expected = language_model(embeds, cache=expected_cache)
        hidden, cache = graphed(embeds, keep_cache=True)
        no_cache_hidden, no_cache = graphed(embeds, keep_cache=False)
    assert graphed.padded_length(tokens) % 16 == 0 and graphed.padded_length(tokens) >= tokens
    assert hidden.shape == expected.shape and no_cache is None
    torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(no_cache_hidden, expected, atol=1e-5, rtol=1e-5)
    assert cache.get_seq_length() == tokens
    for ours, reference in zip(cache.layers, expected_cache.layers):
        torch.testing.assert_close(ours.keys, reference.keys, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.values, reference.values, atol=1e-5, rtol=1e-5)
    # The returned cache is the caller's own: a follow-up pass on it matches one on the reference cache.
    follow = torch.randn(batch, 3, language_model.config.hidden_size)
    with torch.inference_mode():
        torch.testing.assert_close(language_model(follow, cache=cache), language_model(follow, cache=expected_cache),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("llm", ["qwen2", "internlm2", "qwen3"])
@pytest.mark.parametrize("batch,tokens", [(1, 3), (2, 17)])
def test_padded_continuation_matches_the_unpadded_one(direct_runner, batch, tokens, llm):
    """A follow-up question: the suffix continues a prefix cache, which is left as it was."""
    model = random_model(LLM_CONFIGS[llm])
    language_model = model.language_model
    torch.manual_seed(2)
    width = language_model.config.hidden_size
    prefix_embeds, suffix = torch.randn(batch, 9, width), torch.randn(batch, tokens, width)
    graphed = GraphedPromptPass(language_model, bucket=16)
    with torch.inference_mode():
        prefix = language_model.new_cache()
        language_model(prefix_embeds, cache=prefix)
        kept = [(layer.keys.clone(), layer.values.clone()) for layer in prefix.layers]
        hidden, no_cache = graphed(suffix, keep_cache=False, prefix=prefix)
        expected = language_model(suffix, cache=_copy(language_model, prefix))
        eager = model.continue_prompt(suffix, prefix)  # the CPU path: runs eagerly, crops back to the prefix
    assert no_cache is None
    torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eager, expected, atol=1e-5, rtol=1e-5)
    assert prefix.get_seq_length() == 9
    for layer, (keys, values) in zip(prefix.layers, kept):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
    with pytest.raises(ValueError, match="keep_cache"):
        graphed(suffix, keep_cache=True, prefix=prefix)


def _copy(language_model, cache):
    copy = language_model.new_cache()
    for index, layer in enumerate(cache.layers):
        copy.update(layer.keys.clone(), layer.values.clone(), index)
    return copy


def test_long_prompts_are_left_to_the_eager_pass():
    graphed = GraphedPromptPass(random_model().language_model, bucket=32, max_tokens=64)
    assert graphed.supports(64) and not graphed.supports(65)


def test_graphs_are_dropped_when_the_weights_move(direct_runner):
    model = random_model()
    graphed = GraphedPromptPass(model.language_model)
    embeds = torch.randn(1, 5, model.language_model.config.hidden_size)
    with torch.inference_mode():
        graphed(embeds, keep_cache=False)
        graphed(embeds, keep_cache=False)
        assert graphed._captured.runner.cleared == 1  # the first call only
        model.to(torch.float64)  # new storage for every weight
        graphed(embeds.double(), keep_cache=False)
    assert graphed._captured.runner.cleared == 2


def test_graphs_stay_off_on_the_cpu():
    model = random_model()
    with torch.inference_mode():
        assert not model.cuda_graphs_active()
    assert model.cuda_graph_captures == 0


def test_graphed_decoder_stages_match_the_eager_ones(direct_runner):
    """What the decoder's graphs record (both stages, as the graph runner calls them) gives the eager decoder's
    context and mask logits, for one image and for two images with queries about either."""
    from mllmseg_ros.model.cuda_graphs import GraphedDecoder

    model = random_model()
    decoder = model.res_decoder
    graphed = GraphedDecoder(decoder)
    config = model.config
    torch.manual_seed(4)
    for batch, image_index in ((1, [0, 0]), (2, [1, 0, 1])):
        vit = torch.randn(batch, config.vision.grid_size**2, config.decoder.width)
        llm = torch.randn(batch, config.llm_grid_size**2, config.llm.hidden_size)
        seg = torch.randn(len(image_index), config.llm.hidden_size)
        index = torch.tensor(image_index)
        with torch.inference_mode():
            expected_context = decoder.encode_image(vit, llm)
            context = graphed.encode_image(vit, llm)
            torch.testing.assert_close(context.fused, expected_context.fused)
            torch.testing.assert_close(context.cross_view, expected_context.cross_view)
            torch.testing.assert_close(graphed.decode_queries(context, index, seg),
                                       decoder.decode_queries(expected_context, index, seg))
