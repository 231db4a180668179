import pytest
import torch
from transformers import (
    BertForMaskedLM,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from hf_distill import create_student
from hf_distill.layers import resolve_layer_map
from hf_distill.students import block_top_layer_selection, uniform_layer_selection
from tests.conftest import tiny_bert_config, tiny_teacher


def test_uniform_selection_reproduces_distilbert_choice():
    assert uniform_layer_selection(12, 6) == [0, 2, 4, 7, 9, 11]
    assert uniform_layer_selection(4, 2) == [0, 3]
    with pytest.raises(ValueError):
        uniform_layer_selection(4, 5)


def test_block_top_selection_starts_each_student_layer_at_its_layer_map_target():
    assert block_top_layer_selection(12, 6) == [1, 3, 5, 7, 9, 11]
    assert block_top_layer_selection(6, 3) == [1, 3, 5]
    assert block_top_layer_selection(6, 4) == [0, 2, 3, 5]  # ⌊m·6/4⌋ − 1 when M does not divide N
    assert block_top_layer_selection(4, 1) == [3]
    # 0-based copy = TinyBERT's uniform map g(m) (1-based) minus one, wherever that map exists.
    for n, m in ((12, 6), (12, 4), (6, 3), (6, 2), (4, 4)):
        assert block_top_layer_selection(n, m) == [g - 1 for g in resolve_layer_map("uniform", n, m)]
    with pytest.raises(ValueError):
        block_top_layer_selection(4, 5)


def test_create_student_picks_layers_by_the_named_selection():
    teacher = tiny_teacher()  # 4 layers
    student = create_student(teacher, num_layers=2, layer_selection="block_top")
    for new, old in enumerate([1, 3]):
        torch.testing.assert_close(student.bert.encoder.layer[new].output.dense.weight,
                                   teacher.bert.encoder.layer[old].output.dense.weight, rtol=0, atol=0)
    uniform = create_student(teacher, num_layers=2)  # default: [0, 3]
    torch.testing.assert_close(uniform.bert.encoder.layer[0].output.dense.weight,
                               teacher.bert.encoder.layer[0].output.dense.weight, rtol=0, atol=0)
    with pytest.raises(ValueError, match="layer_selection='top'.*uniform, block_top"):
        create_student(teacher, num_layers=2, layer_selection="top")


def test_layers_are_copied_exactly_with_embeddings_and_head():
    teacher = tiny_teacher()
    student = create_student(teacher, layers=[0, 2])
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    torch.testing.assert_close(student.bert.encoder.layer[1].output.dense.weight,
                               teacher.bert.encoder.layer[2].output.dense.weight, rtol=0, atol=0)
    torch.testing.assert_close(student.bert.embeddings.word_embeddings.weight,
                               teacher.bert.embeddings.word_embeddings.weight, rtol=0, atol=0)
    torch.testing.assert_close(student.classifier.weight, teacher.classifier.weight, rtol=0, atol=0)
    # A copy, not shared storage: training the student leaves the teacher alone.
    assert student.classifier.weight.data_ptr() != teacher.classifier.weight.data_ptr()


def test_copying_every_layer_reproduces_the_teacher():
    teacher = tiny_teacher()
    student = create_student(teacher, num_layers=4).eval()
    ids = torch.tensor([[2, 5, 7, 9]])
    with torch.no_grad():
        torch.testing.assert_close(student(input_ids=ids).logits, teacher(input_ids=ids).logits)


def test_narrow_student_keeps_vocabulary_labels_and_heads():
    teacher = tiny_teacher(num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    student = create_student(teacher, num_layers=2, hidden_size=16, intermediate_size=24)
    cfg = student.config
    assert (cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers) == (16, 24, 2)
    assert cfg.vocab_size == teacher.config.vocab_size and cfg.num_attention_heads == 4
    assert cfg.id2label == teacher.config.id2label
    assert teacher.config.hidden_size == 32  # the teacher's config is untouched


def test_bad_arguments_name_the_fix():
    teacher = tiny_teacher()
    with pytest.raises(ValueError, match="distinct 0-based"):
        create_student(teacher, layers=[0, 4])
    with pytest.raises(ValueError, match="one or the other"):
        create_student(teacher, layers=[0, 1], hidden_size=16)
    with pytest.raises(ValueError, match="divisible"):
        create_student(teacher, num_layers=2, hidden_size=18)
    with pytest.raises(ValueError, match="needs num_layers"):
        create_student(teacher, hidden_size=16)


@pytest.mark.parametrize(
    "model",
    [
        lambda: RobertaForSequenceClassification(RobertaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=4,
                                                               num_attention_heads=2, intermediate_size=32)),
        lambda: ElectraForSequenceClassification(ElectraConfig(vocab_size=60, embedding_size=8, hidden_size=16,
                                                               num_hidden_layers=4, num_attention_heads=2,
                                                               intermediate_size=32)),
        lambda: DistilBertForSequenceClassification(DistilBertConfig(vocab_size=60, dim=16, n_layers=4, n_heads=2,
                                                                     hidden_dim=32)),
        lambda: BertForMaskedLM(tiny_bert_config()),
    ],
    ids=["roberta", "electra", "distilbert", "bert-mlm"],
)
def test_bert_family_students(model):
    teacher = model().eval()
    deep = create_student(teacher, layers=[1, 3])
    assert deep.config.num_hidden_layers == 2
    narrow = create_student(teacher, num_layers=2, hidden_size=8, num_attention_heads=2)
    ids = torch.tensor([[3, 4, 5, 6]])
    for student in (deep, narrow):
        assert type(student) is type(teacher)
        assert student.eval()(input_ids=ids).logits.shape == teacher(input_ids=ids).logits.shape
