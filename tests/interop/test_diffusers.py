"""The diffusers adapter against diffusers itself: the same network, the same numbers."""

import sys

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

import noisecraft  # noqa: E402
from noisecraft.interop import eps_model_to_denoiser, from_diffusers, process_from_scheduler  # noqa: E402


def tiny_unet(seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=2, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        **kwargs,
    )
    return unet.eval()


def rand(*shape, seed=1, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_denoiser_matches_hand_computation_at_integer_timesteps(unet, prediction_type):
    scheduler = diffusers.DDPMScheduler(prediction_type=prediction_type)
    denoiser = from_diffusers(unet, scheduler)
    ac = scheduler.alphas_cumprod.double()
    seen = []
    hook = unet.register_forward_pre_hook(lambda m, args: seen.append(args[1].clone()))
    try:
        for t in (0, 17, 500, 999):
            a = ac[t]
            sigma = torch.sqrt((1 - a) / a)
            x = rand(3, 2, 8, 8, seed=t, dtype=torch.float64) * torch.sqrt(1 + sigma**2)  # σ-space
            x_t = x * a.sqrt()
            with torch.no_grad():
                out = unet(x_t.float(), torch.full((3,), t)).sample.double()
                got = denoiser(x, sigma.expand(3))
            expected = {
                "epsilon": x - sigma * out,
                "v_prediction": a.sqrt() * x_t - (1 - a).sqrt() * out,
                "sample": out,
            }[prediction_type]
            assert got.dtype == torch.float64
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(seen[-1].double(), torch.full((3,), float(t), dtype=torch.float64),
                                       rtol=0, atol=1e-6)
    finally:
        hook.remove()


def test_fractional_timesteps_reach_the_unet(unet):
    """Between table entries the network gets the fractional t whose log-interpolated σ is asked for."""
    process = process_from_scheduler(diffusers.DDIMScheduler())
    denoiser = from_diffusers(unet, diffusers.DDIMScheduler())
    seen = []
    hook = unet.register_forward_pre_hook(lambda m, args: seen.append(args[1].clone()))
    try:
        sigma = torch.sqrt(process.sigmas[400] * process.sigmas[401])  # halfway in log σ
        with torch.no_grad():
            denoiser(rand(2, 2, 8, 8, dtype=torch.float64), sigma.expand(2))
    finally:
        hook.remove()
    torch.testing.assert_close(seen[-1].double(), torch.full((2,), 400.5, dtype=torch.float64), rtol=0, atol=1e-6)


def ddim_sigmas(scheduler) -> list[float]:
    """σ at each DDIM timestep plus the σ of the step's end point: diffusers' final step goes to
    `final_alpha_cumprod` (1 with set_alpha_to_one -> σ = 0; otherwise ᾱ_0, a step of length zero
    that is dropped)."""
    ac = scheduler.alphas_cumprod.double()
    final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=torch.float64)
    sig = lambda a: float(torch.sqrt((1 - a) / a))  # noqa: E731
    sigmas = [sig(ac[int(t)]) for t in scheduler.timesteps]
    last = sig(final)
    if last < sigmas[-1]:
        sigmas.append(last)
    return sigmas


def run_diffusers_ddim(unet, scheduler, x_T):
    x = x_T
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(x, t).sample
            x = scheduler.step(out, t, x, eta=0.0).prev_sample
    return x


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("spacing,alpha_to_one", [("leading", True), ("trailing", True), ("leading", False)])
@pytest.mark.parametrize("solver", ["euler", "ddim"])
def test_reproduces_diffusers_ddim(unet, prediction_type, spacing, alpha_to_one, solver):
    scheduler = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=alpha_to_one, timestep_spacing=spacing,
                                        prediction_type=prediction_type)
    scheduler.set_timesteps(10)
    x_T = rand(4, 2, 8, 8, seed=7)
    expected = run_diffusers_ddim(unet, scheduler, x_T).double()

    sigmas = ddim_sigmas(scheduler)
    denoiser = from_diffusers(unet, scheduler)
    noise = x_T.double() * (1 + sigmas[0] ** 2) ** 0.5 / sigmas[0]  # x = x_T·sqrt(1+σ_T²) = σ_T·noise
    x = noisecraft.sample(denoiser, noise, solver=solver, sigmas=sigmas, nfe=len(sigmas) - 1)
    if sigmas[-1] > 0:  # ended at σ(t=0): back to diffusers' x_t
        x = x / (1 + sigmas[-1] ** 2) ** 0.5
    assert len(sigmas) - 1 == (10 if alpha_to_one else 9)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)


