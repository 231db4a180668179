"""RetrievalDistillationTrainer end to end on tiny CLIP models: losses, heads, save/resume, text-only."""

import json
import logging

import pytest
import safetensors.torch
import torch
from transformers import AutoModel, CLIPConfig, CLIPModel
from transformers.utils import logging as hf_logging

from hf_distill.retrieval import RetrievalDistillationConfig
from hf_distill.retrieval.data import PairDataset, RetrievalCollator, synthetic_shapes, synthetic_vocabulary, word_level_tokenizer
from hf_distill.retrieval.students import create_clip_student, create_text_student
from hf_distill.retrieval.trainer import RetrievalDistillationTrainer
from hf_distill.runs import HEADS_WEIGHTS_NAME
from tests.conftest import StopAfter

TOKENIZER = word_level_tokenizer(synthetic_vocabulary())
TRAIN = synthetic_shapes(8, image_size=16, seed=0)
ALL_RETRIEVAL_TERMS = dict(contrastive_weight=0.7, similarity_kd_weight=1.3, embedding_weight=0.9,
                           rkd_distance_weight=1.1, rkd_angle_weight=1.7)


def tiny_clip(seed=0, width=32, layers=2, projection_dim=16):
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(TOKENIZER), hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=32,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                           num_attention_heads=2, image_size=16, patch_size=8),
        projection_dim=projection_dim,
    )
    return CLIPModel(config).eval()


def narrow_student(teacher, seed=1):
    torch.manual_seed(seed)
    return create_clip_student(teacher, vision_layers=1, text_layers=1, vision_hidden_size=16, text_hidden_size=16,
                               projection_dim=8)


def make_args(output_dir, **overrides):
    values = dict(output_dir=str(output_dir), report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
                  seed=0, disable_tqdm=True, per_device_train_batch_size=4, learning_rate=1e-2)
    values.update(overrides)
    return RetrievalDistillationConfig(**values)


def make_trainer(output_dir, student, teacher, **overrides):
    callbacks = overrides.pop("callbacks", None)
    return RetrievalDistillationTrainer(model=student, teacher_model=teacher, args=make_args(output_dir, **overrides),
                                        train_dataset=PairDataset(TRAIN), data_collator=RetrievalCollator(TOKENIZER),
                                        callbacks=callbacks)


def test_first_step_loss_is_the_weighted_sum_of_the_logged_terms(tmp_path):
    teacher = tiny_clip()
    trainer = make_trainer(tmp_path, narrow_student(teacher), teacher, max_steps=1, **ALL_RETRIEVAL_TERMS)
    trainer.train()
    log = trainer.state.log_history[0]
    weights = {"contrastive": 0.7, "similarity_kd": 1.3, "embedding": 0.9, "rkd_distance": 1.1, "rkd_angle": 1.7}
    assert all(log[f"loss_{term}"] > 0 for term in weights)
    assert log["loss"] == pytest.approx(sum(w * log[f"loss_{t}"] for t, w in weights.items()), abs=2e-4)


def test_save_keeps_heads_out_of_the_student_and_it_loads_cleanly(tmp_path):
    teacher = tiny_clip()
    student = narrow_student(teacher)
    trainer = make_trainer(tmp_path, student, teacher, max_steps=2, embedding_weight=1.0)
    assert trainer.distillation_heads.image.weight.shape == (16, 8)
    trainer.train()
    trainer.save_model()
    saved = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))
    assert not any("distillation_heads" in key for key in saved)
    heads = safetensors.torch.load_file(str(tmp_path / HEADS_WEIGHTS_NAME))
    torch.testing.assert_close(heads["text.weight"], trainer.distillation_heads.text.weight.detach())
    assert json.load(open(tmp_path / "distillation_heads.json"))["teacher_dim"] == 16
    loaded, info = AutoModel.from_pretrained(str(tmp_path), output_loading_info=True)
    assert isinstance(loaded, CLIPModel) and all(not v for v in info.values()), info
    batch = RetrievalCollator(TOKENIZER)([PairDataset(TRAIN)[i] for i in range(3)])
    batch.pop("pair_ids")
    torch.testing.assert_close(loaded.eval()(**batch).logits_per_text, student.eval()(**batch).logits_per_text)


def run_steps(output_dir, max_steps, resume=None, stop_after=None):
    teacher = tiny_clip()
    student = narrow_student(teacher, seed=7 if resume else 1)  # resume must overwrite this different init
    trainer = make_trainer(output_dir, student, teacher, max_steps=max_steps, save_strategy="steps", save_steps=2,
                           callbacks=[StopAfter(stop_after)] if stop_after else None, **ALL_RETRIEVAL_TERMS)
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_resume_restores_student_logit_scale_and_projection_heads_exactly(tmp_path):
    full = run_steps(tmp_path / "full", 4)
    run_steps(tmp_path / "part", 4, stop_after=2)
    assert (tmp_path / "part" / "checkpoint-2" / HEADS_WEIGHTS_NAME).exists()
    resumed = run_steps(tmp_path / "part", 4, resume=str(tmp_path / "part" / "checkpoint-2"))
    assert resumed.state.global_step == 4
    names = [name for name, _ in full.model.named_parameters()]
    assert "logit_scale" in names and any(name.startswith("distillation_heads.") for name in names)
    for (name, a), (_, b) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=0, msg=name)


