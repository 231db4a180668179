import pytest

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.reporting import count_parameters, format_results_table, retention, weights_size_mb
from tests.conftest import tiny_teacher
from tests.test_trainer import narrow_student


def test_parameters_and_size_exclude_projection_heads(tmp_path):
    teacher = tiny_teacher()
    student = narrow_student(teacher)
    plain = sum(p.numel() for p in student.parameters())
    trainer = DistillationTrainer(model=student, teacher_model=teacher,
                                  args=DistillationConfig(output_dir=str(tmp_path), hidden_weight=1.0, report_to=[]))
    assert sum(p.numel() for p in student.parameters()) > plain  # the heads are attached to the student...
    assert count_parameters(student) == plain  # ...but are not part of the model that is shipped
    trainer.save_model()
    size = (tmp_path / "model.safetensors").stat().st_size
    assert weights_size_mb(str(tmp_path)) == round(size / 1e6, 2)


def test_retention_and_table():
    assert retention(0.85, 0.9) == pytest.approx(94.44)
    assert retention(None, 0.9) is None and retention(0.8, 0.0) is None
    table = format_results_table({
        "task": "mrpc", "retention_percent": 97.5,
        "teacher": {"num_layers": 6, "hidden_size": 384, "parameters": 22713986, "size_mb": 90.9, "score": 0.8},
        "student": {"num_layers": 3, "hidden_size": 384, "parameters": 17390594, "size_mb": 69.6, "score": 0.78},
    })
    lines = table.splitlines()
    assert "mrpc score" in lines[0] and "retention %" in lines[0]
    assert lines[2].split()[:2] == ["teacher", "6"] and "22,713,986" in lines[2]
    assert lines[3].split()[-2:] == ["0.7800", "97.5"]
