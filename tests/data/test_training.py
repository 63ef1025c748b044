"""Training: the loss terms, one step on a fixed batch, a short run that learns, resumable checkpoints."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from mllmseg_ros.data.datasets import FolderDataset, SyntheticDataset
from mllmseg_ros.model import MLLMSegModel
from mllmseg_ros.tools.train import IGNORE, Batcher, TrainConfig, dice_loss, focal_loss, new_model, train, training_losses

TINY = dict(image_size=56, vision_width=32, vision_layers=2, llm_width=32, llm_layers=2, vocab_size=400)


def test_focal_and_dice_known_values():
    logits = torch.tensor([[[0.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0]]])
    # p = 0.5 everywhere: ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25 / 0.75
    assert focal_loss(logits, target, 0.25, 2.0).item() == pytest.approx(np.log(2) * 0.25 * (0.25 + 0.75) / 2)
    assert dice_loss(logits, target).item() == pytest.approx(1 - (2 * 0.5 + 1) / (1.0 + 1.0 + 1))
    perfect = torch.tensor([[[20.0, -20.0]]])
    assert focal_loss(perfect, target, 0.25, 2.0).item() < 1e-9 and dice_loss(perfect, target).item() < 1e-6


def test_labels_cover_the_answer_only(tmp_path):
    model, _ = new_model(TrainConfig(**TINY), tmp_path)
    from mllmseg_ros.engine.prompt import load_chat_tokenizer

    batcher = Batcher(load_chat_tokenizer(tmp_path), model.config)
    sample = SyntheticDataset(0, 10, absent_fraction=1.0)[0]
    ids, labels = batcher.encode(sample)
    supervised = [i for i, label in zip(ids, labels) if label != -100]
    tokens = model.config.tokens
    assert supervised.count(tokens.seg) + supervised.count(tokens.rej) == len(sample.expressions)
    assert ids.count(tokens.img_context) == model.config.num_image_tokens
    answer = batcher.tokenizer.tokenizer.decode(supervised)
    assert answer.startswith("Sure,") and answer.endswith("<|im_end|>")


def test_one_step_reduces_the_loss_on_a_fixed_batch(tmp_path):
    cfg = TrainConfig(**TINY, lr=3e-3)
    model, _ = new_model(cfg, tmp_path)
    from mllmseg_ros.engine.prompt import load_chat_tokenizer

    batch = Batcher(load_chat_tokenizer(tmp_path), model.config)([SyntheticDataset(0, 4)[i] for i in range(4)], torch.device("cpu"))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    torch.manual_seed(0)
    before, _ = training_losses(model, batch, cfg)
    before.backward()
    optimizer.step()
    optimizer.zero_grad()
    model.eval()  # compare without dropout noise
    with torch.no_grad():
        after_eval, _ = training_losses(model, batch, cfg)
        model.train()
    assert after_eval.item() < before.item()


def test_independent_questions_are_each_computed_as_if_asked_alone(tmp_path):
    """With ``independent_questions`` every question of a sample gives, in one sequence, the states before its answer
    tokens (the [SEG] query among them) and the cross-entropy it would give in a sample of its own (the node's
    one-question-at-a-time prompt)."""
    from mllmseg_ros.data.datasets import Sample
    from mllmseg_ros.engine.prompt import load_chat_tokenizer

    model, _ = new_model(TrainConfig(**TINY, decoder_dropout=0.0), tmp_path)
    model.eval()
    dataset = SyntheticDataset(0, 10, absent_fraction=1.0)
    samples = [dataset[0], dataset[3]]
    assert any(not m.any() for m in samples[0].masks)  # an absent question ([REJ]) among the present ones
    tokenizer = load_chat_tokenizer(tmp_path)
    cpu = torch.device("cpu")
    packed = Batcher(tokenizer, model.config, independent_questions=True)(samples, cpu)
    alone = [Batcher(tokenizer, model.config)([Sample(s.image, [e], [m])], cpu)
             for s in samples for e, m in zip(s.expressions, s.masks)]
    assert packed[2].shape[1:] == (1, packed[0].shape[1], packed[0].shape[1])

    def answer_states(batch):
        input_ids, labels, attention, pixels, _, position_ids = batch
        _, image_embeds = model.extract_image_features(pixels)
        hidden = model.run_language_model(model.embed_inputs(input_ids, image_embeds), attention, position_ids)
        rows, cols = (labels != IGNORE).nonzero(as_tuple=True)  # the answers' tokens, in order
        return hidden[rows, cols - 1], labels[rows, cols]

    with torch.no_grad():
        packed_states, packed_labels = answer_states(packed)
        alone_states, alone_labels = zip(*(answer_states(batch) for batch in alone))
        assert torch.equal(packed_labels, torch.cat(alone_labels))
        torch.testing.assert_close(packed_states, torch.cat(alone_states), atol=1e-4, rtol=1e-4)
        # The packed batch's cross-entropy is the lone ones' weighted by their numbers of answer tokens.
        _, packed_stats = training_losses(model, packed, TrainConfig(**TINY))
        lone = [training_losses(model, batch, TrainConfig(**TINY))[1] for batch in alone]
    tokens = [int((batch[1] != IGNORE).sum()) for batch in alone]
    expected_ce = sum(stats["ce"] * n for stats, n in zip(lone, tokens)) / sum(tokens)
    assert packed_stats["ce"] == pytest.approx(expected_ce, rel=1e-4)


def test_decision_weight_reweights_only_the_seg_rej_tokens(tmp_path):
    model, _ = new_model(TrainConfig(**TINY), tmp_path)
    from mllmseg_ros.engine.prompt import load_chat_tokenizer

    samples = [SyntheticDataset(0, 4, absent_fraction=1.0)[i] for i in range(2)]
    input_ids, labels, attention, pixels, masks, _ = batch = Batcher(load_chat_tokenizer(tmp_path), model.config)(samples, torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        _, plain = training_losses(model, batch, TrainConfig(**TINY))
        _, weighted = training_losses(model, batch, TrainConfig(**TINY, decision_weight=4.0))
        # Independent computation: per-token cross-entropy at every supervised position, decisions counted 4 times.
        hidden = model.run_language_model(model.embed_inputs(input_ids, model.extract_image_features(pixels)[1]), attention)
        rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
        targets = labels[rows, cols + 1]
        per_token = torch.nn.functional.cross_entropy(model.language_model.lm_head(hidden[rows, cols]).float(), targets, reduction="none")
    tokens = model.config.tokens
    is_decision = (targets == tokens.seg) | (targets == tokens.rej)
    assert is_decision.sum() == sum(len(s.expressions) for s in samples)
    weights = 1.0 + 3.0 * is_decision.float()
    assert plain["ce"] == pytest.approx(per_token.mean().item(), rel=1e-5)
    assert weighted["ce"] == pytest.approx(((per_token * weights).sum() / weights.sum()).item(), rel=1e-5)
    assert 0.0 <= weighted["decision_acc"] <= 1.0
    # decision_from_step: before it the decisions weigh nothing, from it on decision_weight again.
    delayed = TrainConfig(**TINY, decision_weight=4.0, decision_from_step=10)
    with torch.no_grad():
        _, early = training_losses(model, batch, delayed, step=9)
        _, late = training_losses(model, batch, delayed, step=10)
    assert early["ce"] == pytest.approx(per_token[~is_decision].mean().item(), rel=1e-5)
    assert late["ce"] == pytest.approx(weighted["ce"], rel=1e-6)


def _mean_iou(model: MLLMSegModel, folder, seeds) -> float:
    from mllmseg_ros.engine import Segmenter
    from mllmseg_ros.engine.prompt import load_chat_tokenizer

    segmenter = Segmenter(model.eval(), load_chat_tokenizer(folder))
    ious = []
    for seed in seeds:
        sample = SyntheticDataset(seed, seed + 1, targets=2, absent_fraction=0.0)[0]
        for result, mask in zip(segmenter.segment(sample.image, sample.expressions), sample.masks):
            predicted = result.probability > 0.5
            ious.append((predicted & mask).sum() / max(1, (predicted | mask).sum()))
    return float(np.mean(ious))


def test_short_training_run_learns_and_resumes(tmp_path):
    seeds = (0, 8)
    cfg = TrainConfig(**TINY, out=str(tmp_path / "run"), train_seeds=seeds, steps=10_000, batch_size=4, lr=2e-3,
                      save_every=10_000, warmup_ratio=0.01)
    untrained, _ = new_model(cfg, tmp_path / "untrained")
    iou_before = _mean_iou(untrained, tmp_path / "untrained", range(*seeds))
    # Train for ~30 s: count steps per second first, then run that many.
    start = time.perf_counter()
    train(TrainConfig(**{**cfg.__dict__, "steps": 5, "out": str(tmp_path / "probe")}), show_progress=False)
    steps = max(20, int(25 / ((time.perf_counter() - start) / 5)))
    run = TrainConfig(**{**cfg.__dict__, "steps": steps, "save_every": steps // 2})
    folder = train(run, show_progress=False)
    trained = MLLMSegModel.from_pretrained(folder)
    iou_after = _mean_iou(trained, folder, range(*seeds))
    print(f"\n{steps} steps: mean IoU on the training scenes {iou_before:.3f} -> {iou_after:.3f}")
    assert iou_after > iou_before + 0.05
    assert json.loads((folder / "training_config.json").read_text())["steps"] == steps
    # Resume: a longer run continues from the last checkpoint's step, not from zero.
    state = torch.load(tmp_path / "run" / "checkpoint-last" / "training_state.pt", weights_only=True)
    assert state["step"] == steps
    resumed = TrainConfig(**{**run.__dict__, "steps": steps + 2})
    train(resumed, show_progress=False)
    assert torch.load(tmp_path / "run" / "checkpoint-last" / "training_state.pt", weights_only=True)["step"] == steps + 2


def test_folder_dataset(tmp_path):
    import cv2

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    image = np.zeros((20, 30, 3), np.uint8)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 255
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    record = {"image": "images/a.png", "targets": [{"expression": "The Cup.", "mask": "masks/a.png"}, {"expression": "a box", "mask": None}]}
    (tmp_path / "samples.jsonl").write_text(json.dumps(record) + "\n")
    sample = FolderDataset(tmp_path)[0]
    assert sample.expressions == ["the cup", "a box"]
    assert sample.masks[0].sum() == 25 and not sample.masks[1].any()
    with pytest.raises(ValueError, match="samples.jsonl"):
        FolderDataset(tmp_path / "nowhere")


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_dict({"stepz": 3})


def test_decoder_dropout_is_a_model_option(tmp_path):
    def dropouts(model):
        decoder = model.res_decoder
        return {m.p for m in decoder.modules() if isinstance(m, torch.nn.Dropout)} | {
            m.dropout for m in decoder.modules() if isinstance(m, torch.nn.MultiheadAttention)}

    official, _ = new_model(TrainConfig(**TINY), tmp_path / "official")
    assert dropouts(official) == {0.1}
    model, config_dict = new_model(TrainConfig(**TINY, decoder_dropout=0.0), tmp_path / "none")
    assert dropouts(model) == {0.0} and config_dict["mllmseg_decoder"]["dropout"] == 0.0


def test_data_workers_give_the_same_batches_in_the_same_order():
    from mllmseg_ros.data.scenes import Camera
    from mllmseg_ros.tools.train import sample_batches

    dataset = SyntheticDataset(0, 1000, camera=Camera(96, 72))
    cfg = TrainConfig(steps=5, batch_size=3, seed=7)
    serial = list(sample_batches(dataset, TrainConfig.from_dict({**cfg.__dict__, "data_workers": 0}), step=2))
    parallel = list(sample_batches(dataset, TrainConfig.from_dict({**cfg.__dict__, "data_workers": 2}), step=2))
    assert len(serial) == len(parallel) == 3  # the steps left after step 2
    for ours, theirs in zip(serial, parallel):
        assert [s.expressions for s in ours] == [s.expressions for s in theirs]
        for a, b in zip(ours, theirs):
            assert np.array_equal(a.image, b.image) and all(np.array_equal(x, y) for x, y in zip(a.masks, b.masks))
    # A resumed run draws its batches from the generator reseeded at its step, whatever the workers.
    assert [s.expressions for s in serial[0]] != [s.expressions for s in next(iter(sample_batches(dataset, cfg, 0)))]


def test_workers_build_the_same_tensors_as_the_training_process(tmp_path):
    """The training loop has the workers run the Batcher too; its tensors must not depend on where it ran."""
    from mllmseg_ros.data.scenes import Camera
    from mllmseg_ros.engine.prompt import load_chat_tokenizer
    from mllmseg_ros.tools.train import sample_batches

    model, _ = new_model(TrainConfig(**TINY), tmp_path / "tok")
    collate = Batcher(load_chat_tokenizer(tmp_path / "tok"), model.config)
    dataset = SyntheticDataset(0, 1000, camera=Camera(96, 72))
    cfg = TrainConfig(steps=3, batch_size=2, seed=3)
    serial = list(sample_batches(dataset, cfg, collate=collate))
    parallel = list(sample_batches(dataset, TrainConfig.from_dict({**cfg.__dict__, "data_workers": 2}), collate=collate))
    assert len(serial) == len(parallel) == 3
    for ours, theirs in zip(serial, parallel):
        for a, b in zip(ours[:4], theirs[:4]):
            assert torch.equal(a, b)
        assert all(torch.equal(a, b) for a, b in zip(ours[4], theirs[4])) and len(ours[4]) == len(theirs[4]) > 0


def test_lone_questions_join_the_data_at_the_curriculum_step():
    from mllmseg_ros.tools.train import make_dataset, sample_batches

    cfg = TrainConfig(steps=4, batch_size=4, scene_size=(96, 72), single_question_fraction=1.0,
                      single_absent_fraction=1.0, single_question_from_step=2)
    batches = list(sample_batches(make_dataset(cfg), cfg))
    for early in batches[:2]:  # the multi-question data exactly
        assert all(len(sample.expressions) >= 2 for sample in early)
    for late in batches[2:]:  # one question each, absent (an empty mask) as single_absent_fraction asks
        assert all(len(sample.expressions) == 1 and not sample.masks[0].any() for sample in late)
    # The same scenes in both phases: the lone question is drawn after everything else.
    plain = TrainConfig.from_dict({**cfg.__dict__, "single_question_fraction": 0.0})
    assert [[s.image.sum() for s in b] for b in batches] == [[s.image.sum() for s in b]
                                                              for b in sample_batches(make_dataset(plain), plain)]
    # A run resumed after the switch asks lone questions from its first batch.
    resumed = list(sample_batches(make_dataset(cfg), cfg, step=3))
    assert all(len(sample.expressions) == 1 for sample in resumed[0])


def test_first_kinds_ask_only_those_kinds_until_their_step():
    import re

    from mllmseg_ros.data.scenes import CLASSES, COLOURS
    from mllmseg_ros.tools.train import data_phases, make_dataset, sample_batches

    cfg = TrainConfig(steps=12, batch_size=4, scene_size=(96, 72), first_kinds=("colour",), first_kinds_until_step=4,
                      single_question_fraction=1.0, single_question_from_step=8)
    assert [start for start, _ in data_phases(cfg)] == [0, 4, 8]
    batches = list(sample_batches(make_dataset(cfg), cfg))
    colour_and_class = re.compile(rf"the ({'|'.join(COLOURS)}) ({'|'.join(CLASSES)})")
    questions = lambda part: [text for batch in part for sample in batch for text in sample.expressions]  # noqa: E731
    # Until step 4 every question is a colour and a class ("the red cup"; absent objects are worded so too).
    assert all(colour_and_class.fullmatch(text) for text in questions(batches[:4]))
    # Then every kind, several questions per sample; from step 8 one question alone.
    assert not all(colour_and_class.fullmatch(text) for text in questions(batches[4:8]))
    assert all(len(sample.expressions) >= 2 for batch in batches[4:8] for sample in batch)
    assert all(len(sample.expressions) == 1 for batch in batches[8:] for sample in batch)
    # The same scenes in every phase: the phases change only the questions.
    plain = TrainConfig(steps=12, batch_size=4, scene_size=(96, 72))
    assert [[s.image.sum() for s in b] for b in batches] == [[s.image.sum() for s in b]
                                                             for b in sample_batches(make_dataset(plain), plain)]
