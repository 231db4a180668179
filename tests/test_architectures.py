"""Every encoder hf-distill supports, on tiny random models built here: the terms each one trains, the
attention scores captured from it against its own attention probabilities, and what is refused.

`ENCODERS` builds a tiny sequence classifier of each architecture (eager attention, 4 layers of width
32, 4 heads). docs/architectures.md is the table these tests stand behind.
"""

import math

import pytest
import torch
from torch import nn
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DebertaConfig,
    DebertaForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from hf_distill import DistillationTrainer, create_student, losses
from hf_distill.attention import AttentionScoreRecorder
from hf_distill.attention.deberta import relative_positions
from tests.conftest import ALL_TERMS, offline_config

VOCAB = 99
TOKENS = dict(pad_token_id=1, bos_token_id=2, eos_token_id=3)


def _common(width, layers, heads, ffn, **overrides):
    values = dict(vocab_size=VOCAB, hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=ffn, max_position_embeddings=64, attn_implementation="eager", **TOKENS)
    values.update(overrides)
    return values


def bert(width=32, layers=4, heads=4, ffn=64, **kw):
    return BertForSequenceClassification(BertConfig(**_common(width, layers, heads, ffn, **kw)))


def roberta(width=32, layers=4, heads=4, ffn=64, **kw):
    return RobertaForSequenceClassification(RobertaConfig(**_common(width, layers, heads, ffn, **kw)))


def xlm_roberta(width=32, layers=4, heads=4, ffn=64, **kw):
    return XLMRobertaForSequenceClassification(XLMRobertaConfig(**_common(width, layers, heads, ffn, **kw)))


def electra(width=32, layers=4, heads=4, ffn=64, **kw):
    kw.setdefault("embedding_size", 24)
    return ElectraForSequenceClassification(ElectraConfig(**_common(width, layers, heads, ffn, **kw)))


def distilbert(width=32, layers=4, heads=4, ffn=64, **kw):
    values = dict(vocab_size=VOCAB, dim=width, n_layers=layers, n_heads=heads, hidden_dim=ffn, max_position_embeddings=64,
                  attn_implementation="eager", pad_token_id=1)
    values.update(kw)
    return DistilBertForSequenceClassification(DistilBertConfig(**values))


def deberta_v2(width=32, layers=4, heads=4, ffn=64, **kw):
    """DeBERTa-v2 style: separate position projections (`pos_key_proj`, `pos_query_proj`), no buckets, a conv."""
    values = dict(relative_attention=True, pos_att_type=["p2c", "c2p"], max_relative_positions=6, conv_kernel_size=3,
                  norm_rel_ebd="layer_norm")
    values.update(kw)
    return DebertaV2ForSequenceClassification(DebertaV2Config(**_common(width, layers, heads, ffn, **values)))


def deberta_v3(width=32, layers=4, heads=4, ffn=64, **kw):
    """DeBERTa-v3 style: shared query/key projections for positions, log buckets, no absolute positions."""
    values = dict(relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=4, max_relative_positions=16,
                  share_att_key=True, position_biased_input=False, norm_rel_ebd="layer_norm", type_vocab_size=0)
    values.update(kw)
    return DebertaV2ForSequenceClassification(DebertaV2Config(**_common(width, layers, heads, ffn, **values)))


def modernbert(width=32, layers=4, heads=4, ffn=48, **kw):
    """Global attention in layers 0 and 3, a window of |i − j| ≤ 2 in layers 1 and 2; distinct rotary bases.

    `initializer_range=0.2`: at ModernBERT's default (0.02) its pre-LayerNorm layers barely change the residual
    stream of a tiny random model, so a copied layer's scores match its teacher layer's to ~1e-8, which the
    trainer's logs (6 decimals) show as 0.
    """
    values = dict(local_attention=4, global_attn_every_n_layers=3, global_rope_theta=1000.0, local_rope_theta=50.0,
                  cls_token_id=2, sep_token_id=3, initializer_range=0.2)
    values.update(kw)
    return ModernBertForSequenceClassification(ModernBertConfig(**_common(width, layers, heads, ffn, **values)))


def albert(width=32, layers=4, heads=4, ffn=64, **kw):
    kw.setdefault("embedding_size", 24)
    return AlbertForSequenceClassification(AlbertConfig(**_common(width, layers, heads, ffn, **kw)))


