"""A learned span reader for short answers: fine-tune e5-small on one dev set, read the other.

    python -m eval.studies.reader ../shared/datasets [--fit cmrc2018_dev] [--layers 12]
        [--epochs 2] [--limit 800] [--window 256]

Issue 17 asks for short answers at exact match 0.55 / character F1 0.75, which the feature
scorer (`rag.answer.spans`, EM about 0.3 held out) does not reach. This study measures what a
reading model would give and cost, before anything is built: the bundled e5-small (its
converted Hugging Face folder, see `embeddings.convert`), cut to its first `--layers` layers,
with a start/end head, fine-tuned on every question of one dev set (gold contexts, answer
offsets from the set) and measured on a seeded sample of the other, both script-folded
character by character (`rag.text.script.fold_chars`, so offsets hold). Nothing here ships.

The reader is fitted on windows of 60-200 characters holding the answer at a random place
(and some without it), the size of what the composer cites. It prints EM and F1 reading the
whole gold context and reading a window of `--read-chars` characters holding the gold answer
(a reader behind a composer that chose the right sentence), in torch and as the int8 ONNX
model a product would run, with the CPU time of one read on one thread. Results and the
decision are in docs/benchmarks.md ("A reading model, measured").
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import char_f1, exact_match
from rag.text.script import fold_chars

MAX_ANSWER_TOKENS = 40
SETS = ("cmrc2018_dev", "drcd_dev")


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    start: int  # character offset of the first gold answer in `context`, -1 if unknown


def examples(path: Path) -> list[Example]:
    """Every answerable question of a SQuAD-format set, folded to one script."""
    out = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            context = fold_chars(para["context"])
            for qa in para["qas"]:
                golds = [a for a in qa.get("answers", []) if a["text"].strip()]
                if not golds:
                    continue
                first = golds[0]
                start = int(first["answer_start"])
                text = fold_chars(first["text"])
                if context[start : start + len(text)] != text:
                    start = context.find(text)
                answers = tuple(dict.fromkeys(fold_chars(a["text"]) for a in golds))
                out.append(
                    Example(str(qa["id"]), fold_chars(qa["question"]), context, answers, start)
                )
    return out


def around_answer(ex: Example, chars: int) -> Example:
    """The sentence window a reader behind the composer would get: `chars` around the answer."""
    if ex.start < 0:
        return ex
    end = ex.start + len(ex.answers[0])
    room = max(0, chars - (end - ex.start))
    rng = random.Random(ex.id)
    left = rng.randint(0, room)
    # Near either end of the context the window shifts inward, so it still has `chars`.
    lo = max(0, min(ex.start - left, len(ex.context) - chars))
    hi = min(len(ex.context), max(lo + chars, end))
    return Example(ex.id, ex.question, ex.context[lo:hi], ex.answers, ex.start - lo)


def training_windows(data: Sequence[Example], rng: random.Random) -> list[Example]:
    """What a reader behind the composer sees: 60-200 characters around the answer, and for
    one question in five a window of the same context without it (the answer is then <s>)."""
    out = []
    for ex in data:
        out.append(around_answer(ex, rng.randint(60, 200)))
        end = ex.start + len(ex.answers[0])
        if rng.random() < 0.2 and max(ex.start, len(ex.context) - end) >= 60:
            lo, hi = (0, ex.start) if ex.start >= len(ex.context) - end else (end, len(ex.context))
            out.append(Example(ex.id, ex.question, ex.context[lo:hi][-200:], ex.answers, -1))
    return out


def encode(tokenizer: Any, batch: Sequence[Example], window: int, stride: int) -> Any:
    return tokenizer(
        [e.question for e in batch],
        [e.context for e in batch],
        truncation="only_second",
        max_length=window,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="longest",
        return_tensors="pt",
    )


def windows(
    enc: Any, batch: Sequence[Example]
) -> Iterator[tuple[int, int, Example, list[int | None], list[list[int]]]]:
    """Each tokenised window of `batch`: its index, its question's index in `batch` and the
    question, the sequence of each token (1: the context) and each token's character offsets."""
    for w, ex_index in enumerate(enc["overflow_to_sample_mapping"].tolist()):
        yield w, ex_index, batch[ex_index], enc.sequence_ids(w), enc["offset_mapping"][w].tolist()


