"""A text encoder for captions: a word tokenizer over the caption vocabulary and a small transformer.

    tokens = tokenizer(["the digit 7 moves left"])      # (B, L) ids: [CLS] words… [PAD]…
    context = encoder(tokens)                           # (B, L, D); context[:, 0] is the pooled vector

The empty prompt "" is the null condition of classifier-free guidance (only [CLS] and padding).
Unknown words map to [UNK] and too-long prompts are cut to `max_len`, each with a warning that
says which words — never a crash. Trained jointly with the denoiser, from scratch.
"""
from __future__ import annotations

import re
import warnings

import torch
from torch import nn

from ..data.moving_mnist import DIGIT_WORDS, DIRECTIONS, HELD_OUT_PHRASINGS, PHRASINGS

PAD, CLS, UNK = "[PAD]", "[CLS]", "[UNK]"


def words(text: str) -> list[str]:
    """Lower-case words and numerals of a prompt."""
    return re.findall(r"[a-z]+|\d+", text.lower())


def caption_vocabulary() -> list[str]:
    """Every word the Moving MNIST captions can use, held-out phrasings included (their words, not their sentences)."""
    vocab = set(DIGIT_WORDS) | {str(d) for d in range(10)} | {"a", "an", "and"}
    for text in (*PHRASINGS, *HELD_OUT_PHRASINGS, *DIRECTIONS):
        vocab |= set(words(text.replace("{d}", "").replace("{dir}", "").replace("{a}", "")))
    return [PAD, CLS, UNK, *sorted(vocab)]


class Tokenizer:
    """Prompt -> fixed-length ids `[CLS] w1 … wn [PAD] …`; unknown words -> [UNK]."""

    def __init__(self, vocab: list[str] | None = None, max_len: int = 16):
        self.vocab = list(vocab or caption_vocabulary())
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len
        self.pad, self.cls, self.unk = self.index[PAD], self.index[CLS], self.index[UNK]

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, prompts: str | list[str], warn: bool = True) -> torch.Tensor:
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        out = torch.full((len(prompts), self.max_len), self.pad, dtype=torch.long)
        for b, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"expected prompts as strings, got {type(prompt).__name__}: {prompt!r}")
            ws = words(prompt)
            unknown = [w for w in ws if w not in self.index]
            if unknown and warn:
                warnings.warn(f"prompt {prompt!r}: unknown word(s) {unknown} read as {UNK}; "
                              f"the model knows digits 0-9 and the directions {list(DIRECTIONS)}", stacklevel=2)
            if len(ws) > self.max_len - 1 and warn:
                warnings.warn(f"prompt {prompt!r} has {len(ws)} words; only the first {self.max_len - 1} are used",
                              stacklevel=2)
            ids = [self.cls] + [self.index.get(w, self.unk) for w in ws][: self.max_len - 1]
            out[b, : len(ids)] = torch.tensor(ids)
        return out


class TextEncoder(nn.Module):
    """Token ids (B, L) -> contextual embeddings (B, L, dim); position 0 ([CLS]) is the pooled vector."""

    def __init__(self, vocab_size: int, dim: int = 64, depth: int = 2, heads: int = 4, max_len: int = 16,
                 pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.token = nn.Embedding(vocab_size, dim)
        self.position = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype != torch.long or ids.shape[1] > len(self.position):
            raise ValueError(f"expected token ids (B, L <= {len(self.position)}) of dtype long, "
                             f"got {tuple(ids.shape)} {ids.dtype}")
        x = self.token(ids) + self.position[: ids.shape[1]]
        x = self.blocks(x, src_key_padding_mask=ids == self.pad_id)
        return self.norm(x)
