"""The shared training loop: exact SGD, resume, NaN stop, corrupt checkpoints, sharding."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxsampling import checkpoint, metrics
from jaxsampling.train import loop

N, D, BATCH = 64, 3, 16
X = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
W_TRUE = np.array([1.0, -2.0, 0.5], np.float32)
Y = (X @ W_TRUE + 0.1 * np.random.default_rng(1).normal(size=N)).astype(np.float32)


def batch_indices(first, num_steps):
    """Rows of steps ``first ..``: step s uses a permutation seeded by s."""
    return np.stack(
        [np.random.default_rng(s).permutation(N)[:BATCH] for s in range(first, first + num_steps)]
    )


def make_task(nan_from=None, **describe):
    def batches(first, num_steps, rows):
        idx = batch_indices(first, num_steps)[:, rows]
        x = X[idx]
        if nan_from is not None:
            steps = np.arange(first, first + num_steps)
            x = np.where((steps >= nan_from)[:, None, None], np.nan, x).astype(np.float32)
        return {"x": x, "y": Y[idx]}

    def loss_fn(params, batch, key):
        del key
        residual = batch["x"] @ params["w"] + params["b"] - batch["y"]
        return 0.5 * jnp.mean(residual**2), {"max_residual": jnp.max(jnp.abs(residual))}

    return loop.Task(
        init_params=lambda key: {"w": jnp.zeros(D), "b": jnp.zeros(())},
        loss_fn=loss_fn,
        batches=batches,
        batch_size=BATCH,
        evaluate=lambda p: {"w_error": float(jnp.linalg.norm(p["w"] - W_TRUE))},
        describe={"task": "linear", **describe},
    )


def make_config(**overrides):
    config = ml_collections.ConfigDict(
        dict(
            seed=0,
            num_steps=12,
            steps_per_call=2,
            checkpoint_every=4,
            eval_every=4,
            keep_checkpoints=5,
            optimizer=dict(
                name="sgd",
                kwargs={},
                clip_norm=None,
                schedule=dict(kind="constant", peak_value=0.1, warmup_steps=0),
            ),
        )
    )
    config.stop_after_steps = ml_collections.FieldReference(None, field_type=int)
    config.update(overrides)
    return config


def without_timing(rows):
    return [{k: v for k, v in r.items() if k not in loop.TIMING_KEYS} for r in rows]


def numpy_sgd(num_steps, lr=0.1):
    w, b = np.zeros(D), 0.0
    for s in range(num_steps):
        idx = batch_indices(s, 1)[0]
        r = X[idx] @ w + b - Y[idx]
        w, b = w - lr * X[idx].T @ r / BATCH, b - lr * r.mean()
    return w, b


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, loop.fit(make_config(), workdir, make_task())


def test_fit_is_minibatch_sgd_sharded_over_the_devices(straight):
    workdir, result = straight
    assert jax.device_count() == 8 and result.complete
    w, b = numpy_sgd(12)
    np.testing.assert_allclose(result.state.params["w"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.state.params["b"], b, rtol=1e-5, atol=1e-6)
    assert result.state.params["w"].sharding.is_fully_replicated
    assert len(result.state.params["w"].sharding.device_set) == 8
    assert int(result.state.step) == 12
    # The recorded per-step losses are the losses of the SGD iterates.
    assert np.all(np.asarray(result.state.losses) > 0)
    assert [r["step"] for r in result.history] == [4, 8, 12]
    assert [r["examples"] for r in result.history] == [64, 128, 192]
    assert result.history[-1]["w_error"] < result.history[0]["w_error"]
    assert metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl")) == result.history
    assert os.path.exists(os.path.join(workdir, "summary.json"))
    assert result.compile_time > 0


def test_finished_run_returns_the_same(straight):
    workdir, result = straight
    again = loop.fit(make_config(), workdir, make_task())
    assert again.complete and again.history == result.history
    np.testing.assert_array_equal(again.state.params["w"], result.state.params["w"])


def test_stop_and_resume_is_bit_identical(straight, tmp_path):
    _, expected = straight
    workdir = str(tmp_path)
    partial = loop.fit(make_config(stop_after_steps=6), workdir, make_task())
    assert not partial.complete and int(partial.state.step) == 6
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.latest_step() == 4
    resumed = loop.fit(make_config(), workdir, make_task())
    for name in ("w", "b"):
        np.testing.assert_array_equal(resumed.state.params[name], expected.state.params[name])
    np.testing.assert_array_equal(resumed.state.losses, expected.state.losses)
    np.testing.assert_array_equal(resumed.state.grad_norms, expected.state.grad_norms)
    assert without_timing(resumed.history) == without_timing(expected.history)
    rows = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert without_timing(rows) == without_timing(expected.history)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(straight, tmp_path):
    _, expected = straight
    workdir = str(tmp_path)
    with pytest.raises(FloatingPointError, match="non-finite loss or gradient at step 9"):
        loop.fit(make_config(), workdir, make_task(nan_from=9))
    with checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.latest_step() == 8
    assert not os.path.exists(os.path.join(workdir, "summary.json"))
    rows = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert [r["step"] for r in rows] == [4, 8]
    # The data fixed, the run resumes from step 8 and ends as the straight run.
    resumed = loop.fit(make_config(), workdir, make_task())
    np.testing.assert_array_equal(resumed.state.params["w"], expected.state.params["w"])


def _garble(step_dir):
    """Overwrites every file under the state item of a checkpoint step."""
    count = 0
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\x00garbage")
            count += 1
    assert count > 0


def test_corrupt_checkpoint_is_skipped_with_a_warning(straight, tmp_path, caplog):
    _, expected = straight
    workdir = str(tmp_path)
    loop.fit(make_config(stop_after_steps=8), workdir, make_task())
    directory = os.path.join(workdir, "checkpoints")
    _garble(os.path.join(directory, "8"))
    with caplog.at_level("WARNING"):
        resumed = loop.fit(make_config(), workdir, make_task())
    assert any("skipping corrupt checkpoint step 8" in r.getMessage() for r in caplog.records)
    assert os.listdir(directory + ".corrupt")[0].startswith("8-")
    np.testing.assert_array_equal(resumed.state.params["w"], expected.state.params["w"])
    assert without_timing(resumed.history) == without_timing(expected.history)


def test_non_finite_gradient_with_a_finite_loss_stops(tmp_path):
    task = make_task()

    def loss_fn(params, batch, key):
        loss, aux = task.loss_fn(params, batch, key)
        # d/dw sqrt(|w|) = inf at w = 0, times 0: a NaN gradient, a finite loss.
        return loss + 0.0 * jnp.sum(jnp.sqrt(jnp.abs(params["w"]))), aux

    bad = loop.Task(**{**task.__dict__, "loss_fn": loss_fn})
    with pytest.raises(FloatingPointError, match="at step 0"):
        loop.fit(make_config(), str(tmp_path), bad)
    with checkpoint.Checkpointer(os.path.join(str(tmp_path), "checkpoints")) as ckpt:
        assert ckpt.latest_step() is None


def test_every_checkpoint_corrupt_raises_and_moves_nothing(tmp_path):
    workdir = str(tmp_path)
    loop.fit(make_config(stop_after_steps=8), workdir, make_task())
    directory = os.path.join(workdir, "checkpoints")
    for step in ("4", "8"):
        _garble(os.path.join(directory, step))
    with pytest.raises(RuntimeError, match="no checkpoint in .* loads"):
        loop.fit(make_config(), workdir, make_task())
    assert sorted(os.listdir(directory)) == ["4", "8"]
    assert not os.path.exists(directory + ".corrupt")


def test_pmean_reduction_is_close_to_the_deterministic_one(straight, tmp_path):
    _, expected = straight
    result = loop.fit(make_config(deterministic_reduce=False), str(tmp_path), make_task())
    np.testing.assert_allclose(result.state.params["w"], expected.state.params["w"], rtol=1e-5)


def test_process_rows_follow_the_sharding():
    assert loop.process_rows(16) == slice(0, 16)  # one process holds every row
    with pytest.raises(ValueError, match="divisible"):
        loop.process_rows(12)


def test_corrupt_meta_is_skipped(tmp_path):
    workdir = str(tmp_path)
    loop.fit(make_config(stop_after_steps=8), workdir, make_task())
    meta_dir = os.path.join(workdir, "checkpoints", "8", "meta")
    for name in os.listdir(meta_dir):
        with open(os.path.join(meta_dir, name), "w") as f:
            f.write("{not json")
    result = loop.fit(make_config(stop_after_steps=8), workdir, make_task())
    # Step 8 was set aside; the run resumed from 4 and redid steps 4 .. 7.
    assert int(result.state.step) == 8


def test_checkpoint_of_another_configuration_is_refused(straight):
    workdir, _ = straight
    with pytest.raises(ValueError, match="different configuration"):
        loop.fit(make_config(seed=1), workdir, make_task())
    with pytest.raises(ValueError, match="different configuration"):
        loop.fit(make_config(), workdir, make_task(data="other"))


def test_refined_schedule_run_records_its_norms(straight, tmp_path):
    _, first = straight
    config = make_config()
    config.optimizer.schedule.kind = "refined"
    norms = np.asarray(first.state.grad_norms)
    result = loop.fit(config, str(tmp_path), make_task(), grad_norms=norms)
    assert result.complete
    # The last step's learning rate is 0.
    assert result.history[-1]["learning_rate"] == 0.0
    with pytest.raises(ValueError, match="different configuration"):
        loop.fit(config, str(tmp_path), make_task(), grad_norms=norms * 2)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(num_steps=13), "multiple of steps_per_call"),
        (dict(checkpoint_every=3), "checkpoint_every"),
        (dict(eval_every=0), "eval_every"),
    ],
)
def test_bad_schedule(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        loop.fit(make_config(**overrides), str(tmp_path), make_task())


def test_batch_must_split_over_the_devices(tmp_path):
    task = make_task()
    bad = loop.Task(**{**task.__dict__, "batch_size": 12})
    with pytest.raises(ValueError, match="divisible by the 8 devices"):
        loop.fit(make_config(), str(tmp_path), bad)


def test_unknown_optimizer(tmp_path):
    config = make_config()
    config.optimizer.name = "no_such_optimizer"
    with pytest.raises(ValueError, match="unknown optax optimiser"):
        loop.fit(config, str(tmp_path), make_task())


# ----------------------------------------------------------------------------
# Ensembles: parameters sharded along their leading axis (Task.shard_params).
# ----------------------------------------------------------------------------

MEMBERS = 16
TARGETS = np.random.default_rng(2).normal(size=(MEMBERS, D)).astype(np.float32)


def make_ensemble_task(init_scale=0.0):
    """16 independent least-squares fits, member j to targets X w_j, full batch."""

    def batches(first, num_steps, rows):
        del first, num_steps
        return {"x": X[None, rows]}

    def loss_fn(params, batch, key):
        del key
        # This device's members: params["w"] [M_local, D], their fixed targets params["t"].
        target = jax.lax.stop_gradient(params["t"])
        residual = batch["x"] @ (params["w"] - target).T  # [N, M_local]
        per_member = 0.5 * jnp.mean(residual**2, axis=0)
        return jnp.sum(per_member), {"worst": jnp.max(per_member)}

    def init_params(key):
        w = init_scale * jax.random.normal(key, (MEMBERS, D))
        return {"w": w, "t": jnp.asarray(TARGETS)}

    return loop.Task(init_params=init_params, loss_fn=loss_fn, batches=batches, batch_size=N,
                     describe={"task": "ensemble"}, fixed_batch=True, shard_params=True)


def numpy_ensemble_gd(num_steps, lr=0.1):
    w = np.zeros((MEMBERS, D))
    t = TARGETS.astype(np.float64)
    losses = []
    for _ in range(num_steps):
        residual = X @ (w - t).T  # [N, M]
        losses.append(np.sum(0.5 * np.mean(residual**2, axis=0)))
        w = w - lr * (residual.T @ X) / N
    return w, np.array(losses)


def test_ensemble_members_train_independently_and_stay_sharded(tmp_path):
    result = loop.fit(make_config(), str(tmp_path), make_ensemble_task())
    w, losses = numpy_ensemble_gd(12)
    # Each member follows its own gradient descent; the loss is the sum over members.
    np.testing.assert_allclose(result.state.params["w"], w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.state.losses, losses, rtol=1e-5)
    spec = result.state.params["w"].sharding.spec
    assert spec[0] == "batch" and len(result.state.params["w"].sharding.device_set) == 8
    np.testing.assert_array_equal(result.state.params["t"], TARGETS)
    assert result.history[-1]["worst"] > 0


def test_ensemble_resume_is_bit_identical(tmp_path):
    straight = loop.fit(make_config(), str(tmp_path / "a"), make_ensemble_task(0.5))
    workdir = str(tmp_path / "b")
    partial = loop.fit(make_config(stop_after_steps=6), workdir, make_ensemble_task(0.5))
    assert not partial.complete and int(partial.state.step) == 6
    # Another initialisation (same description): only a restored state gives the straight run.
    resumed = loop.fit(make_config(), workdir, make_ensemble_task(7.0))
    np.testing.assert_array_equal(resumed.state.params["w"], straight.state.params["w"])
    np.testing.assert_array_equal(resumed.state.losses, straight.state.losses)
    assert without_timing(resumed.history) == without_timing(straight.history)
    assert resumed.state.params["w"].sharding.spec[0] == "batch"


def test_ensemble_needs_a_divisible_leading_axis(tmp_path):
    task = make_ensemble_task()
    bad = loop.Task(**{**task.__dict__, "init_params": lambda key: {"w": jnp.zeros((12, D))}})
    with pytest.raises(ValueError, match=r"parameter \['w'\] of shape \(12, 3\) needs a leading"):
        loop.fit(make_config(), str(tmp_path / "a"), bad)
    mixed = loop.Task(**{**task.__dict__, "init_params": lambda key: {
        "w": jnp.zeros((16, D)), "t": jnp.zeros((8, D))}})
    with pytest.raises(ValueError, match=r"the same leading \(ensemble\) axis, got \[8, 16\]"):
        loop.fit(make_config(), str(tmp_path / "c"), mixed)
    config = make_config()
    config.optimizer.clip_norm = 1.0
    with pytest.raises(ValueError, match="clip_norm"):
        loop.fit(config, str(tmp_path / "b"), task)
