import pytest
import torch

from hf_distill.layers import AttentionScoreRecorder, DistillationHeads, parse_layer_map, resolve_layer_map
from tests.conftest import tiny_bert_config, tiny_teacher


def test_uniform_map_is_tinybert_g_of_m():
    assert resolve_layer_map("uniform", 12, 4) == [3, 6, 9, 12]
    assert resolve_layer_map("uniform", 6, 3) == [2, 4, 6]


def test_last_and_explicit_maps():
    assert resolve_layer_map("last", 6, 3) == [4, 5, 6]
    assert resolve_layer_map([1, 3, 6], 6, 3) == [1, 3, 6]
    assert resolve_layer_map("1,3,6", 6, 3) == [1, 3, 6]
    assert parse_layer_map("[2, 4, 6]") == [2, 4, 6]


@pytest.mark.parametrize(
    "layer_map, n, m, message",
    [
        ("uniform", 6, 4, "multiple"),
        ([0, 2, 4], 6, 3, "out of range"),
        ([2, 4, 7], 6, 3, "out of range"),
        ([2, 4], 6, 3, "one teacher layer"),
        ("last", 2, 3, "no deeper"),
        ("every-other", 6, 3, "not understood"),
    ],
)
def test_bad_layer_maps_name_the_fix(layer_map, n, m, message):
    with pytest.raises(ValueError, match=message):
        resolve_layer_map(layer_map, n, m)


def test_recorded_scores_are_pre_softmax_and_match_hf_eager_probabilities():
    model = tiny_teacher()
    recorder = AttentionScoreRecorder(model, model.config.num_attention_heads)
    input_ids = torch.tensor([[2, 7, 9, 11, 0], [3, 4, 5, 6, 8]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=mask, output_attentions=True)
    scores = recorder.scores()
    assert len(scores) == 4 and scores[0].shape == (2, 4, 5, 5)
    for layer_scores, probs in zip(scores, out.attentions):
        masked = layer_scores + (1 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        torch.testing.assert_close(masked.softmax(-1), probs, atol=1e-5, rtol=1e-4)
    # pre-softmax: rows do not sum to one
    assert not torch.allclose(scores[0].sum(-1), torch.ones(2, 4, 5))


def test_recorder_works_with_sdpa_attention_too():
    eager = tiny_teacher()
    sdpa = tiny_teacher(attn_implementation="sdpa")
    ids = torch.tensor([[2, 7, 9, 11]])
    rec_e = AttentionScoreRecorder(eager, 4)
    rec_s = AttentionScoreRecorder(sdpa, 4)
    with torch.no_grad():
        eager(input_ids=ids)
        sdpa(input_ids=ids)
    torch.testing.assert_close(rec_e.scores()[2], rec_s.scores()[2])


def test_recorder_handles_distilbert_q_lin_k_lin():
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(0)
    model = DistilBertModel(DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32,
                                             attn_implementation="eager")).eval()
    recorder = AttentionScoreRecorder(model, 2)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, 2, 3]]), output_attentions=True)
    torch.testing.assert_close(recorder.scores()[1].softmax(-1), out.attentions[1], atol=1e-5, rtol=1e-4)


def test_recorder_refuses_relative_position_scores():
    """4.57's BERT adds relative-position scores (a `distance_embedding`) for `relative_key`: refused.

    transformers 5.x dropped `relative_key`: its BERT keeps the field but uses absolute positions, so
    ``Q Kᵀ / √d`` is the whole score there, and the recorder captures it exactly instead of refusing.
    """
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification(tiny_bert_config(position_embedding_type="relative_key"))
    if any(name.endswith("distance_embedding") for name, _ in model.named_modules()):  # transformers 4.57
        with pytest.raises(ValueError, match=r"position_embedding_type='relative_key'.*attention_weight=0"):
            AttentionScoreRecorder(model, 4)
        return
    recorder = AttentionScoreRecorder(model, 4)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, 2, 3, 4]]), output_attentions=True)
    for scores, probabilities in zip(recorder.scores(), out.attentions):
        torch.testing.assert_close(scores.softmax(-1), probabilities, atol=1e-6, rtol=0)


def test_heads_exist_only_when_widths_differ_and_per_layer_gives_one_each():
    same = DistillationHeads(32, 32, 3, hidden=True, embedding=True, cosine=True)
    assert not same.has_parameters
    shared = DistillationHeads(16, 32, 3, hidden=True, embedding=True, cosine=False)
    assert len(shared.hidden) == 1 and shared.embedding is not None and shared.cosine is None
    per_layer = DistillationHeads(16, 32, 3, hidden=True, embedding=False, cosine=False, per_layer=True)
    assert len(per_layer.hidden) == 3
    hidden_states = [torch.randn(2, 5, 16) for _ in range(4)]
    out = per_layer(hidden_states)
    assert len(out["hidden"]) == 3 and out["hidden"][0].shape == (2, 5, 32)
    torch.testing.assert_close(out["hidden"][1], per_layer.hidden[1](hidden_states[2]))