def labels(enc: Any, batch: Sequence[Example]) -> tuple[list[int], list[int]]:
    """Start/end token of the gold answer in each window, or 0 (the <s> token) if outside."""
    starts, ends = [], []
    for _, _, ex, seq, offsets in windows(enc, batch):
        a0, a1 = ex.start, ex.start + len(ex.answers[0])
        s = e = 0
        if ex.start >= 0:
            inside = [i for i, k in enumerate(seq) if k == 1]
            if inside and offsets[inside[0]][0] <= a0 and offsets[inside[-1]][1] >= a1:
                s = next(i for i in inside if offsets[i][1] > a0)
                e = next(i for i in reversed(inside) if offsets[i][0] < a1)
        starts.append(s)
        ends.append(e)
    return starts, ends


def batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def train(model: Any, tokenizer: Any, data: list[Example], args: argparse.Namespace) -> None:
    import torch

    model.train()
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    # About 1.2 windows a question: its answer's, and one in five a window without it.
    steps = args.epochs * ((int(len(data) * 1.2) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / (0.1 * steps)) * max(0.0, 1 - i / steps)
    )
    rng = random.Random(0)
    step, t0 = 0, time.time()
    for epoch in range(args.epochs):
        order = training_windows(data, rng)
        rng.shuffle(order)
        for batch in batches(order, args.batch):
            enc = encode(tokenizer, batch, args.window, args.stride)
            s, e = labels(enc, batch)
            out = model(
                input_ids=enc["input_ids"],
                attention_mask=enc["attention_mask"],
                start_positions=torch.tensor(s),
                end_positions=torch.tensor(e),
            )
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 25 == 0:
                print(
                    f"  epoch {epoch} step {step}/{steps} loss {out.loss.item():.3f} "
                    f"{time.time() - t0:.0f}s",
                    flush=True,
                )


def best_span(enc: Any, start: np.ndarray, end: np.ndarray, batch: Sequence[Example]) -> list[str]:
    """The highest start+end logit span inside the context, over every window of a question."""
    best: dict[int, tuple[float, str]] = {}
    for w, ex_index, ex, seq, offsets in windows(enc, batch):
        inside = np.array([k == 1 for k in seq])
        s = np.where(inside, start[w], -1e9)
        e = np.where(inside, end[w], -1e9)
        top_s = np.argsort(-s)[:20]
        top_e = np.argsort(-e)[:20]
        for i in top_s:
            for j in top_e:
                if j < i or j - i >= MAX_ANSWER_TOKENS:
                    continue
                score = float(s[i] + e[j])
                if ex_index not in best or score > best[ex_index][0]:
                    best[ex_index] = (score, ex.context[offsets[i][0] : offsets[j][1]].strip())
    return [best.get(i, (0.0, ""))[1] for i in range(len(batch))]


def read(
    model: Any, tokenizer: Any, data: list[Example], args: argparse.Namespace
) -> tuple[float, float]:
    import torch

    model.eval()
    spans = []
    with torch.inference_mode():
        for batch in batches(data, 16):
            enc = encode(tokenizer, batch, args.window, args.stride)
            out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            spans += best_span(enc, out.start_logits.numpy(), out.end_logits.numpy(), batch)
    return scores(spans, data)


def scores(spans: Sequence[str], data: Sequence[Example]) -> tuple[float, float]:
    """Mean exact match and character F1 of `spans` against each question's gold answers."""
    em = sum(exact_match(span, ex.answers) for span, ex in zip(spans, data, strict=True))
    f1 = sum(char_f1(span, ex.answers) for span, ex in zip(spans, data, strict=True))
    return em / len(data), f1 / len(data)


