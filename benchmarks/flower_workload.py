"""The FedAvg workload of bench_vs_flower.py in Flower's simulation engine (Message API,
``flwr.simulation.run_simulation`` on Ray). Run as its own process by an interpreter that has
``flwr[simulation]``, torch and scikit-learn:

    python benchmarks/flower_workload.py CLIENTS ROUNDS

Workload (the same as wedge's side): scikit-learn's digits, an IID split over the clients, an
MLP 64-64-10, 5 local SGD steps of batch 16 at lr 0.05, every client every round, FedAvg
weighted by examples. Prints one JSON line with the final test accuracy.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import torch
from torch import nn

CLIENTS, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
STEPS, BATCH, LR = 5, 16, 0.05


def digits_split(clients: int, seed: int = 0):
    """scikit-learn's digits scaled to [0, 1], a 20% test split, the rest split IID."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    test, train = order[: len(y) // 5], order[len(y) // 5 :]
    return x, y, [part.tolist() for part in np.array_split(train, clients)], test


X, Y, PARTS, TEST = digits_split(CLIENTS)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def main() -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        net = model()
        net.load_state_dict(msg.content["arrays"].to_torch_state_dict())
        cid = int(context.node_config["partition-id"])
        idx = np.asarray(PARTS[cid])
        rng = np.random.default_rng(cid)
        opt = torch.optim.SGD(net.parameters(), lr=LR)
        for _ in range(STEPS):
            batch = rng.choice(idx, size=BATCH, replace=len(idx) < BATCH)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(torch.from_numpy(X[batch])),
                                               torch.from_numpy(Y[batch]))  # fmt: skip
            loss.backward()
            opt.step()
        content = RecordDict({
            "arrays": ArrayRecord(net.state_dict()),
            "metrics": MetricRecord({"num-examples": len(idx)}),
        })  # fmt: skip
        return Message(content=content, reply_to=msg)

    server_app = ServerApp()
    result = {}

    @server_app.main()
    def run(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=CLIENTS,
                          min_available_nodes=CLIENTS)  # fmt: skip
        out = strategy.start(grid=grid, initial_arrays=ArrayRecord(model().state_dict()),
                             num_rounds=ROUNDS)  # fmt: skip
        net = model()
        net.load_state_dict(out.arrays.to_torch_state_dict())
        with torch.no_grad():
            pred = net(torch.from_numpy(X[TEST])).argmax(dim=1).numpy()
        result["accuracy"] = float((pred == Y[TEST]).mean())

    logging.getLogger("flwr").setLevel(logging.WARNING)
    resources = {"client_resources": {"num_cpus": 1, "num_gpus": 0.0}}
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=CLIENTS,
                   backend_config=resources)  # fmt: skip
    print(json.dumps({"clients": CLIENTS, "rounds": ROUNDS, **result}))


if __name__ == "__main__":
    main()
