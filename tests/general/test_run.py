"""General distillation: raw-text data, DistilBERT's triple loss, DistilBERT init, TinyBERT general -> task hand-over."""

import json
import math
import os

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    BertForMaskedLM,
    BertModel,
    BertTokenizerFast,
)

from hf_distill import DistillationConfig
from hf_distill.general.distilbert_init import bert_to_distilbert
from hf_distill.general.run import masked_lm_loss, run_general
from hf_distill.general.trainer import GeneralDistillationTrainer
from hf_distill.general.arguments import GeneralModelArguments, TextDataArguments
from hf_distill.general.masking import DataCollatorForDistillationMLM
from hf_distill.recipes import parse_recipe
from hf_distill.general.text import keep_sequence, load_text_data, make_sequences
from hf_distill.runs import HEADS_WEIGHTS_NAME

from tests.conftest import offline_config, tiny_bert_config

RECIPES = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "general")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(94)]  # vocabulary of 99, as tiny_bert_config


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS) + "\n")
    return BertTokenizerFast(str(vocab), model_max_length=64)


def _text_file(path, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    lines = []
    for _ in range(n):
        size = int(torch.randint(8, 40, (1,), generator=g))
        lines.append(" ".join(f"w{int(i)}" for i in torch.randint(0, 94, (size,), generator=g)))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ------------------------------------------------------------------ data


def test_chunking_and_packing(tokenizer):
    texts = ["w1 w2 w3 w4 w5", "", "w6 w7"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    w = lambda i: tokenizer.convert_tokens_to_ids(f"w{i}")  # noqa: E731
    chunked = make_sequences(texts, tokenizer, max_seq_length=5, packing=False)
    assert chunked == [[cls, w(1), w(2), w(3), sep], [cls, w(4), w(5), sep], [cls, w(6), w(7), sep]]
    packed = make_sequences(texts, tokenizer, max_seq_length=5, packing=True)
    # documents joined with [SEP], cut into full sequences of 3 text tokens
    assert packed == [[cls, w(1), w(2), w(3), sep], [cls, w(4), w(5), sep, sep], [cls, w(6), w(7), sep]]


def test_distilbert_filters():
    unk = 1
    assert not keep_sequence([2, 5, 3], unk, min_length=4, max_unk_ratio=None)
    assert keep_sequence([2, 5, 6, 3], unk, min_length=4, max_unk_ratio=None)
    assert not keep_sequence([2, 1, 1, 3], unk, min_length=None, max_unk_ratio=0.5)  # 2/4 = 0.5: dropped
    assert keep_sequence([2, 1, 5, 6, 3], unk, min_length=None, max_unk_ratio=0.5)  # 1/5


def test_load_text_data_from_files_with_filters(tmp_path, tokenizer):
    train = _text_file(tmp_path / "train.txt", n=30)
    (tmp_path / "extra.txt").write_text("w1 w2\nqqq zzz yyy xxx vvv\n")  # too short; mostly [UNK]
    data_args = TextDataArguments(
        train_file=f"{train},{tmp_path / 'extra.txt'}", max_seq_length=16, min_length=6, max_unk_ratio=0.5
    )
    data = load_text_data(data_args, tokenizer)
    assert data.validation is None and not data.streaming
    assert data.train.column_names == ["input_ids", "attention_mask"]
    lengths = [len(ids) for ids in data.train["input_ids"]]
    assert max(lengths) <= 16 and min(lengths) >= 6
    assert not any(ids.count(tokenizer.unk_token_id) / len(ids) >= 0.5 for ids in data.train["input_ids"])
    # the same text without filters gives more sequences, and streaming reads the same sequences
    unfiltered = load_text_data(TextDataArguments(train_file=data_args.train_file, max_seq_length=16), tokenizer)
    assert len(unfiltered.train) > len(data.train)
    streamed = load_text_data(
        TextDataArguments(train_file=train, max_seq_length=16, streaming=True, max_train_samples=5), tokenizer
    )
    assert streamed.streaming
    reference = load_text_data(TextDataArguments(train_file=train, max_seq_length=16), tokenizer)
    assert [row["input_ids"] for row in streamed.train] == reference.train["input_ids"][:5]


def test_bad_text_arguments_are_clear_errors(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="dataset_name .* or train_file"):
        TextDataArguments()
    with pytest.raises(ValueError, match="must end in"):
        load_text_data(TextDataArguments(train_file=str(tmp_path / "a.docx")), tokenizer)
    path = tmp_path / "t.csv"
    path.write_text("body\nw1 w2 w3\n")
    with pytest.raises(ValueError, match="no column 'text'.*set text_column"):
        load_text_data(TextDataArguments(train_file=str(path)), tokenizer)


# ------------------------------------------------------------------ DistilBERT's triple loss


def _mlm_models(seed=0):
    torch.manual_seed(seed)
    teacher = BertForMaskedLM(tiny_bert_config()).eval()
    torch.manual_seed(seed + 1)
    student = BertForMaskedLM(tiny_bert_config(num_hidden_layers=2)).train()
    return teacher, student


def test_triple_loss_matches_hand_computation(tmp_path, tokenizer):
    teacher, student = _mlm_models()
    config = offline_config(tmp_path, task_weight=0.0, kd_weight=5.0, mlm_weight=2.0, cosine_weight=1.0)
    preset = DistillationConfig.distilbert_pretraining(output_dir=str(tmp_path))
    assert preset.loss_weights == config.loss_weights == {
        "task": 0.0, "kd": 5.0, "mlm": 2.0, "cosine": 1.0, "hidden": 0.0, "embedding": 0.0, "pooled": 0.0, "attention": 0.0, "attention_relation": 0.0, "value_relation": 0.0, "query_relation": 0.0, "key_relation": 0.0
    }
    assert preset.temperature == config.temperature == 2.0
    trainer = GeneralDistillationTrainer(model=student, teacher_model=teacher, args=config)
    collator = DataCollatorForDistillationMLM(tokenizer, generator=torch.Generator().manual_seed(3))
    features = []
    for length in (12, 9, 15):
        ids = [tokenizer.cls_token_id, *torch.randint(5, 99, (length - 2,)).tolist(), tokenizer.sep_token_id]
        features.append({"input_ids": ids, "attention_mask": [1] * length})
    batch = collator(features)
    loss = trainer.compute_loss(student, dict(batch))

    # by hand: DistilBERT's three terms, soft targets on the masked positions (the default kd_positions="masked",
    # distiller.py with --restrict_ce_to_mask; test_reference.py checks reference="distilbert"'s every real token)
    with torch.no_grad():
        t_out = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    s_out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
    labels, mask = batch["labels"], batch["attention_mask"].bool()
    rows = labels != -100  # soft targets over the masked positions (the rows where labels != -100)
    T = 2.0
    p_t = F.softmax(t_out.logits[rows] / T, dim=-1)
    kl = (p_t * (p_t.log() - F.log_softmax(s_out.logits[rows] / T, dim=-1))).sum(-1).mean() * T**2
    mlm = F.cross_entropy(s_out.logits[rows], labels[rows])
    h_s, h_t = s_out.hidden_states[-1][mask], t_out.hidden_states[-1][mask]
    cos = (1 - (h_s * h_t).sum(-1) / (h_s.norm(dim=-1) * h_t.norm(dim=-1))).mean()  # all non-padding tokens
    expected = 5.0 * kl + 2.0 * mlm + 1.0 * cos
    assert rows.sum() == math.ceil(0.15 * (mask.sum() - 2 * 3))  # 15% of the non-special tokens
    assert torch.allclose(loss, expected, atol=1e-5), (loss, expected)
    assert kl > 0 and mlm > 0 and cos > 0


def test_distilbert_init_reproduces_the_bert_teacher():
    torch.manual_seed(0)
    config = tiny_bert_config(hidden_act="gelu")
    teacher = BertForMaskedLM(config).eval()
    with torch.no_grad():  # a non-zero segment-0 embedding, so folding it into the positions matters
        teacher.bert.embeddings.token_type_embeddings.weight.normal_()
    full = bert_to_distilbert(teacher, layers=[0, 1, 2, 3]).eval()
    ids = torch.randint(5, 99, (2, 11))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    # with every layer copied, the DistilBERT student computes exactly the teacher's MLM logits
    assert torch.allclose(full(input_ids=ids, attention_mask=mask).logits,
                          teacher(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
    student = bert_to_distilbert(teacher, num_layers=2)
    assert type(student).__name__ == "DistilBertForMaskedLM" and student.config.n_layers == 2
    assert torch.equal(student.distilbert.transformer.layer[1].ffn.lin1.weight,
                       teacher.bert.encoder.layer[3].intermediate.dense.weight)  # layers [0, 3]
    assert not any("token_type" in key for key in student.state_dict())
    with pytest.raises(ValueError, match="gelu and relu"):
        bert_to_distilbert(BertForMaskedLM(tiny_bert_config(hidden_act="silu")), num_layers=2)


def test_masked_lm_distillation_needs_a_masked_lm_teacher(tmp_path, tokenizer):
    teacher_dir = tmp_path / "teacher"
    BertModel(tiny_bert_config()).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    config = offline_config(tmp_path / "out", task_weight=0.0, kd_weight=5.0, mlm_weight=2.0,
                            teacher_model_name_or_path=str(teacher_dir))
    data_args = TextDataArguments(train_file=_text_file(tmp_path / "t.txt"), max_seq_length=16)
    with pytest.raises(ValueError, match="without a masked-LM head.*tinybert_general"):
        run_general(GeneralModelArguments(student_num_layers=2), data_args, config)


def test_distilbert_recipe_runs_end_to_end(tmp_path, tokenizer):
    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(0)
    BertForMaskedLM(tiny_bert_config()).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    (train, valid) = (_text_file(tmp_path / "train.txt", 24), _text_file(tmp_path / "valid.txt", 8, seed=1))
    model_args, data_args, config = parse_recipe(
        os.path.join(RECIPES, "distilbert.yaml"),
        [
            "--teacher_model_name_or_path", str(teacher_dir), "--student_layers", "0,2",
            "--dataset_name", "", "--train_file", train, "--validation_file", valid, "--max_seq_length", "24",
            "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--per_device_train_batch_size", "8",
            "--gradient_accumulation_steps", "2", "--logging_steps", "1", "--save_strategy", "no",
            "--use_cpu", "true", "--disable_tqdm", "true", "--min_length", "6",
        ],
    )
    results = run_general(model_args, data_args, config)
    assert results["objective"] == "masked_lm" and results["student"]["architecture"] == "DistilBertForMaskedLM"
    assert set(results["loss_terms"]["last"]) == {"loss", "loss_kd", "loss_mlm", "loss_cosine", "step"}
    assert results["evaluation"]["student"]["masked_tokens"] == results["evaluation"]["teacher"]["masked_tokens"] > 0
    # the saved student loads with plain from_pretrained, and results.json is written
    from transformers import AutoModelForMaskedLM

    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    assert type(reloaded).__name__ == "DistilBertForMaskedLM"
    assert json.load(open(tmp_path / "out" / "results.json"))["compression"] > 1
    # ... and starts DistilBERT's task distillation (recipes/glue/distilbert.yaml: kd + task + cosine)
    task_student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out", num_labels=2)
    task_teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, num_labels=2)
    task_config = offline_config(tmp_path / "task", task_weight=0.5, kd_weight=0.5, cosine_weight=1.0)
    trainer = GeneralDistillationTrainer(model=task_student, teacher_model=task_teacher, args=task_config)
    batch = {"input_ids": torch.randint(5, 99, (2, 7)), "attention_mask": torch.ones(2, 7, dtype=torch.long),
             "labels": torch.tensor([0, 1])}
    assert torch.isfinite(trainer.compute_loss(task_student, batch))


def test_fixed_masking_evaluation_is_the_same_for_every_model(tokenizer):
    teacher, _ = _mlm_models()
    rows = Dataset.from_dict({
        "input_ids": [[2, *range(5, 5 + n), 3] for n in (10, 12, 7)],
        "attention_mask": [[1] * (n + 2) for n in (10, 12, 7)],
    })
    collator = DataCollatorForDistillationMLM(tokenizer)
    first = masked_lm_loss(teacher, rows, collator, batch_size=2, seed=5)
    again = masked_lm_loss(teacher, rows, collator, batch_size=2, seed=5)
    assert first == again and first["masked_tokens"] > 0
    assert math.isclose(first["perplexity"], math.exp(first["mlm_loss"]), rel_tol=1e-3)


# ------------------------------------------------------------------ TinyBERT general stage -> task stage


def test_tinybert_general_stage_hands_over_to_the_task_stage(tmp_path, tokenizer):
    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(0)
    BertModel(tiny_bert_config(hidden_size=64, intermediate_size=128)).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    general_dir = tmp_path / "general"
    model_args, data_args, config = parse_recipe(
        os.path.join(RECIPES, "tinybert_general.yaml"),
        [
            "--teacher_model_name_or_path", str(teacher_dir), "--student_num_layers", "2",
            "--student_hidden_size", "32", "--student_intermediate_size", "64", "--student_num_attention_heads", "4",
            "--dataset_name", "", "--train_file", _text_file(tmp_path / "t.txt", 20), "--validation_ratio", "0.2",
            "--max_seq_length", "24", "--output_dir", str(general_dir), "--max_steps", "4", "--learning_rate", "1e-3",
            "--warmup_ratio", "0",
            "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "1", "--logging_steps", "1",
            "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true",
        ],
    )
    results = run_general(model_args, data_args, config)
    assert results["objective"] == "intermediate_layers"
    assert results["recipe"]["layer_map"] == [2, 4]
    assert set(results["loss_terms"]["first"]) == {"loss", "loss_hidden", "loss_embedding", "loss_attention", "step"}
    evaluation = results["evaluation"]
    assert 0 < evaluation["distillation_loss"]["eval_loss"] < evaluation["distillation_loss_before"]["eval_before_loss"]
    assert results["distillation_heads"] == HEADS_WEIGHTS_NAME
    saved_heads = safetensors.torch.load_file(general_dir / HEADS_WEIGHTS_NAME)
    assert {tuple(v.shape) for k, v in saved_heads.items() if k.endswith("weight")} == {(64, 32)}
    student = AutoModel.from_pretrained(general_dir)
    assert type(student).__name__ == "BertModel" and student.config.hidden_size == 32

    # task stage (recipes/glue/tinybert_intermediate.yaml's losses): the general student and its heads carry over
    task_teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, num_labels=2)
    task_student = AutoModelForSequenceClassification.from_pretrained(general_dir, num_labels=2)
    assert torch.equal(task_student.bert.encoder.layer[1].output.dense.weight,
                       student.encoder.layer[1].output.dense.weight)
    task_config = offline_config(
        tmp_path / "task", task_weight=0.0, kd_weight=0.0, embedding_weight=1.0, hidden_weight=1.0,
        attention_weight=1.0, distillation_heads_path=str(general_dir),
    )
    trainer = GeneralDistillationTrainer(model=task_student, teacher_model=task_teacher, args=task_config)
    loaded = trainer.distillation_heads.state_dict()
    assert set(loaded) == set(saved_heads)
    assert all(torch.equal(loaded[key], saved_heads[key]) for key in saved_heads)


def test_general_recipes_parse(tmp_path):
    for name in ("distilbert.yaml", "tinybert_general.yaml", "tinybert_general_offline.yaml"):
        model_args, data_args, config = parse_recipe(os.path.join(RECIPES, name), ["--output_dir", str(tmp_path)])
        assert isinstance(model_args, GeneralModelArguments)
        assert isinstance(data_args, TextDataArguments)
        assert isinstance(config, DistillationConfig) and config.task_weight == 0.0
    model_args, data_args, config = parse_recipe(os.path.join(RECIPES, "distilbert.yaml"), ["--output_dir", str(tmp_path)])
    assert (config.kd_weight, config.mlm_weight, config.cosine_weight, config.temperature) == (5.0, 2.0, 1.0, 2.0)
    assert model_args.student_architecture == "distilbert" and model_args.layer_list == [0, 2, 4, 7, 9, 11]
    assert (data_args.mlm_probability, data_args.mlm_smoothing, data_args.min_length, data_args.max_unk_ratio) == (
        0.15, 0.7, 12, 0.5
    )
    _, _, config = parse_recipe(os.path.join(RECIPES, "tinybert_general.yaml"), ["--output_dir", str(tmp_path)])
    assert config.loss_weights == DistillationConfig.tinybert("intermediate", output_dir=str(tmp_path)).loss_weights


def test_task_weight_is_refused_on_unlabelled_text(tmp_path, tokenizer):
    config = offline_config(tmp_path, task_weight=0.5, kd_weight=5.0, teacher_model_name_or_path="x/y")
    data_args = TextDataArguments(train_file=_text_file(tmp_path / "t.txt"))
    with pytest.raises(ValueError, match="set task_weight=0"):
        run_general(GeneralModelArguments(student_num_layers=2), data_args, config)


def test_a_teacher_tokenizer_is_refused_by_the_general_runner(tmp_path, tokenizer):
    config = offline_config(tmp_path, task_weight=0.0, kd_weight=5.0, teacher_model_name_or_path="x/y",
                            teacher_tokenizer_name_or_path="x/z")
    data_args = TextDataArguments(train_file=_text_file(tmp_path / "t.txt"))
    with pytest.raises(ValueError, match="teacher_tokenizer_name_or_path is for task recipes"):
        run_general(GeneralModelArguments(student_num_layers=2), data_args, config)


def test_streamed_text_trains_with_max_steps(tmp_path, tokenizer):
    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(0)
    BertForMaskedLM(tiny_bert_config()).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    data_args = TextDataArguments(train_file=_text_file(tmp_path / "t.txt", 20), streaming=True, max_seq_length=16,
                                  mlm_smoothing=0.7)
    config = offline_config(tmp_path / "out", task_weight=0.0, kd_weight=5.0, mlm_weight=2.0, cosine_weight=1.0,
                            teacher_model_name_or_path=str(teacher_dir), per_device_train_batch_size=4)
    with pytest.raises(ValueError, match="set max_steps"):
        run_general(GeneralModelArguments(student_num_layers=2), data_args, config)
    config = offline_config(tmp_path / "out", task_weight=0.0, kd_weight=5.0, mlm_weight=2.0, cosine_weight=1.0,
                            teacher_model_name_or_path=str(teacher_dir), per_device_train_batch_size=4, max_steps=2)
    results = run_general(GeneralModelArguments(student_num_layers=2), data_args, config)
    assert results["data"]["streaming"] and results["train"]["global_step"] == 2
    assert results["student"]["architecture"] == "BertForMaskedLM" and results["student"]["num_layers"] == 2
