"""Is the dataset usable for training a policy? A behaviour-cloning check.

Trains a small MLP (numpy, no GPU) on one clip of a dataset
(results/dataset/{method}.h5, docs/dataset.md): inputs the observations of
the valid transitions of the clean episode and of every noisy rollout,
normalised with the file's stats/observations_{mean,std}; targets the clean
labels (clean_actions); mean squared error, Adam. Then runs it closed loop
in the real environment (gymnasium.make("mocap_refine/Tracking-v0",
dataset=..., clip=...)) from frame 0 until the fall rule terminates the
episode or the clip ends, against the clean episode's open-loop actions
replayed in the same environment; and again under Gaussian action noise
(the dataset's action_noise, seeded episodes, the same noise for both
policies).

Reported per policy and noise level: frames tracked (transitions before the
fall: a fall at frame f from frame 0 tracked f - 1, the dataset's
valid_transitions), the fraction of the clip's transitions, err50 (mean joint
error in rad over frames 1 .. min(50, last frame reached): the environment
stops at the fall, so a falling episode's err50 covers fewer frames than
evaluate's) and the mean reward per step taken. No bar to reach: the
hyper-parameters below were fixed before the first closed-loop run and never
tuned on it. Deterministic: seeded initialisation and batches, one BLAS
thread.

Run: python benchmarks/bc_check.py results/dataset/gradient.h5 [--clip walk]
Writes benchmarks/out/bc_check.csv and docs/results/bc_check.md (the table).
"""

from __future__ import annotations

import os

# One BLAS thread: the same floating-point sums on any machine's core count.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium  # noqa: E402
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import mocap_refine  # noqa: E402,F401  (registers mocap_refine/Tracking-v0)
from mocap_refine.env import ENV_ID  # noqa: E402
from mocap_refine.metrics import joint_errors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["clip", "policy", "train_seed", "noise_std", "episodes", "never_falls", "frames_tracked_mean",
           "frames_tracked_min", "clip_transitions", "tracked_fraction", "err50_rad", "reward_mean"]


# ---------------------------------------------------------------- data

@dataclass
class ClipData:
    """One clip's training rows and what the table reports about them."""
    x: np.ndarray              # (N, obs_dim) observations of valid transitions
    y: np.ndarray              # (N, nu) clean labels
    obs_mean: np.ndarray
    obs_std: np.ndarray        # zero-variance columns replaced by 1
    open_loop: np.ndarray      # (T, nu) the clean episode's actions
    transitions: int           # T
    episodes: int              # clean + noisy
    info: dict


def load_clip(dataset: Path, clip: str) -> ClipData:
    """Valid rows of `clip`'s clean and noisy episodes with their clean labels."""
    with h5py.File(dataset, "r") as f:
        if clip not in f["clips"]:
            raise SystemExit(f"{dataset}: no clip {clip!r}; clips: {', '.join(f['clips'])}")
        g = f["clips"][clip]
        groups = [g] + [g["noisy"][i] for i in sorted(g["noisy"], key=int)]
        xs, ys = [], []
        for e in groups:
            valid = e["valid"][()]
            xs.append(e["observations"][:-1][valid])
            ys.append(e["clean_actions"][()][valid])
        std = f["stats/observations_std"][()]
        settings = json.loads(f.attrs["settings"])
        info = {"method": str(f.attrs["method"]), "mujoco_version": str(f.attrs["mujoco_version"]),
                "action_noise": float(settings["action_noise"]), "noisy_rollouts": len(groups) - 1,
                "split": str(g.attrs["split"]), "clean_valid": int(g.attrs["valid_transitions"])}
        data = ClipData(np.concatenate(xs), np.concatenate(ys), f["stats/observations_mean"][()],
                        np.where(std > 0, std, 1.0), g["actions"][()], int(g["actions"].shape[0]),
                        len(groups), info)
    info["sha256"] = hashlib.sha256(Path(dataset).read_bytes()).hexdigest()
    return data


# ---------------------------------------------------------------- the policy

