"""DistilBERT's dynamic masking: selection rate, 80/10/10 split, special tokens, frequency smoothing."""

import pytest
import torch
from transformers import BertTokenizerFast

from hf_distill.general.masking import (
    IGNORE_INDEX,
    DataCollatorForDistillationMLM,
    count_tokens,
    token_selection_weights,
)

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(95)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS) + "\n")
    return BertTokenizerFast(str(vocab))


def _batch(tokenizer, n=64, length=40, seed=0):
    """Sequences [CLS] w.. [SEP] of varied lengths (so there is padding), as tokenized features."""
    g = torch.Generator().manual_seed(seed)
    features = []
    for _ in range(n):
        size = int(torch.randint(length // 2, length + 1, (1,), generator=g))
        body = torch.randint(5, 100, (size,), generator=g).tolist()
        ids = [tokenizer.cls_token_id, *body, tokenizer.sep_token_id]
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return features


def test_selection_rate_split_and_untouched_specials(tokenizer):
    collator = DataCollatorForDistillationMLM(tokenizer, generator=torch.Generator().manual_seed(0))
    selected = maskable = masked = randomised = kept = 0
    for step in range(80):
        features = _batch(tokenizer, seed=step)
        batch = collator(features)
        original = tokenizer.pad(features, return_tensors="pt")["input_ids"]
        chosen = batch["labels"] != IGNORE_INDEX
        special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
        # specials and padding are never selected and never changed
        assert not (chosen & special).any()
        assert torch.equal(batch["input_ids"][special], original[special])
        assert torch.equal(batch["labels"][chosen], original[chosen])
        # unselected tokens are unchanged
        assert torch.equal(batch["input_ids"][~chosen], original[~chosen])
        # per batch, exactly ceil(15% of the maskable tokens) are selected (reference: n_tgt = ceil(p * N))
        n_maskable = int((~special).sum())
        assert int(chosen.sum()) == -(-15 * n_maskable // 100)
        selected += int(chosen.sum())
        maskable += n_maskable
        new = batch["input_ids"][chosen]
        old = original[chosen]
        masked += int((new == tokenizer.mask_token_id).sum())
        kept += int((new == old).sum())
        randomised += int(((new != old) & (new != tokenizer.mask_token_id)).sum())
        assert not torch.isin(new[new != tokenizer.mask_token_id], torch.tensor(tokenizer.all_special_ids)).any()
    assert selected > 20_000
    assert abs(selected / maskable - 0.15) < 0.002
    # 80/10/10; a random draw can hit the original token (1 in 95), counted here as kept
    assert abs(masked / selected - 0.8) < 0.015
    assert abs(randomised / selected - 0.1 * 94 / 95) < 0.01
    assert abs(kept / selected - (0.1 + 0.1 / 95)) < 0.01


def test_frequency_smoothed_selection_prefers_rare_tokens(tokenizer):
    # token w0 (id 5) is 20x more frequent than w1 (id 6) in the corpus and in the batches
    g = torch.Generator().manual_seed(1)
    features = []
    for _ in range(64):
        body = [5] * 40 + [6] * 2
        body = [body[i] for i in torch.randperm(len(body), generator=g)]
        ids = [tokenizer.cls_token_id, *body, tokenizer.sep_token_id]
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    counts = count_tokens((f["input_ids"] for f in features), len(tokenizer))
    assert counts[5] == 64 * 40 and counts[6] == 64 * 2 and counts[7] == 0

    def selection_rates(weights):
        collator = DataCollatorForDistillationMLM(
            tokenizer, token_weights=weights, generator=torch.Generator().manual_seed(0)
        )
        hits = torch.zeros(2)
        for _ in range(20):
            labels = collator(features)["labels"]
            hits += torch.tensor([(labels == 5).sum(), (labels == 6).sum()], dtype=torch.float32)
        return hits / torch.tensor([20 * 64 * 40, 20 * 64 * 2])

    uniform = selection_rates(None)
    smoothed = selection_rates(token_selection_weights(counts, 0.7, tokenizer.all_special_ids))
    # uniform: both at ~15%; smoothed: the rare token is selected far more often than the frequent one
    assert abs(uniform[0] - 0.15) < 0.01 and abs(uniform[1] - 0.15) < 0.03
    assert smoothed[1] > 3 * smoothed[0]
    # expected per-token odds ratio (40/2)^0.7 ≈ 8.1 before sampling without replacement flattens it
    assert smoothed[1] / smoothed[0] > 4


def test_token_selection_weights_by_hand():
    counts = torch.tensor([0, 1, 8, 1000])
    weights = token_selection_weights(counts, smoothing=0.7, special_ids=[3])
    # max(count, 1)^-0.7: 1, 1, 8^-0.7, special -> 0
    assert torch.allclose(weights, torch.tensor([1.0, 1.0, 8 ** -0.7, 0.0]))
    assert torch.equal(token_selection_weights(counts, smoothing=0.0), torch.ones(4))


def test_bad_collator_settings_are_clear_errors(tokenizer):
    with pytest.raises(ValueError, match="mlm_probability"):
        DataCollatorForDistillationMLM(tokenizer, mlm_probability=1.5)
    with pytest.raises(ValueError, match="keeps the token"):
        DataCollatorForDistillationMLM(tokenizer, mask_replace_prob=0.8, random_replace_prob=0.3)
    with pytest.raises(ValueError, match="must be >= 0"):
        token_selection_weights(torch.ones(3), smoothing=-1)


def test_tokenizer_without_mask_token_is_refused(tokenizer):
    import copy

    no_mask = copy.deepcopy(tokenizer)
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="has no mask token"):
        DataCollatorForDistillationMLM(no_mask)