def one_read_ms(model: Any, tokenizer: Any, data: list[Example], args: argparse.Namespace) -> float:
    """CPU time of reading one question's window alone, on one thread (median of 50)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    with torch.inference_mode():
        for ex in data[:50]:
            enc = encode(tokenizer, [ex], args.window, args.stride)
            t = time.thread_time()
            model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            times.append(time.thread_time() - t)
    torch.set_num_threads(threads)
    return 1000 * float(np.median(times))


def onnx_read(
    model: Any, tokenizer: Any, data: list[Example], args: argparse.Namespace, workdir: Path
) -> tuple[float, float, float]:
    """EM, F1 and median one-thread CPU ms of the model as a product would run it: exported to
    ONNX, dynamically quantised to int8, one question's window per forward pass."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    workdir.mkdir(parents=True, exist_ok=True)
    fp32, int8 = workdir / "reader.onnx", workdir / "reader_qint8.onnx"
    model.eval()
    sample = torch.tensor([[0, 6, 2, 2, 6, 2], [0, 6, 2, 2, 6, 2]])
    torch.onnx.export(
        model,
        (sample, torch.ones_like(sample)),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["start_logits", "end_logits"],
        dynamic_axes={
            name: {0: "batch", 1: "tokens"}
            for name in ("input_ids", "attention_mask", "start_logits", "end_logits")
        },
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    spans, times = [], []
    for ex in data:
        enc = encode(tokenizer, [ex], args.window, args.stride)
        feed = {
            "input_ids": enc["input_ids"].numpy(),
            "attention_mask": enc["attention_mask"].numpy(),
        }
        t = time.thread_time()
        start, end = session.run(None, feed)
        times.append(time.thread_time() - t)
        spans += best_span(enc, start, end, [ex])
    return (*scores(spans, data), 1000 * float(np.median(times)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", type=Path)
    parser.add_argument("--fit", choices=SETS, default="cmrc2018_dev")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--stride", type=int, default=96)
    parser.add_argument("--read-chars", type=int, default=100)
    parser.add_argument("--limit", type=int, default=800, help="questions measured (seeded sample)")
    parser.add_argument("--fit-limit", type=int, help="fit on a seeded sample (smoke runs)")
    parser.add_argument("--load", type=Path, help="measure a model saved by --save, no fitting")
    parser.add_argument("--save", type=Path, help="keep the fine-tuned model here")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from embeddings.convert import converted_folder
    from rag.settings import Settings

    torch.manual_seed(0)
    folder = converted_folder(Settings().data_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if args.load:
        model = AutoModelForQuestionAnswering.from_pretrained(args.load)
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(folder, num_hidden_layers=args.layers)
    # The 250k-row word embedding is 80% of the weights; it stays as e5 has it, so a reader
    # could share it with the embedder, and training skips its optimizer state.
    model.roberta.embeddings.word_embeddings.weight.requires_grad_(False)

    measure = next(s for s in SETS if s != args.fit)
    fit = examples(args.datasets / f"{args.fit}.json")
    held = examples(args.datasets / f"{measure}.json")
    held = random.Random(0).sample(held, min(args.limit, len(held)))
    if args.fit_limit:
        fit = random.Random(0).sample(fit, min(args.fit_limit, len(fit)))
    print(
        f"fit on {args.fit} ({len(fit)} questions), measure on {measure} ({len(held)}), "
        f"{args.layers} layers",
        flush=True,
    )
    if not args.load:
        t = time.time()
        train(model, tokenizer, fit, args)
        print(f"trained in {time.time() - t:.0f}s", flush=True)
    whole = read(model, tokenizer, held, args)
    windows = [around_answer(e, args.read_chars) for e in held]
    window = read(model, tokenizer, windows, args)
    ms = one_read_ms(model, tokenizer, windows, args)
    print(
        f"RESULT fit={args.fit} layers={args.layers} epochs={args.epochs} lr={args.lr} "
        f"whole context EM {whole[0]:.3f} F1 {whole[1]:.3f} | "
        f"{args.read_chars}-char window EM {window[0]:.3f} F1 {window[1]:.3f} | "
        f"one read {ms:.1f} ms CPU (torch fp32, 1 thread)",
        flush=True,
    )
    work = args.save or Path(tempfile.mkdtemp())
    q = onnx_read(model, tokenizer, windows, args, work / "onnx")
    print(
        f"RESULT int8 ONNX {args.read_chars}-char window EM {q[0]:.3f} F1 {q[1]:.3f} | "
        f"one read {q[2]:.1f} ms CPU (1 thread)",
        flush=True,
    )
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)


if __name__ == "__main__":
    main()