def test_text_only_student_keeps_the_image_tower_frozen(tmp_path):
    teacher = tiny_clip()
    student = create_text_student(teacher, text_layers=1, text_hidden_size=16)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    for key in ("vision_model.encoder.layers.1.mlp.fc1.weight", "visual_projection.weight"):
        torch.testing.assert_close(before[key], teacher.state_dict()[key])
    trainer = make_trainer(tmp_path, student, teacher, max_steps=3, similarity_kd_weight=1.0, embedding_weight=1.0)
    assert trainer.distillation_heads is not None and not trainer.distillation_heads.has_parameters  # same width
    trainer.train()
    after = student.state_dict()
    vision = [k for k in before if k.startswith(("vision_model.", "visual_projection."))]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    text = [k for k in before if k.startswith(("text_model.encoder", "text_projection."))]
    assert any(not torch.equal(before[k], after[k]) for k in text), "the text tower should train"


def test_students_copy_teacher_layers_or_build_narrower_towers():
    teacher = tiny_clip(layers=3)
    copied = create_clip_student(teacher, vision_layers=[0, 2], text_layers=2)
    assert copied.config.vision_config.num_hidden_layers == copied.config.text_config.num_hidden_layers == 2
    t, s = teacher.state_dict(), copied.state_dict()
    torch.testing.assert_close(s["vision_model.encoder.layers.1.mlp.fc1.weight"], t["vision_model.encoder.layers.2.mlp.fc1.weight"])
    torch.testing.assert_close(s["text_model.encoder.layers.1.mlp.fc1.weight"], t["text_model.encoder.layers.2.mlp.fc1.weight"])
    torch.testing.assert_close(s["visual_projection.weight"], t["visual_projection.weight"])
    torch.testing.assert_close(s["logit_scale"], t["logit_scale"])
    narrow = create_clip_student(teacher, vision_layers=1, vision_hidden_size=16, projection_dim=8)
    assert narrow.config.vision_config.hidden_size == 16 and narrow.config.projection_dim == 8
    assert narrow.config.text_config.num_hidden_layers == 3  # the text tower is the teacher's, copied
    with pytest.raises(ValueError, match="depth"):
        create_clip_student(teacher, vision_layers=[0, 1], vision_hidden_size=16)
    with pytest.raises(TypeError, match="CLIPModel"):
        create_clip_student(torch.nn.Linear(2, 2))


def test_fixed_logit_scale_is_set_and_not_trained(tmp_path):
    teacher = tiny_clip()
    student = narrow_student(teacher)
    trainer = make_trainer(tmp_path, student, None, max_steps=2, similarity_kd_weight=0.0, logit_scale=20.0)
    trainer.train()
    assert student.logit_scale.requires_grad is False
    assert student.logit_scale.exp().item() == pytest.approx(20.0, rel=1e-6)


def test_learned_logit_scale_is_clipped_at_max_logit_scale(tmp_path):
    student = narrow_student(tiny_clip())
    with torch.no_grad():
        student.logit_scale.fill_(10.0)  # e^10 > 100
    make_trainer(tmp_path, student, None, max_steps=1, similarity_kd_weight=0.0, max_logit_scale=50.0).train()
    assert student.logit_scale.exp().item() == pytest.approx(50.0, rel=1e-5)


def test_bad_setups_fail_before_training(tmp_path):
    teacher = tiny_clip()
    with pytest.raises(ValueError, match="needs a teacher"):
        make_trainer(tmp_path, narrow_student(teacher), None)
    with pytest.raises(ValueError, match="every teacher-based weight"):
        make_trainer(tmp_path, narrow_student(teacher), teacher, similarity_kd_weight=0.0)
    with pytest.raises(ValueError, match="share a tokenizer"):
        other = tiny_clip()
        other.config.text_config.vocab_size += 1
        make_trainer(tmp_path, narrow_student(teacher), other)
    with pytest.raises(TypeError, match="not a dual encoder"):
        make_trainer(tmp_path, torch.nn.Linear(2, 2), teacher)
    with pytest.raises(ValueError, match="All loss weights are 0"):
        make_args(tmp_path, contrastive_weight=0.0, similarity_kd_weight=0.0)
    with pytest.raises(ValueError, match="not its log"):
        make_args(tmp_path, logit_scale=-1.0)


def test_separate_towers_student_vision_text_dual_encoder(tmp_path):
    """A small ViT and a small BERT with projection heads to a shared space, distilled from a CLIP teacher."""
    from transformers import BertConfig, ViTConfig, VisionTextDualEncoderConfig, VisionTextDualEncoderModel

    teacher = tiny_clip()
    torch.manual_seed(3)
    vision = ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=16, patch_size=8)
    text = BertConfig(vocab_size=len(TOKENIZER), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32)
    student = VisionTextDualEncoderModel(VisionTextDualEncoderConfig.from_vision_text_configs(vision, text, projection_dim=8))
    before = student.text_projection.weight.detach().clone()
    trainer = make_trainer(tmp_path, student, teacher, max_steps=2, **ALL_RETRIEVAL_TERMS)
    assert trainer.distillation_heads.has_parameters  # 8-d student embeddings, 16-d teacher's
    trainer.train()
    assert not torch.equal(before, student.text_projection.weight)
    trainer.save_model()
    loaded, info = AutoModel.from_pretrained(str(tmp_path), output_loading_info=True)
    assert isinstance(loaded, VisionTextDualEncoderModel) and all(not v for v in info.values()), info
    assert (tmp_path / HEADS_WEIGHTS_NAME).exists()
