"""The digits-ct preset: consistency training from scratch through the one trainer; the curriculum
follows the step (set by the trainer, so a resume continues it bitwise); the run samples with the
consistency sampler by default."""

from __future__ import annotations

import torch

from noisecraft.config import load_config
from noisecraft.distill.losses import ConsistencyTrainingLoss, curriculum_steps
from noisecraft.runs import Run, latest_checkpoint, load_checkpoint
from noisecraft.train import train
from noisecraft.train.build import make_loss

SMALL = ["net.name=unet-tiny", "data.resolution=8", "train.steps=6", "train.batch_size=4", "train.checkpoint_every=2",
         "train.log_every=1", "sample.per_class=1", "train.sample_every=100", "loss.ct_s0=2", "loss.ct_s1=8"]


def test_preset_builds_the_ct_loss():
    cfg = load_config("digits-ct")
    loss = make_loss(cfg)
    assert isinstance(loss, ConsistencyTrainingLoss) and loss.total_steps == 2400 and loss.p_std == 2.0
    assert cfg.sample.solver == "consistency" and cfg.sample.guidance == 1.0


def test_curriculum_follows_the_trainer_and_resume_is_bitwise(tmp_path):
    cfg = load_config("digits-ct", SMALL)
    seen: list[int] = []

    class Spy(ConsistencyTrainingLoss):
        def __call__(self, *a, **k):
            seen.append(self.n_levels)
            return super().__call__(*a, **k)

    def spy():
        return Spy(6, s0=2, s1=8, p_mean=-1.1, p_std=2.0)

    straight = train(cfg, tmp_path / "a", progress=False, loss=spy())
    assert seen == [curriculum_steps(k, 6, 2, 8) for k in range(6)] == [3, 3, 5, 5, 9, 9]
    train(cfg, tmp_path / "b", progress=False, loss=spy(), stop_at=3)
    rest = train(None, tmp_path / "b", resume=True, progress=False, loss=spy())
    assert rest.losses == straight.losses[3:]
    (sa, ta), (sb, tb) = (load_checkpoint(latest_checkpoint(p / "checkpoints")) for p in (tmp_path / "a", tmp_path / "b"))
    assert sa == sb and all(torch.equal(ta["model"][k], tb["model"][k]) for k in ta["model"])
    run = Run.open(tmp_path / "a")
    x = run.generate(run.spec(), 2, class_labels=1)
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()