ENCODERS = {
    "bert": bert, "roberta": roberta, "xlm-roberta": xlm_roberta, "electra": electra, "distilbert": distilbert,
    "deberta-v2": deberta_v2, "deberta-v3": deberta_v3, "modernbert": modernbert, "albert": albert,
}
LAYER_COPIES = [name for name in ENCODERS if name != "albert"]  # ALBERT shares its layers


def build(name, seed=0, **overrides):
    torch.manual_seed(seed)
    return ENCODERS[name](**overrides).eval()


def batch(seed=0, length=10):
    """Two sequences, the first padded after 7 tokens."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (2, length), generator=generator)
    mask = torch.ones(2, length, dtype=torch.long)
    mask[0, 7:] = 0
    ids[0, 7:] = TOKENS["pad_token_id"]
    return ids, mask


def masked_probabilities(name, scores, mask, window):
    """softmax(A + the model's mask): padding keys (DeBERTa: padding queries too) and pairs outside the window."""
    allowed = mask.bool()[:, None, None, :]
    if name.startswith("deberta"):
        allowed = allowed & mask.bool()[:, None, :, None]
    if window is not None:
        positions = torch.arange(scores.shape[-1])
        allowed = allowed & ((positions[:, None] - positions[None, :]).abs() <= window)
    return scores.masked_fill(~allowed, torch.finfo(scores.dtype).min).softmax(-1)


def dataset(n=16, seed=0):
    from datasets import Dataset

    generator = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "labels": []}
    for _ in range(n):
        length = int(torch.randint(5, 13, (1,), generator=generator))
        rows["input_ids"].append(torch.randint(5, VOCAB, (length,), generator=generator).tolist())
        rows["labels"].append(int(torch.randint(0, 2, (1,), generator=generator)))
    return Dataset.from_dict(rows)


def collate(features):
    """Pads with the tiny models' pad token (1)."""
    longest = max(len(f["input_ids"]) for f in features)
    pad = TOKENS["pad_token_id"]
    return {
        "input_ids": torch.tensor([f["input_ids"] + [pad] * (longest - len(f["input_ids"])) for f in features]),
        "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"]))
                                        for f in features]),
        "labels": torch.tensor([f["labels"] for f in features]),
    }


def one_step(tmp_path, student, teacher, **weights):
    args = offline_config(tmp_path, max_steps=1, per_device_train_batch_size=8, learning_rate=1e-3, **weights)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset(),
                                  data_collator=collate)
    trainer.train()
    return next(entry for entry in trainer.state.log_history if "loss" in entry)


# ---------------------------------------------------------------------------------------- training steps


@pytest.mark.parametrize(
    "name, student_kind",
    [(name, "copied") for name in LAYER_COPIES] + [(name, "narrow") for name in ENCODERS],  # ALBERT: narrow only
)
def test_one_training_step_with_every_term_logs_each_term_finite(tmp_path, name, student_kind):
    teacher = build(name)
    torch.manual_seed(1)
    student = (create_student(teacher, layers=[1, 3]) if student_kind == "copied"
               else create_student(teacher, num_layers=2, hidden_size=16))
    logged = one_step(tmp_path, student, teacher, **ALL_TERMS)
    for term in ("task", "kd", "cosine", "hidden", "embedding", "attention"):
        assert math.isfinite(logged[f"loss_{term}"]), (term, logged)
    assert logged["loss_attention"] > 0 and logged["loss_hidden"] > 0


@pytest.mark.parametrize("name", ["modernbert", "deberta-v3"])
def test_attention_term_trains_with_non_reentrant_gradient_checkpointing(tmp_path, name):
    teacher = build(name)
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=16)
    before = {key: value.clone() for key, value in student.state_dict().items()}
    logged = one_step(tmp_path, student, teacher, task_weight=0, kd_weight=0, attention_weight=1.0,
                      gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})
    assert logged["loss_attention"] > 0
    query_key = [key for key in before if ("Wqkv" in key or "query_proj" in key) and key.endswith("weight")]
    assert query_key and all(not torch.equal(before[key], student.state_dict()[key]) for key in query_key)


# ---------------------------------------------------------------------------------------- captured scores


@pytest.mark.parametrize("name", list(ENCODERS))
def test_softmax_of_the_captured_scores_is_the_models_attention(name):
    model = build(name)
    recorder = AttentionScoreRecorder(model)
    ids, mask = batch()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    scores = recorder.scores()
    assert len(scores) == len(out.attentions) == 4 and scores[0].shape == (2, 4, 10, 10)
    for layer, (layer_scores, probabilities) in enumerate(zip(scores, out.attentions)):
        expected = probabilities.float()
        torch.testing.assert_close(masked_probabilities(name, layer_scores, mask, recorder.windows[layer]), expected,
                                   atol=1e-6, rtol=0)
    assert not torch.allclose(scores[0].sum(-1), torch.ones_like(scores[0].sum(-1)))  # pre-softmax


