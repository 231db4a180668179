"""Linear probes of a frozen encoder's layers: first token vs mean of the tokens, per layer.

Why the self-distillation recipe's exits mean-pool: this measures how much a shallow layer of
all-MiniLM-L6-v2 (a sentence-transformer trained with mean pooling) tells about IMDB sentiment when an
exit reads its first token, and when it reads the mean of its tokens, before any training of the encoder.

    python benchmarks/exit_pooling_probe.py [--model PATH] [--layers 2,4,6] [--train 1024] [--eval 500]

For each layer and pooling it fits an L2-regularised logistic regression (full-batch L-BFGS on
standardised features) on the training reviews and prints its accuracy on the validation reviews of
`hf_distill.assets.load_imdb` (128 tokens, seed 42).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def features(model, tokenizer, texts, layers, max_length=128, batch_size=64):
    import torch

    pooled = {(pooling, layer): [] for pooling in ("first", "mean") for layer in layers}
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].unsqueeze(-1).float()
        for layer in layers:
            pooled[("first", layer)].append(hidden[layer][:, 0])
            pooled[("mean", layer)].append((hidden[layer] * mask).sum(1) / mask.sum(1))
    return {key: torch.cat(values) for key, values in pooled.items()}


def probe_accuracy(train_x, train_y, eval_x, eval_y, l2=1e-3, steps=200) -> float:
    """Accuracy of a logistic regression fitted on (train_x, train_y), scored on (eval_x, eval_y)."""
    import torch

    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, eval_x = (train_x - mean) / std, (eval_x - mean) / std
    classes = int(train_y.max()) + 1
    weight = torch.zeros(train_x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(train_x @ weight + bias, train_y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float(((eval_x @ weight + bias).argmax(-1) == eval_y).float().mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Encoder folder (default: the pip-installed all-MiniLM-L6-v2).")
    parser.add_argument("--layers", default="2,4,6")
    parser.add_argument("--train", type=int, default=1024)
    parser.add_argument("--eval", type=int, default=500)
    options = parser.parse_args(argv)

    import torch
    from transformers import AutoModel, AutoTokenizer

    from hf_distill.assets import load_imdb, minilm_l6_v2_path

    path = options.model or minilm_l6_v2_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    layers = [int(layer) for layer in options.layers.split(",")]
    data = load_imdb(num_train=options.train, num_eval=options.eval, seed=42)
    train = features(model, tokenizer, data["train"]["text"], layers)
    evaluation = features(model, tokenizer, data["validation"]["text"], layers)
    train_y, eval_y = torch.tensor(data["train"]["label"]), torch.tensor(data["validation"]["label"])
    print(f"{path}: linear probe accuracy (%) on {options.eval} IMDB validation reviews, fitted on {options.train}\n")
    print("| layer | first token | mean of tokens |\n|---|---|---|")
    for layer in layers:
        first = probe_accuracy(train[("first", layer)], train_y, evaluation[("first", layer)], eval_y)
        mean = probe_accuracy(train[("mean", layer)], train_y, evaluation[("mean", layer)], eval_y)
        print(f"| {layer} | {100 * first:.1f} | {100 * mean:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
