"""int8 on ONNX Runtime: models.int8's recipe applied to the exported graph, for queries.

A served search's largest share is its query's encode (benchmarks/search_profile.py), and ONNX
Runtime's dynamic int8 MatMul runs on AVX512-VNNI. Quantising every MatMul alone moved query
vectors to a cosine of ~.99 against fp32 and cost up to 1.1 points on dev retrieval; the recipe
PyTorch's int8 uses (models/int8.py, the numbers are there) brings it to ~.999:

1. SmoothQuant (α = 0.5) on each MatMul that reads an activation with a weight: a `Mul` by 1/s
   before it and the weight's rows multiplied by s, one s per tensor read (a layer's query, key
   and value share theirs), s from the activation maxima of `int8_recipe.calibration_texts()`,
   each run alone as a passage through the fp32 graph;
2. per-channel int8 weights, dynamic int8 activations (ONNX Runtime's `quantize_dynamic`);
3. the down-projections (in > out features: the feed-forward output) stay fp32.

Built with the fp32 export (`xlsearch model export-onnx`, the named models when built) or on
first use of `--precision int8`, beside it in `<model>/onnx/`: `model.int8.onnx`,
`model.int8.onnx.data` (the int8 weights and the smoothing scales only: tensors the recipe leaves
alone, the 250k-piece embedding table above all, are read from `model.onnx.data`, not copied) and
`xlsearch_onnx_int8.json` (what it was built from, the recipe, the probe vector the runtime
checks at load). The record is written last: a build cut short leaves no int8 graph that loads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from core.errors import ModelError

from .encoder import PROBE_TEXT
from .int8_recipe import ALPHA, calibration_texts, smoothing_scale
from .onnx_files import GRAPH, INT8_DATA, INT8_GRAPH, INT8_RECORD, onnx_dir, read_record

log = logging.getLogger(__name__)
RECIPE = f"onnx/smoothquant-{ALPHA}-shared-qkv/per-channel/down-fp32"  # part of the encoder's fingerprint
FORMAT = 1


def int8_hint(model: Path) -> str:
    return f"rebuild it with `xlsearch model export-onnx --model {model} --force`, or search with --precision fp32"


def source_of(export_record: dict) -> str:
    """What the int8 graph is built from: the fp32 export's record (weights digest, probe)."""
    return hashlib.sha256(json.dumps(export_record, sort_keys=True).encode()).hexdigest()[:16]


def read_int8_record(model: Path, export_record: dict | None = None) -> dict:
    """The int8 record, checked against the files beside it and the fp32 export under it
    (`export_record`: that export's `read_record`, when the caller has already read it)."""
    folder = onnx_dir(model)
    record_path = folder / INT8_RECORD
    for path in (folder / INT8_GRAPH, folder / INT8_DATA, record_path):
        if not path.exists():
            raise ModelError(f"{path}: missing — {int8_hint(model)}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        size, _ = int(record["data_size"]), [float(x) for x in record["probe"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{record_path}: unreadable ({exc}) — {int8_hint(model)}") from None
    if record.get("format") != FORMAT or record.get("recipe") != RECIPE:
        raise ModelError(f"{record_path}: built by another version of xlsearch — {int8_hint(model)}")
    if (folder / INT8_DATA).stat().st_size != size:
        raise ModelError(f"{folder / INT8_DATA}: truncated or replaced — {int8_hint(model)}")
    if record.get("source") != source_of(export_record or read_record(model)):
        raise ModelError(f"{folder / INT8_GRAPH}: built from another export than {folder / GRAPH} — {int8_hint(model)}")
    return record


def build_int8(model: Path, force: bool = False) -> Path:
    """The int8 graph of `model`'s ONNX export (built unless a valid one is there and not `force`)."""
    model = Path(model)
    record = read_record(model)  # a valid fp32 export first
    folder = onnx_dir(model)
    if not force:
        try:
            read_int8_record(model, record)
            return folder / INT8_GRAPH
        except ModelError:
            pass
    log.info("building the int8 query graph of %s (once, about 15 s)", model.name)
    try:
        _build(model, folder, record)
    except OSError as exc:  # a read-only or full model folder: say so, not a traceback
        raise ModelError(f"{folder}: cannot write the int8 graph there ({exc.strerror or exc}) — "
                         f"search with --precision fp32, or run `xlsearch model export-onnx --model {model} --force` "
                         "where the folder is writable") from None
    log.info("built %s", folder / INT8_GRAPH)
    return folder / INT8_GRAPH


def _build(model: Path, folder: Path, record: dict) -> None:
    import onnx

    (folder / INT8_RECORD).unlink(missing_ok=True)  # written last: until then no int8 graph loads
    graph = _with_weights(onnx.load(str(folder / GRAPH), load_external_data=False), folder)
    groups = _smoothed_groups(graph)
    maxima = _input_maxima(folder, list(groups), _calibration_ids(folder, record))
    _smooth(graph, groups, maxima)
    weights = _weights(graph)
    _quantise(graph, folder, [n.name for n in graph.graph.node if n.op_type == "MatMul" and _is_down_projection(n, weights)])
    os.chmod(folder / INT8_DATA, 0o644)  # onnx writes it owner-only; the export beside it is world-readable
    probe = _probe(folder, record)
    out = {"format": FORMAT, "recipe": RECIPE, "source": source_of(record), "data_size": (folder / INT8_DATA).stat().st_size,
           "probe": [round(float(x), 7) for x in probe]}
    partial = folder / f"{INT8_RECORD}.{os.getpid()}"
    partial.write_text(json.dumps(out, indent=1), encoding="utf-8")
    os.replace(partial, folder / INT8_RECORD)