def test_modernbert_local_layers_score_only_inside_their_window():
    model = build("modernbert")
    recorder = AttentionScoreRecorder(model)
    assert recorder.windows == [None, 2, 2, None]  # local_attention=4: |i − j| ≤ 2 in the local layers
    ids, mask = batch()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    outside = (torch.arange(10)[:, None] - torch.arange(10)[None, :]).abs() > 2
    scores = recorder.scores()
    for layer in (1, 2):
        assert torch.all(scores[layer][..., outside] == 0) and torch.all(scores[layer][..., ~outside] != 0)
        # The model's own probabilities are 0 outside the window for every real query. (The last padding query of
        # the first sequence has only padding keys inside its window: the eager kernel spreads it uniformly over
        # all ten keys, so it is left out.)
        assert torch.all(out.attentions[layer][1][..., outside] == 0)
        assert torch.all(out.attentions[layer][0][:, :7][..., outside[:7]] == 0)
    assert torch.all(out.attentions[0][1][..., outside] > 0) and torch.all(scores[0][..., outside] != 0)


def test_modernbert_scores_include_the_rotary_positions():
    """The same token at two positions scores differently against a third: the rotation is in the scores."""
    model = build("modernbert")
    recorder = AttentionScoreRecorder(model)
    ids = torch.tensor([[7, 9, 7, 11, 7, 13]])
    with torch.no_grad():
        model(input_ids=ids)
    first_layer = recorder.scores()[0][0]  # no attention before it: identical inputs at positions 0, 2, 4
    assert not torch.allclose(first_layer[:, 0, 3], first_layer[:, 2, 3], atol=1e-4)


@pytest.mark.parametrize("name", ["bert", "distilbert", "modernbert", "albert"])  # DeBERTa-v2/v3: eager only
def test_captured_scores_do_not_depend_on_the_attention_kernel(name):
    """Compared on the pairs of real tokens, the pairs the attention term reads (float32 rounding: 1e-5).

    A padding token's own hidden state may differ between kernels: in a ModernBERT local layer the last padding
    query of the first sequence sees only padding keys, and eager attention (uniform over every key) and SDPA
    treat that empty row differently, so from the next layer on that token's scores differ, in the model itself.
    """
    ids, mask = batch()
    real = (mask.bool()[:, None, :, None] & mask.bool()[:, None, None, :]).expand(2, 4, 10, 10)
    recorded = []
    for implementation in ("eager", "sdpa"):
        model = build(name, attn_implementation=implementation)
        recorder = AttentionScoreRecorder(model)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        recorded.append(recorder.scores())
    for eager, sdpa in zip(*recorded):
        torch.testing.assert_close(eager[real], sdpa[real], atol=1e-5, rtol=1e-5)
        assert not torch.equal(eager[real], torch.zeros_like(eager[real]))


@pytest.mark.parametrize("buckets, max_position", [(-1, -1), (4, 16), (8, 64), (256, 512)])
def test_deberta_relative_positions_are_the_models(buckets, max_position):
    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

    states = torch.zeros(1, 40, 8)
    expected = build_relative_position(states, states, bucket_size=buckets, max_position=max_position)[0]
    torch.testing.assert_close(relative_positions(40, buckets, max_position, states.device), expected)


def test_deberta_scores_without_the_position_terms_are_scaled_by_the_terms_listed():
    """`pos_att_type` sets the scale √(d·s) even where `relative_attention` is off (DeBERTa's own rule)."""
    model = build("deberta-v2", relative_attention=False)
    recorder = AttentionScoreRecorder(model)
    ids, mask = batch()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    probabilities = masked_probabilities("deberta", recorder.scores()[2], mask, None)
    torch.testing.assert_close(probabilities, out.attentions[2], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["modernbert", "deberta-v2", "deberta-v3", "albert"])