def test_config_dict_and_scheduler_give_the_same_process():
    scheduler = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    a, b = process_from_scheduler(scheduler), process_from_scheduler(dict(scheduler.config))
    torch.testing.assert_close(a.sigmas, b.sigmas, rtol=0, atol=0)
    ac = scheduler.alphas_cumprod.double()
    torch.testing.assert_close(a.sigmas, torch.sqrt((1 - ac) / ac), rtol=1e-12, atol=0)


def test_unsupported_prediction_type_lists_valid(unet):
    with pytest.raises(ValueError, match="flow_prediction.*epsilon.*v_prediction.*sample"):
        from_diffusers(unet, {"prediction_type": "flow_prediction", "num_train_timesteps": 1000})
    with pytest.raises(ValueError, match="epsilon"):
        from_diffusers(unet, diffusers.DDPMScheduler(), prediction_type="eps")


def test_schedulers_without_betas_are_rejected(unet):
    with pytest.raises(ValueError, match="EDMEulerScheduler has no DDPM beta table"):
        from_diffusers(unet, diffusers.EDMEulerScheduler())
    with pytest.raises(ValueError, match="no DDPM beta table"):
        from_diffusers(unet, {"prediction_type": "epsilon", "sigma_min": 0.002})


def test_zero_terminal_snr_is_rejected(unet):
    with pytest.raises(ValueError, match="rescale_betas_zero_snr"):
        from_diffusers(unet, diffusers.DDIMScheduler(rescale_betas_zero_snr=True))


def test_missing_diffusers_names_the_extra(unet, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` raise ImportError
    with pytest.raises(ImportError, match=r"pip install noisecraft\[diffusers\]"):
        from_diffusers(unet, {"prediction_type": "epsilon", "beta_schedule": "linear"})


def test_conditioning_reaches_the_unet():
    unet = tiny_unet(num_class_embeds=3)
    denoiser = from_diffusers(unet, diffusers.DDPMScheduler())
    x, sigma = rand(2, 2, 8, 8, dtype=torch.float64) * 3, torch.full((2,), 2.0, dtype=torch.float64)
    with torch.no_grad():
        d0 = denoiser(x, sigma, class_labels=torch.tensor([0, 0]))
        d1 = denoiser(x, sigma, class_labels=torch.tensor([1, 2]))
        out = noisecraft.sample(denoiser, rand(2, 2, 8, 8), solver="dpmpp_2m", nfe=4, sigma_min=0.02, sigma_max=50.0,
                                class_labels=torch.tensor([1, 2]))
    assert not torch.allclose(d0, d1)
    assert out.shape == (2, 2, 8, 8) and torch.isfinite(out).all()


def test_learned_variance_half_is_dropped():
    torch.manual_seed(0)
    learned = diffusers.UNet2DModel(
        sample_size=8, in_channels=2, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    ).eval()
    denoiser = from_diffusers(learned, diffusers.DDPMScheduler(variance_type="learned_range"))
    x, sigma = rand(2, 2, 8, 8, dtype=torch.float64), torch.full((2,), 1.5, dtype=torch.float64)
    with torch.no_grad():
        t = process_from_scheduler(diffusers.DDPMScheduler()).t_of_sigma(sigma)
        eps = learned((x / (1 + 1.5**2) ** 0.5).float(), t).sample[:, :2].double()
        torch.testing.assert_close(denoiser(x, sigma), x - 1.5 * eps, rtol=1e-5, atol=1e-5)


def test_eps_model_to_denoiser_matches_mixture_oracle():
    """An exact ε-model of a Gaussian mixture, wrapped, gives back the mixture's exact denoiser."""
    mix = noisecraft.GaussianMixture(torch.tensor([[1.0, -1.0], [-0.5, 0.5]]), torch.tensor([0.3, 0.5]))
    process = noisecraft.DiscreteVPProcess("linear")

    def eps_fn(x_t, t):
        sigma = process.sigma(t).reshape(-1, 1)
        x = x_t * torch.sqrt(1 + sigma**2)
        return (x - mix(x, sigma.reshape(-1))) / sigma

    denoiser = eps_model_to_denoiser(eps_fn, "linear")
    x = rand(5, 2, dtype=torch.float64) * 4
    sigma = torch.tensor([0.02, 0.3, 1.0, 4.0, 100.0], dtype=torch.float64)
    torch.testing.assert_close(denoiser(x, sigma), mix(x, sigma), rtol=1e-10, atol=1e-10)
    with pytest.raises(TypeError, match="callable"):
        eps_model_to_denoiser(42, "linear")
