"""Text encoder: defined behaviour for every prompt, padding that does not leak, the null condition."""
import pytest
import torch

from tinyvdm.data import HELD_OUT_PHRASINGS, PHRASINGS, MovingMNIST
from tinyvdm.models.text import CLS, UNK, TextEncoder, Tokenizer


def test_every_caption_word_is_known_including_held_out_phrasings():
    tok = Tokenizer()
    for phrasings in (PHRASINGS, HELD_OUT_PHRASINGS):
        _, captions, _ = MovingMNIST(300, phrasings=phrasings, seed=0).batch(range(300))
        assert (tok(captions, warn=False) != tok.unk).all()


def test_empty_prompt_is_only_cls_and_padding():
    ids = Tokenizer()("")
    assert ids[0, 0] == Tokenizer().index[CLS] and (ids[0, 1:] == Tokenizer().pad).all()


def test_unknown_words_and_long_prompts_warn_and_still_encode():
    tok = Tokenizer(max_len=8)
    with pytest.warns(UserWarning, match=r"unknown word\(s\) \['12', 'flies'\]"):
        ids = tok("the digit 12 flies left")
    assert (ids[0, 3:5] == tok.index[UNK]).all()
    with pytest.warns(UserWarning, match="only the first 7"):
        assert tok("left " * 40).shape == (1, 8)
    with pytest.raises(TypeError, match="strings"):
        tok([3])


def test_padding_does_not_change_the_encoding_of_real_tokens():
    torch.manual_seed(0)
    enc = TextEncoder(len(Tokenizer())).eval()
    prompt = "the digit 3 moves left"
    long_pad, short_pad = Tokenizer(max_len=16)(prompt), Tokenizer(max_len=7)(prompt)
    n = 6  # [CLS] + five words
    assert torch.allclose(enc(long_pad)[0, :n], enc(short_pad)[0, :n], atol=1e-5)
    both = enc(torch.cat([long_pad, Tokenizer()("an 8 goes down")]))
    assert torch.allclose(both[0], enc(long_pad)[0], atol=1e-5)  # a batch neighbour changes nothing


def test_bad_ids_are_a_clear_error():
    enc = TextEncoder(10, max_len=8)
    with pytest.raises(ValueError, match="expected token ids"):
        enc(torch.zeros(2, 9, dtype=torch.long))
