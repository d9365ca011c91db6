"""The explainer graph against the same graph cut at its logits: whole ONNX Runtime calls, in turns.

    livecam export --output /tmp/b/lite0.onnx            # at the commit before the change, then
    livecam export --output /tmp/b/lite0c.onnx           # at the commit with it
    .venv/bin/python benchmarks/explainer_graph_turns.py

Prints three rounds of medians over 300 calls each, after 30 warm-up calls.
"""
import onnx.utils, onnxruntime as ort, numpy as np, time
onnx.utils.extract_model("/tmp/b/lite0.onnx", "/tmp/b/floor.onnx", ["x"], ["logits"])
def mk(p):
    o = ort.SessionOptions(); o.inter_op_num_threads = 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(p, o, providers=["CPUExecutionProvider"])
s = {"floor (logits only)": mk("/tmp/b/floor.onnx"), "before: expand + mean, Mul + ReduceSum": mk("/tmp/b/lite0.onnx"),
     "after: W_c/(hw), MatMul": mk("/tmp/b/lite0c.onnx")}
x = np.random.default_rng(0).standard_normal((1,3,224,224)).astype(np.float32)
for rnd in range(3):
    t = {k: [] for k in s}
    for i in range(330):
        for k, v in s.items():
            a = time.perf_counter(); v.run(None, {"x": x}); t[k].append(time.perf_counter() - a)
    med = {k: np.median(v[30:]) * 1000 for k, v in t.items()}
    f = med["floor (logits only)"]
    print(f"round {rnd+1}: " + "; ".join(f"{k} {m:.2f} ms ({m/f:.3f}x)" for k, m in med.items()))