def test_attention_term_sends_gradients_into_the_query_and_key_weights(name):
    teacher = build(name)
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=16).train()
    recorders = AttentionScoreRecorder.pair(student, teacher, [2, 4])
    ids, mask = batch()
    student(input_ids=ids, attention_mask=mask)
    with torch.no_grad():
        teacher(input_ids=ids, attention_mask=mask)
    student_scores, teacher_scores = (recorder.scores() for recorder in recorders)
    loss = sum(losses.attention_score_mse_loss(s, teacher_scores[g - 1], mask) for s, g in zip(student_scores, [2, 4]))
    loss.backward()
    grads = {key: parameter.grad for key, parameter in student.named_parameters()}
    if name == "modernbert":
        last = grads["model.layers.1.attn.Wqkv.weight"]  # rows: queries, keys, values (16 each)
        assert last[:32].abs().sum() > 0 and torch.all(last[32:] == 0)  # the scores use no values
    else:
        query = [key for key in grads if key.endswith(("query_proj.weight", "attention.query.weight"))]
        key_ = [key for key in grads if key.endswith(("key_proj.weight", "attention.key.weight"))]
        assert query and key_ and all(grads[k].abs().sum() > 0 for k in query + key_)
    if name == "deberta-v2":  # c2p and p2c train their own projections and the position table
        for part in ("pos_key_proj.weight", "pos_query_proj.weight", "rel_embeddings.weight"):
            assert all(grads[k].abs().sum() > 0 for k in grads if k.endswith(part)), part
    if name == "deberta-v3":
        assert grads["deberta.encoder.rel_embeddings.weight"].abs().sum() > 0


def test_mapped_local_and_global_layers_are_compared_inside_the_narrower_window():
    teacher = build("modernbert")  # windows [None, 2, 2, None]
    torch.manual_seed(1)
    student = create_student(teacher, num_layers=2, hidden_size=16)  # windows [None, 2]
    student_scores, teacher_scores = AttentionScoreRecorder.pair(student, teacher, [2, 4])
    # student layer 1 (global) -> teacher layer 2 (local); student layer 2 (local) -> teacher layer 4 (global);
    # teacher layer 3 (local, unmapped) keeps its own window.
    assert student_scores.windows == [2, 2] and teacher_scores.windows == [None, 2, 2, 2]
    alone = AttentionScoreRecorder(teacher)
    ids, mask = batch()
    with torch.no_grad():
        student(input_ids=ids, attention_mask=mask)
        teacher(input_ids=ids, attention_mask=mask)
    outside = (torch.arange(10)[:, None] - torch.arange(10)[None, :]).abs() > 2
    s, t = student_scores.scores(), teacher_scores.scores()
    assert torch.all(s[0][..., outside] == 0) and torch.all(t[3][..., outside] == 0)
    torch.testing.assert_close(t[3][..., ~outside], alone.scores()[3][..., ~outside])


# ---------------------------------------------------------------------------------------- students


TEACHER_WIDTH, TEACHER_FFN = 40, 72  # numbers no other field of the tiny configs uses


def _integers(value):
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        return [number for item in value for number in _integers(item)]
    if isinstance(value, dict):
        return [number for item in value.values() for number in _integers(item)]
    return []


