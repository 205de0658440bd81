"""Text-to-video plumbing: caption dropout training through the trainer, every sampler by name, guidance."""
import pytest
import torch

from tinyvdm.pipelines import SAMPLERS, sample
from tinyvdm.pipelines.t2v import TextToVideo
from tinyvdm.train import get_preset, load_checkpoint, train


@pytest.fixture(scope="module")
def t2v(tmp_path_factory):
    config = get_preset("t2v-tiny")
    config.out_dir, config.progress, config.steps = str(tmp_path_factory.mktemp("t2v")), False, 10
    result = train(config)
    net, _, task = load_checkpoint(result.checkpoint)
    return TextToVideo(net, task.diffusion, task.video_shape)


@pytest.mark.parametrize("sampler, steps, nfe", [("ddim", 5, 5), ("dpmpp", 5, 5), ("pc", 3, 6), ("ode", 3, 5),
                                                 ("euler_maruyama", 4, 4)])
def test_every_sampler_runs_guided_with_one_model_call_per_evaluation(t2v, sampler, steps, nfe):
    videos, used = t2v(["the digit 3 moves left", "an 8 goes up"], guidance=2.0, sampler=sampler, steps=steps,
                       return_nfe=True)
    assert videos.shape == (2, *t2v.video_shape) and used == nfe
    assert videos.abs().max() <= 1


def test_same_seed_same_video_and_guidance_one_is_the_conditional_model(t2v):
    a = t2v("the digit 3 moves left", guidance=1.0, sampler="ddim", steps=4, seed=5)
    b = t2v("the digit 3 moves left", guidance=1.0, sampler="ddim", steps=4, seed=5)
    assert torch.equal(a, b)
    ids = t2v.net.tokenizer(["the digit 3 moves left"])
    plain, _ = sample(t2v.diffusion, t2v.net, (1, *t2v.video_shape), "ddim", 4, cond=ids,
                      generator=torch.Generator().manual_seed(5))
    assert torch.allclose(a, plain.clamp(-1, 1))


def test_empty_and_unknown_prompts_are_defined(t2v):
    with pytest.warns(UserWarning, match="unknown word"):
        videos = t2v(["", "the digit 12 flies"], sampler="ddim", steps=2)
    assert torch.isfinite(videos).all()
    with pytest.raises(ValueError, match="at least one prompt"):
        t2v([])


def test_unknown_sampler_is_a_clear_error(t2v):
    with pytest.raises(ValueError, match="unknown sampler 'heun'"):
        t2v("a 3 moving left", sampler="heun")
    assert "ancestral" in SAMPLERS
