"""Which engine for a chain with many inputs: the same network read as a
chain (`chain_from_graph`: the chain engine's bounds and MILP) and as a
graph (branch and bound), Def. 1 on VNN-LIB boxes of mnistfc, one thread,
side by side in one run. Prints one table.

    .venv/bin/python benchmarks/verify_routing.py [--net mnist-net_256x2]
        [--props prop_0_0.03,prop_1_0.03,prop_0_0.05] [--timeout 60]

The public queries route Keras chains with more than 16 inputs to the
graph engine on this measurement (`keras_ndsru.verify.queries`).
"""

from __future__ import annotations

import argparse
import os
import time

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "vnncomp")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="mnist-net_256x2")
    parser.add_argument("--props", default="prop_0_0.03,prop_1_0.03,prop_0_0.05")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--folder", default=os.path.join(SHARED, "mnistfc"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from keras_ndsru.verify import local_robustness
    from keras_ndsru.verify.formats.onnx_graph import load_onnx_graph
    from keras_ndsru.verify.formats.vnnlib import read_vnnlib
    from keras_ndsru.verify.graph.chain import chain_from_graph

    graph = load_onnx_graph(os.path.join(args.folder, args.net + ".onnx"))
    engines = {"graph": graph, "chain": chain_from_graph(graph)}
    print("| property | engine | verdict | seconds |\n|---|---|---|---|")
    for name in args.props.split(","):
        path = os.path.join(args.folder, name + ".vnnlib")
        (prop,) = read_vnnlib(path, graph.n_inputs, graph.n_outputs)[:1]
        lower, upper = prop.region.lower, prop.region.upper
        # The box as an L_inf ball around its centre (inside the domain).
        x0, delta = (lower + upper) / 2, float(((upper - lower) / 2).max()) * 0.999
        for engine, model in engines.items():
            tick = time.time()
            res = local_robustness(
                model,
                x0.reshape(model.input_shape),
                delta,
                domain=(lower, upper),
                timeout=args.timeout,
                workers=1,
            )
            verdict = {True: "robust", False: "not robust", None: "unknown"}
            print(
                f"| {name} | {engine} | {verdict[res.robust]} | {time.time() - tick:.1f} |"
            )


if __name__ == "__main__":
    main()