@pytest.mark.parametrize("name", list(ENCODERS) + ["deberta-v3-explicit"])
def test_narrow_student_config_and_weights_keep_none_of_the_teachers_widths(name):
    """No config field, and no weight dimension, of a narrow student still has the teacher's width or FFN width.

    `deberta-v3-explicit` sets `pooler_hidden_size`, `attention_head_size` and `embedding_size` in the config, as
    released DeBERTa checkpoints do; a kept `pooler_hidden_size` was the narrow DeBERTa crash (mat1 and mat2 shapes
    cannot be multiplied, in the pooler).
    """
    overrides = {}
    if name == "deberta-v3-explicit":
        name, overrides = "deberta-v3", dict(pooler_hidden_size=TEACHER_WIDTH, attention_head_size=TEACHER_WIDTH // 4,
                                             embedding_size=TEACHER_WIDTH)
    if name in ("electra", "albert"):
        overrides["embedding_size"] = TEACHER_WIDTH  # factorised embeddings as wide as the teacher
    teacher = build(name, width=TEACHER_WIDTH, ffn=TEACHER_FFN, **overrides)
    teacher_widths = {TEACHER_WIDTH, TEACHER_FFN}
    assert teacher_widths <= set(_integers(teacher.config.to_dict()))  # the check below can fail
    student = create_student(teacher, num_layers=2, hidden_size=16)
    carried = {key: value for key, value in student.config.to_dict().items()
               if teacher_widths & set(_integers(value))}
    assert not carried, carried
    shapes = {key: tuple(value.shape) for key, value in student.state_dict().items()
              if teacher_widths & set(value.shape)}
    assert not shapes, shapes
    ids, mask = batch()
    logits = student(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()


def test_narrow_student_keeps_the_teachers_feed_forward_ratio():
    teacher = build("modernbert", width=TEACHER_WIDTH, ffn=60)  # 1.5 × width, as ModernBERT-base
    assert create_student(teacher, num_layers=2, hidden_size=16).config.intermediate_size == 24
    assert create_student(teacher, num_layers=2, hidden_size=16, intermediate_size=20).config.intermediate_size == 20


def test_copied_modernbert_layers_keep_their_attention_kind(caplog):
    teacher = build("modernbert")  # global, local, local, global
    same_period = create_student(teacher, layers=[0, 3])
    assert AttentionScoreRecorder(same_period).windows == [None, None]
    student = create_student(teacher, layers=[1, 3])  # local, global
    windows = AttentionScoreRecorder(student).windows
    if getattr(student.config, "layer_types", None) is not None:  # transformers 5.x: any pattern is kept
        assert windows == [2, None]
    else:  # 4.57: layer 0 is always global, so the pattern cannot be kept, and the user is told
        assert windows == [None, 2]
        assert "global_attn_every_n_layers" in caplog.text and "[0, 1]" in caplog.text
    # The copy is the teacher's layer, less the attention LayerNorm that ModernBERT's first layer does not have.
    copied, original = student.state_dict(), teacher.state_dict()
    for key in copied:
        if key.startswith("model.layers.1."):
            assert torch.equal(copied[key], original[key.replace("layers.1.", "layers.3.")]), key
    assert "model.layers.0.attn_norm.weight" not in copied
    assert torch.equal(copied["model.layers.0.attn.Wqkv.weight"], original["model.layers.1.attn.Wqkv.weight"])


# ---------------------------------------------------------------------------------------- refusals


def test_albert_layers_cannot_be_copied_one_by_one():
    teacher = build("albert")
    with pytest.raises(ValueError, match=r"shares its layer weights.*no separate layers to copy.*hidden_size=") as error:
        create_student(teacher, layers=[0, 2])
    assert "num_hidden_groups=1" in str(error.value)
    with pytest.raises(ValueError, match="shares its layer weights"):
        create_student(teacher, num_layers=2)
    assert create_student(teacher, num_layers=2, hidden_size=16).config.num_hidden_layers == 2


def test_albert_with_several_attention_blocks_per_layer_refuses_the_attention_term(tmp_path):
    teacher = build("albert", inner_group_num=2)
    student = create_student(teacher, num_layers=2, hidden_size=16)
    with pytest.raises(ValueError, match=r"student's scores cannot be captured.*inner_group_num=2.*attention_weight=0"):
        DistillationTrainer(model=student, teacher_model=teacher, args=offline_config(tmp_path, attention_weight=1.0))


def test_modernbert_run_unpadded_by_flash_attention_refuses_the_attention_term(tmp_path):
    """transformers 4.57 runs ModernBERT's flash attention on unpadded tokens with a rotary module of its own."""
    teacher = build("modernbert")
    student = create_student(teacher, num_layers=2, hidden_size=16)
    unpadded = type("ModernBertUnpaddedRotaryEmbedding", (nn.Module,), {})
    for model in (student, teacher):
        for layer in model.model.layers:
            layer.attn.rotary_emb = unpadded()
    with pytest.raises(ValueError, match=r"unpadded tokens.*attn_implementation='sdpa' or 'eager'"):
        DistillationTrainer(model=student, teacher_model=teacher, args=offline_config(tmp_path, attention_weight=1.0))


def test_fused_query_key_value_without_a_capture_refuses_the_attention_term(tmp_path):
    """DeBERTa (v1) fuses its projections into `in_proj`: no capture reads its scores."""
    torch.manual_seed(0)
    teacher = DebertaForSequenceClassification(DebertaConfig(**_common(32, 4, 4, 64, relative_attention=True,
                                                                       pos_att_type=["p2c", "c2p"]))).eval()
    student = create_student(teacher, layers=[1, 3])
    with pytest.raises(ValueError, match=r"no separate query/key projections.*attention_weight=0"):
        DistillationTrainer(model=student, teacher_model=teacher, args=offline_config(tmp_path, attention_weight=1.0))
    args = offline_config(tmp_path, kd_weight=1.0, hidden_weight=1.0, max_steps=1, per_device_train_batch_size=8)
    DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset(),
                        data_collator=collate).train()  # the other terms train
