import pytest
from transformers import HfArgumentParser

from hf_distill import DistillationConfig


def test_presets():
    # DistilBERT's task distillation (run_squad_w_distillation.py): 0.5 kd + 0.5 task at T=2, no cosine.
    distil = DistillationConfig.distilbert(output_dir="x", kd_weight=0.7)
    assert (distil.temperature, distil.kd_weight, distil.task_weight, distil.cosine_weight) == (2.0, 0.7, 0.5, 0.0)
    assert distil.reference == "distilbert"
    inter = DistillationConfig.tinybert(stage="intermediate", output_dir="x")
    assert {k: v for k, v in inter.loss_weights.items() if v} == {"hidden": 1, "embedding": 1, "attention": 1}
    # task_distill.py's intermediate stage: constant learning rate (schedule 'none'), weight decay 0.01, 10 epochs.
    assert (str(getattr(inter.lr_scheduler_type, "value", inter.lr_scheduler_type)), inter.weight_decay,
            inter.num_train_epochs, inter.learning_rate) == ("constant", 0.01, 10.0, 5e-5)
    assert inter.reference is None and DistillationConfig.tinybert(output_dir="x", reference="tinybert").reference == "tinybert"
    pred = DistillationConfig.tinybert(stage="prediction", output_dir="x")
    assert (pred.kd_weight, pred.kd_loss, pred.temperature, pred.task_weight) == (1.0, "soft_ce", 1.0, 0.0)
    assert (pred.learning_rate, pred.num_train_epochs, pred.warmup_ratio) == (3e-5, 3.0, 0.1)
    with pytest.raises(ValueError, match="stage"):
        DistillationConfig.tinybert(stage="general")


def test_distilbert_pretraining_preset_follows_distiller_defaults():
    config = DistillationConfig.distilbert_pretraining(output_dir="x")
    assert {k: v for k, v in config.loss_weights.items() if v} == {"kd": 5, "mlm": 2, "cosine": 1}
    assert (config.temperature, config.kd_positions, config.reference) == (2.0, "all", "distilbert")
    assert (config.adam_beta1, config.adam_beta2, config.adam_epsilon) == (0.9, 0.98, 1e-6)
    assert (config.learning_rate, config.warmup_ratio, config.weight_decay, config.max_grad_norm) == (5e-4, 0.05, 0.0, 5.0)
    # restrict_ce_to_mask stays one option away.
    assert DistillationConfig.distilbert_pretraining(output_dir="x", kd_positions="masked").kd_positions == "masked"


def test_reference_options_are_checked():
    assert DistillationConfig(output_dir="x").kd_positions == "masked"
    assert DistillationConfig(output_dir="x", reference="none").reference is None
    with pytest.raises(ValueError, match="reference must be one of"):
        DistillationConfig(output_dir="x", reference="minilm")
    with pytest.raises(ValueError, match="kd_positions"):
        DistillationConfig(output_dir="x", kd_positions="some")
    with pytest.raises(ValueError, match="shares one projection"):
        DistillationConfig(output_dir="x", reference="tinybert", projection="per_layer")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0), "temperature"),
        (dict(kd_weight=-1), "kd_weight"),
        (dict(kd_loss="js"), "kd_loss"),
        (dict(projection="none"), "projection"),
        (dict(task_weight=0, kd_weight=0), "nothing to train"),
        (dict(layer_map="odd"), "not understood"),
    ],
)
def test_range_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistillationConfig(output_dir="x", **kwargs)


def test_every_field_has_help_and_parses_from_command_line_and_dict():
    from dataclasses import fields

    own = [f for f in fields(DistillationConfig) if f.name in DistillationConfig.__dataclass_fields__
           and f.name not in __import__("transformers").TrainingArguments.__dataclass_fields__]
    assert own and all(f.metadata.get("help") for f in own)
    parser = HfArgumentParser(DistillationConfig)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", "x", "--layer_map", "2,4,6", "--hidden_weight", "1.5", "--kd_loss", "soft_ce",
         "--teacher_model_init_kwargs", '{"torch_dtype": "float32"}']
    )
    assert args.layer_map == [2, 4, 6] and args.hidden_weight == 1.5 and args.kd_loss == "soft_ce"
    assert args.teacher_model_init_kwargs == {"torch_dtype": "float32"}
    (from_dict,) = parser.parse_dict({"output_dir": "x", "layer_map": "last", "attention_weight": 2})
    assert from_dict.layer_map == "last" and from_dict.attention_weight == 2
    assert DistillationConfig(output_dir="x", layer_map=[1, 2]).layer_map == [1, 2]


@pytest.mark.parametrize("config_class", ["DistillationConfig", "MutualLearningConfig", "SelfDistillationConfig",
                                          "RetrievalDistillationConfig"])
def test_pinned_memory_is_off_without_an_accelerator(tmp_path, config_class):
    """Pinning only helps host-to-accelerator copies; on CPU it would warn on every data loader."""
    import torch

    from hf_distill.online import MutualLearningConfig, SelfDistillationConfig
    from hf_distill.retrieval import RetrievalDistillationConfig

    classes = {cls.__name__: cls for cls in (DistillationConfig, MutualLearningConfig, SelfDistillationConfig,
                                             RetrievalDistillationConfig)}
    config = classes[config_class](output_dir=str(tmp_path), report_to="none")
    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    assert config.dataloader_pin_memory is has_accelerator


@pytest.mark.parametrize("config_class", ["DistillationConfig", "MutualLearningConfig", "SelfDistillationConfig",
                                          "RetrievalDistillationConfig"])
@pytest.mark.parametrize("warmup, steps_of_200, ratio", [({"warmup_ratio": 0.1}, 20, 0.1), ({"warmup_steps": 0.1}, 20, 0.1),
                                                         ({"warmup_steps": 7}, 7, 0.0), ({}, 0, 0.0)])
def test_warmup_means_the_same_on_every_transformers_version(config_class, warmup, steps_of_200, ratio):
    """transformers 5 removed `warmup_ratio` (its `warmup_steps` below 1 is a ratio); recipes give either, anywhere."""
    from hf_distill.online import MutualLearningConfig, SelfDistillationConfig
    from hf_distill.retrieval import RetrievalDistillationConfig

    classes = {"DistillationConfig": DistillationConfig, "MutualLearningConfig": MutualLearningConfig,
               "SelfDistillationConfig": SelfDistillationConfig,
               "RetrievalDistillationConfig": RetrievalDistillationConfig}
    args = classes[config_class](output_dir="x", **warmup)
    assert args.get_warmup_steps(200) == steps_of_200
    assert args.warmup_ratio == ratio
    # The same through the recipe parser, as a YAML key or a flag.
    flags = [token for key, value in warmup.items() for token in (f"--{key}", str(value))]
    (parsed,) = HfArgumentParser(classes[config_class]).parse_args_into_dataclasses(["--output_dir", "x", *flags])
    assert parsed.get_warmup_steps(200) == steps_of_200


@pytest.mark.parametrize("warmup, message", [({"warmup_ratio": 0.1, "warmup_steps": 5}, "give one of them"),
                                             ({"warmup_ratio": 1.5}, r"warmup_ratio must be in \[0, 1\)"),
                                             ({"warmup_steps": 2.5}, "whole number"),
                                             ({"warmup_steps": -1}, ">= 0")])
def test_warmup_given_twice_or_out_of_range_is_refused(warmup, message):
    with pytest.raises(ValueError, match=message):
        DistillationConfig(output_dir="x", **warmup)
