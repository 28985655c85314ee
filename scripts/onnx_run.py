"""Runs an ONNX model with ONNX Runtime on given inputs, after `onnx.checker` (full check, with shape inference):
the peer side of cofi's export round trip (Tests/ONNXExportTests). Needs onnx, onnxruntime and numpy
(scripts/requirements-onnx.txt).

    python3 scripts/onnx_run.py REQUEST.json RESPONSE.json

REQUEST: {"model": "m.onnx", "batches": [{"input_ids": [[…]], "attention_mask": [[…]], "token_type_ids": [[…]]}, …]}
RESPONSE: {"outputs": [{"logits": [[…]], …}, …], "inputs": [names], "output_names": [names], "opset": 17,
           "dims": {"input_ids": ["batch", "sequence"], …}}
The checker's and ONNX Runtime's errors go to stderr with exit status 1.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def main() -> int:
    request = json.load(open(sys.argv[1]))
    path = request["model"]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = []
    for batch in request["batches"]:
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}
        results = session.run(None, feed)
        outputs.append({n: r.astype(np.float64).tolist() for n, r in zip(names, results)})
    response = {
        "outputs": outputs,
        "inputs": [i.name for i in model.graph.input],
        "output_names": names,
        "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0],
        "dims": {v.name: dims(v) for v in list(model.graph.input) + list(model.graph.output)},
        "metadata": session.get_modelmeta().custom_metadata_map,
    }
    json.dump(response, open(sys.argv[2], "w"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
