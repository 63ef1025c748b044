"""The official RES prompt (template ``internvl2_5``) and its tokenisation (spoken commands: ``commands.py``).

The prompt is reproduced byte for byte, quirks included, because the released weights were trained on it:
a space after the newline in the question, no space before "in this image", no space after "Sure,".
Each conversation turn is tokenised on its own and the ids concatenated, as the official preprocessing does.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# InternVL2.5's system message (template "internvl2_5"); the released models were trained with it.
INTERNVL2_5_SYSTEM_MESSAGE = (
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
)
# Conversation templates we can build, by the name in config.json's "template": their system messages. InternVL3.5's
# Qwen3 models are fine-tuned with "internvl2_5" too (InternVL's own Qwen3 SFT scripts pass --conv_style internvl2_5):
# the same ChatML turns and system message, and no Qwen3 <think> block (that comes only from Qwen3's own chat
# template, which InternVL's preprocessing does not use).
SYSTEM_MESSAGES: dict[str, str] = {"internvl2_5": INTERNVL2_5_SYSTEM_MESSAGE}
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
SEG, REJ = "[SEG]", "[REJ]"
# ChatML's opening of the answer turn and the newline after each turn's <|im_end|>: training learns only what lies
# between them (the answer and its <|im_end|>).
ASSISTANT_HEADER, TURN_TAIL = "<|im_start|>assistant\n", "\n"

def clean_expression(text: str) -> str:
    """The official normalisation of an expression: lower case, stripped of surrounding spaces and dots."""
    return text.lower().strip().strip(".")


@dataclass(frozen=True)
class PromptTurns:
    """The three turns of one conversation, as strings (image placeholder expanded)."""

    system: str
    user: str
    assistant: str

    def as_list(self) -> list[str]:
        return [self.system, self.user, self.assistant]

    def assistant_parts(self) -> tuple[str, str, str]:
        """The answer turn split as training labels it: (header, answer with its <|im_end|>, tail)."""
        return ASSISTANT_HEADER, self.assistant[len(ASSISTANT_HEADER): -len(TURN_TAIL)], TURN_TAIL


def build_prompt_turns(
    expressions: Sequence[str],
    num_image_tokens: int,
    answers: Sequence[str] | None = None,
    bos: str = "",
    template: str = "internvl2_5",
) -> PromptTurns:
    """The official RES conversation for ``expressions`` (already cleaned), answers all [SEG] by default.

    ``template`` is the checkpoint's ``config.json`` "template"; any other than those in ``SYSTEM_MESSAGES`` is an error
    (a prompt in the wrong template would run without complaint and give poor masks)."""
    if template not in SYSTEM_MESSAGES:
        raise ValueError(f"unsupported conversation template {template!r}; supported: {sorted(SYSTEM_MESSAGES)}")
    answers = list(answers) if answers is not None else [SEG] * len(expressions)
    image = IMG_START + IMG_CONTEXT * num_image_tokens + IMG_END
    question = "\n What are " + ", ".join(expressions) + "in this image? Please output segmentation masks."
    answer = "Sure," + ", ".join(f"{e}:{a}" for e, a in zip(expressions, answers)) + "."
    return PromptTurns(
        system=f"{bos}<|im_start|>system\n{SYSTEM_MESSAGES[template]}<|im_end|>\n",
        user=f"<|im_start|>user\n{image}{question}<|im_end|>\n",
        assistant=f"{ASSISTANT_HEADER}{answer}<|im_end|>{TURN_TAIL}",
    )


class SentencePieceChatTokenizer:
    """InternLM2's tokenizer without its remote code: the checkpoint's sentencepiece model plus its added tokens.

    Like the official slow tokenizer, text is split on added tokens first and each remaining chunk is encoded by
    sentencepiece on its own. No library tokenizer reproduces this for an InternLM2 ``tokenizer.model`` without
    running the checkpoint's Python file, which we never do.
    """

    def __init__(self, folder: Path) -> None:
        import sentencepiece

        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
        self.added: dict[str, int] = {}
        config = folder / "tokenizer_config.json"
        if config.is_file():
            for token_id, entry in json.loads(config.read_text(encoding="utf-8")).get("added_tokens_decoder", {}).items():
                self.added[entry["content"]] = int(token_id)
        added_file = folder / "added_tokens.json"
        if added_file.is_file():
            self.added.update(json.loads(added_file.read_text(encoding="utf-8")))
        alternatives = "|".join(re.escape(t) for t in sorted(self.added, key=len, reverse=True))
        self._splitter = re.compile(f"({alternatives})")
        self.bos_token = "<s>"

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for chunk in self._splitter.split(text):
            if chunk in self.added:
                ids.append(self.added[chunk])
            elif chunk:
                ids.extend(self.processor.encode(chunk))
        return ids


class HFChatTokenizer:
    """A tokenizer transformers can build from the folder's own files (Qwen2's vocab.json/merges.txt), no remote code."""

    def __init__(self, folder: Path) -> None:
        from transformers import AutoTokenizer
        from transformers.utils import logging

        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # AutoTokenizer warns that config.json describes the whole MLLM, not a tokenizer
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
        finally:
            logging.set_verbosity(verbosity)
        self.bos_token = ""

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def load_chat_tokenizer(folder: str | Path) -> SentencePieceChatTokenizer | HFChatTokenizer:
    """The checkpoint's tokenizer. InternLM2 folders (sentencepiece ``tokenizer.model``, remote-code class) get the
    sentencepiece path and a ``<s>`` at the start of the system turn, as the official code adds."""
    folder = Path(folder)
    config_path = folder / "tokenizer_config.json"
    tokenizer_class = ""
    if config_path.is_file():
        tokenizer_class = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer_class") or ""
    if tokenizer_class.startswith("InternLM2") or (
        (folder / "tokenizer.model").is_file() and not (folder / "vocab.json").is_file()
    ):
        return SentencePieceChatTokenizer(folder)
    return HFChatTokenizer(folder)