def _with_weights(graph, folder: Path):
    """`graph` with its external weights read in. onnx.load would read them too, but refuses a
    data file with several hard links, which a named model's export can be (models/named.py)."""
    import onnx

    attributes = (t for node in graph.graph.node for a in node.attribute for t in ([a.t] if a.HasField("t") else []) + list(a.tensors))
    for tensor in [*graph.graph.initializer, *attributes]:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            with open(folder / info["location"], "rb") as f:
                f.seek(int(info.get("offset", 0)))
                tensor.raw_data = f.read(int(info["length"]))
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
    return graph


def _weights(graph) -> dict:
    return {t.name: t for t in graph.graph.initializer}


def _is_down_projection(node, weights: dict) -> bool:
    """A MatMul x·W whose W has more rows (inputs) than columns: the feed-forward output."""
    w = weights.get(node.input[1])
    return w is not None and len(w.dims) == 2 and w.dims[0] > w.dims[1]


def _smoothed_groups(graph) -> dict[str, list]:
    """Activation tensor → the MatMuls with a weight that read it, down-projections left out."""
    weights = _weights(graph)
    groups: dict[str, list] = {}
    for node in graph.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights and not _is_down_projection(node, weights):
            groups.setdefault(node.input[0], []).append(node)
    return groups


def _calibration_ids(folder: Path, record: dict) -> list[list[int]]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    prompt = record["prompts"].get("passage", "")
    limit = int(record["max_seq_length"])
    return [tokenizer.encode(prompt + text).ids[:limit] for text in calibration_texts()]


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _input_maxima(folder: Path, tensors: list[str], texts: list[list[int]]) -> dict[str, np.ndarray]:
    """max |x| per channel of each tensor over the calibration texts, each run alone (no padding)."""
    import onnx

    probe = onnx.load(str(folder / GRAPH), load_external_data=False)  # its weights stay in DATA, beside it
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    path = folder / f".calibrate-{os.getpid()}.onnx"
    onnx.save(probe, str(path))
    try:
        session = _session(path)
    finally:
        path.unlink()
    maxima: dict[str, np.ndarray] = {}
    for ids in texts:
        batch = np.asarray([ids], np.int64)
        for name, x in zip(tensors, session.run(tensors, {"input_ids": batch, "attention_mask": np.ones_like(batch)})):
            seen = np.abs(x).reshape(-1, x.shape[-1]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], seen) if name in maxima else seen
    return maxima


def _smooth(graph, groups: dict[str, list], maxima: dict[str, np.ndarray]) -> None:
    """x / s before each group (one Mul), the group's weight rows times s: the same function."""
    from onnx import helper, numpy_helper

    weights = _weights(graph)
    for i, (tensor, nodes) in enumerate(groups.items()):
        ws = [numpy_helper.to_array(weights[n.input[1]]) for n in nodes]
        scale = smoothing_scale(maxima[tensor], np.max([np.abs(w).max(axis=1) for w in ws], axis=0))
        inv = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"xlsearch_smooth_{i}")
        graph.graph.initializer.append(inv)
        smoothed = f"{tensor}_smoothed"
        for node, w in zip(nodes, ws):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array((w * scale[:, None]).astype(np.float32), node.input[1]))
            node.input[0] = smoothed
        first = list(graph.graph.node).index(nodes[0])
        graph.graph.node.insert(first, helper.make_node("Mul", [tensor, inv.name], [smoothed], name=f"xlsearch_smooth_{i}"))


def _quantise(graph, folder: Path, keep_fp32: list[str]) -> None:
    """int8 MatMuls into INT8_GRAPH; tensors left as the export has them point into its DATA."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    original = {t.name: t for t in onnx.load(str(folder / GRAPH), load_external_data=False).graph.initializer}
    fp32 = {t.name: t for t in graph.graph.initializer}
    advice = _DropMessage("Please consider to run pre-processing")  # ONNX Runtime's, on the root logger: not for our users
    logging.getLogger().addFilter(advice)
    try:
        with tempfile.TemporaryDirectory(dir=folder, prefix=".int8-") as staged:
            out = Path(staged) / INT8_GRAPH
            quantize_dynamic(graph, out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True,
                             nodes_to_exclude=keep_fp32, extra_options={"MatMulConstBOnly": True}, use_external_data_format=True)
            quantised = onnx.load(str(out))
    finally:
        logging.getLogger().removeFilter(advice)
    for tensor in quantised.graph.initializer:
        source = original.get(tensor.name)
        if source is None or not _external(source) or fp32[tensor.name].raw_data != tensor.raw_data:
            continue
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.extend(source.external_data)
    onnx.save_model(quantised, str(folder / INT8_GRAPH), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=INT8_DATA, size_threshold=1024)


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _external(tensor) -> bool:
    import onnx

    return tensor.data_location == onnx.TensorProto.EXTERNAL


def _probe(folder: Path, record: dict) -> np.ndarray:
    """The int8 graph's pooled probe vector (for its record), refused unless it is within
    int8's reach of the fp32 graph's on the same tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = np.asarray([tokenizer.encode(record["prompts"].get("passage", "") + PROBE_TEXT).ids], np.int64)
    int8, fp32 = (_session(folder / name).run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0].mean(axis=1)[0]
                  for name in (INT8_GRAPH, GRAPH))
    cos = float(int8 @ fp32) / (np.linalg.norm(int8) * np.linalg.norm(fp32) + 1e-12)
    if cos < 0.99:
        raise ModelError(f"{folder / INT8_GRAPH}: int8 moved the probe vector to cosine {cos:.4f} of fp32 — search with --precision fp32")
    return int8.astype(np.float32)