class MLP:
    """tanh hidden layers, linear output; weights N(0, 1/fan_in)."""

    def __init__(self, sizes: list[int], rng: np.random.Generator):
        self.params = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            self.params += [rng.standard_normal((a, b)) / np.sqrt(a), np.zeros(b)]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        acts = [x]
        n = len(self.params) // 2
        for k in range(n):
            z = acts[-1] @ self.params[2 * k] + self.params[2 * k + 1]
            acts.append(np.tanh(z) if k < n - 1 else z)
        return acts[-1], acts

    def grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        """Mean squared error over rows and columns and its gradient."""
        out, acts = self.forward(x)
        err = out - y
        loss = float(np.mean(err ** 2))
        delta = 2.0 * err / err.size
        grads = [None] * len(self.params)
        for k in range(len(self.params) // 2 - 1, -1, -1):
            grads[2 * k] = acts[k].T @ delta
            grads[2 * k + 1] = delta.sum(axis=0)
            if k:
                delta = (delta @ self.params[2 * k].T) * (1.0 - acts[k] ** 2)
        return loss, grads


def train(data: ClipData, seed: int, hidden: list[int], epochs: int, batch: int, lr: float) -> tuple[MLP, float]:
    """Adam (beta 0.9, 0.999) on shuffled mini-batches; returns the network
    and its final mean squared error on all training rows."""
    rng = np.random.default_rng(seed)
    x = (data.x - data.obs_mean) / data.obs_std
    net = MLP([x.shape[1], *hidden, data.y.shape[1]], rng)
    m = [np.zeros_like(p) for p in net.params]
    v = [np.zeros_like(p) for p in net.params]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(x.shape[0])
        for i in range(0, x.shape[0], batch):
            idx = order[i:i + batch]
            _, grads = net.grads(x[idx], data.y[idx])
            step += 1
            for p, g, mk, vk in zip(net.params, grads, m, v):
                mk *= 0.9
                mk += 0.1 * g
                vk *= 0.999
                vk += 0.001 * g * g
                p -= lr * (mk / (1 - 0.9 ** step)) / (np.sqrt(vk / (1 - 0.999 ** step)) + 1e-8)
    loss = float(np.mean((net.forward(x)[0] - data.y) ** 2))
    return net, loss


# ---------------------------------------------------------------- closed loop

def run_episode(env, policy, noise: np.ndarray | None) -> dict:
    """One episode from frame 0: policy(obs, step) -> action, plus noise[step].
    Frames tracked: steps before the terminating one (all steps when the
    clip ends first)."""
    base = env.unwrapped
    nq = base.model.nq
    obs, _ = env.reset(seed=0, options={"frame": 0})
    qpos, frames, rewards = [], [], []
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        action = policy(obs, steps)
        if noise is not None:
            action = action + noise[steps]
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        rewards.append(reward)
        if info["fall_reason"] != "diverged":
            qpos.append(obs[:nq])
            frames.append(info["frame"])
    tracked = steps - 1 if terminated else steps
    k = min(50, len(frames))
    err = joint_errors(base.model, np.array(qpos[:k]), base.ref_qpos[frames[:k]]).mean() if k else np.nan
    return {"frames_tracked": tracked, "err50": float(err), "reward_mean": float(np.mean(rewards)),
            "fell": bool(terminated)}


def evaluate(env, name: str, seed, policy, data: ClipData, clip: str, std: float, episodes: int) -> dict:
    """Episodes with noise std `std` (0: one episode, no noise); noise of
    episode i: std * N(0, 1) from np.random.default_rng(i), (T, nu)."""
    runs = []
    for i in range(episodes if std > 0 else 1):
        noise = std * np.random.default_rng(i).standard_normal(data.open_loop.shape) if std > 0 else None
        runs.append(run_episode(env, policy, noise))
    tracked = np.array([r["frames_tracked"] for r in runs])
    return {"clip": clip, "policy": name, "train_seed": seed, "noise_std": std, "episodes": len(runs),
            "never_falls": f"{sum(not r['fell'] for r in runs)}/{len(runs)}",
            "frames_tracked_mean": float(tracked.mean()), "frames_tracked_min": int(tracked.min()),
            "clip_transitions": data.transitions, "tracked_fraction": float(tracked.mean() / data.transitions),
            "err50_rad": float(np.mean([r["err50"] for r in runs])),
            "reward_mean": float(np.mean([r["reward_mean"] for r in runs]))}


# ---------------------------------------------------------------- report

def markdown(table: pd.DataFrame, header: str) -> str:
    shown = table.drop(columns=["clip"]).copy()
    shown["train_seed"] = shown["train_seed"].map(lambda s: "" if pd.isna(s) else str(int(s)))
    return header + shown.to_markdown(index=False, floatfmt=".3g") + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="a dataset file (rule dataset)")
    ap.add_argument("--clip", default="walk")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (one policy each)")
    ap.add_argument("--hidden", nargs="+", type=int, default=[256, 256])
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--noise-episodes", type=int, default=10,
                    help="seeded episodes at the dataset's action noise")
    ap.add_argument("--csv-out", type=Path, default=ROOT / "benchmarks" / "out" / "bc_check.csv")
    ap.add_argument("--table-out", type=Path, default=ROOT / "docs" / "results" / "bc_check.md")
    args = ap.parse_args(argv)
    if not args.dataset.is_file():
        raise SystemExit(f"{args.dataset}: no such dataset file; build one first, e.g. "
                         f"snakemake --cores 2 results/dataset/gradient.h5")
    t0 = time.perf_counter()
    data = load_clip(args.dataset, args.clip)
    print(f"{args.clip}: {data.x.shape[0]} training rows from {data.episodes} episodes, "
          f"{data.transitions} transitions per clip", flush=True)
    env = gymnasium.make(ENV_ID, dataset=str(args.dataset), clip=args.clip)
    stds = [0.0, data.info["action_noise"]] if data.info["action_noise"] > 0 else [0.0]
    rows = []
    for std in stds:
        rows.append(evaluate(env, "open loop", None, lambda obs, t: data.open_loop[t], data, args.clip,
                             std, args.noise_episodes))
        print(rows[-1], flush=True)
    losses = {}
    for seed in args.seeds:
        net, losses[seed] = train(data, seed, args.hidden, args.epochs, args.batch, args.lr)
        print(f"seed {seed}: training MSE {losses[seed]:.3g}", flush=True)

        def policy(obs, t, net=net):
            return net.forward(((obs - data.obs_mean) / data.obs_std)[None])[0][0]
        for std in stds:
            rows.append(evaluate(env, "BC", seed, policy, data, args.clip, std, args.noise_episodes))
            print(rows[-1], flush=True)
    env.close()
    table = pd.DataFrame(rows, columns=COLUMNS)
    args.csv_out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.csv_out, index=False, float_format="%.6g")
    shown_args = [a if not Path(a).is_absolute() else os.path.relpath(a, ROOT) for a in (argv or sys.argv[1:])]
    i = data.info
    header = (
        f"Generated by `python benchmarks/bc_check.py {shlex.join(shown_args)}`.\n\n"
        f"Behaviour cloning on clip `{args.clip}` of a `{i['method']}` dataset (sha256 {i['sha256'][:12]}, "
        f"MuJoCo {i['mujoco_version']}; clip in the {i['split']} split): {data.x.shape[0]} training rows, "
        f"the valid transitions of the clean episode and {i['noisy_rollouts']} noisy rollouts (action noise "
        f"{i['action_noise']:g}), labelled with the controller's clean actions. MLP "
        f"{data.x.shape[1]}-{'-'.join(map(str, args.hidden))}-{data.y.shape[1]} (tanh), MSE, Adam "
        f"(lr {args.lr:g}, batch {args.batch}, {args.epochs} epochs), inputs normalised with the file's "
        f"stats; one policy per training seed, final training MSE "
        f"{', '.join(f'{losses[s]:.3g} (seed {s})' for s in args.seeds)}. Hyper-parameters fixed before "
        f"the first closed-loop run, not tuned on it.\n\n"
        f"Each policy runs closed loop in `gymnasium.make(\"{ENV_ID}\", dataset=..., clip=\"{args.clip}\")` "
        f"from frame 0, noise-free (one episode) and with Gaussian noise of std {i['action_noise']:g} added "
        f"to every action ({args.noise_episodes} seeded episodes, the same noise for every policy). "
        f"`open loop` replays the clean episode's actions (the method's). frames tracked: transitions "
        f"before the fall rule terminates the episode (of {data.transitions}); err50: mean joint error (rad) "
        f"over frames 1 .. min(50, last frame reached); reward: DeepMimic reward per step taken. Means over "
        f"episodes.\n\n")
    md = markdown(table, header)
    args.table_out.parent.mkdir(parents=True, exist_ok=True)
    args.table_out.write_text(md)
    print(md)
    print(f"wrote {args.csv_out} and {args.table_out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
