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


@pytest.mark.parametrize("sampler, steps, nfe", [("ddim", 5, 5), ("dpmpp", 5, 5), ("dpmpp_sde", 5, 5), ("pc", 3, 6),
                                                 ("ode", 3, 5), ("euler_maruyama", 4, 4)])
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


def test_caption_prompts_hold_out_phrasings_and_their_labels_match_the_words():
    from tinyvdm.data import DIRECTIONS, HELD_OUT_PHRASINGS
    from tinyvdm.data.moving_mnist import DIGIT_WORDS
    from tinyvdm.pipelines.t2v import caption_prompts
    prompts, labels = caption_prompts(40, held_out=0.25)
    assert len(prompts) == 40 and labels["held_out"].sum() == 10 and labels["held_out"][-10:].all()
    starts = tuple(p.split("{")[0] for p in HELD_OUT_PHRASINGS)
    assert all(p.startswith(starts) == bool(h) for p, h in zip(prompts, labels["held_out"]))
    for p, d, r in zip(prompts, labels["digit"], labels["direction"]):
        words = f" {p} "
        assert f" {int(d)} " in words or f" {DIGIT_WORDS[d]} " in words, (p, int(d))
        assert words.rstrip().endswith(DIRECTIONS[r]), (p, DIRECTIONS[r])
    with pytest.raises(ValueError, match="held_out"):
        caption_prompts(10, held_out=1.5)


def test_caption_accuracy_scores_every_prompt_and_the_held_out_half(t2v):
    from tinyvdm.metrics import Evaluator
    from tinyvdm.pipelines.t2v import caption_accuracy
    scores, videos = caption_accuracy(t2v, Evaluator.load(), n=6, guidance=2.0, sampler="ddim", steps=2, batch=4)
    assert videos.shape == (6, *t2v.video_shape)
    assert scores["n"] == 6 and scores["n_held_out"] == 3 and scores["nfe"] == 2
    for key in ("digit_acc", "direction_acc", "both_acc", "held_out_both_acc"):
        assert 0 <= scores[key] <= 1
    assert scores["both_acc"] <= min(scores["digit_acc"], scores["direction_acc"])


def test_an_interrupted_caption_accuracy_run_goes_on_to_the_videos_of_one_run(t2v, tmp_path):
    """With a cache, a run stopped after its first batch and started again makes the same videos (an ancestral
    chain draws noise at every step: the generator's state is saved with each batch)."""
    from tinyvdm.metrics import Evaluator
    from tinyvdm.pipelines.t2v import caption_accuracy
    ev = Evaluator.load()
    run = lambda cache: caption_accuracy(t2v, ev, n=4, guidance=2.0, sampler="ancestral", steps=3, batch=2,
                                         cache=cache)
    whole_scores, whole = run(None)
    run(tmp_path)
    parts = sorted((tmp_path / "ancestral-3-w2-n4-b2-seed0-h0.5-k1").glob("*.pt"))
    assert [p.name for p in parts] == ["0.pt", "2.pt"]
    parts[1].unlink()  # stopped after the first batch
    scores, resumed = run(tmp_path)
    timeless = lambda s: {k: v for k, v in s.items() if k != "seconds"}
    assert torch.equal(resumed, whole) and timeless(scores) == timeless(whole_scores) and scores["seconds"] > 0
    assert not torch.equal(resumed[:2], caption_accuracy(t2v, ev, n=2, guidance=2.0, sampler="ancestral", steps=3,
                                                         batch=2, seed=1)[1])


def test_shipped_model_loads_without_pickle_and_its_card_tells_how_it_was_made():
    import json
    from tinyvdm.pipelines.t2v import CHECKPOINT
    state = torch.load(CHECKPOINT, weights_only=True)  # plain tensors and containers only
    assert set(state) == {"config", "step", "wall_s", "ema", "scales"}  # int8 weights and their scales
    card = json.loads(CHECKPOINT.with_suffix(".json").read_text())
    assert card["weights"] == "int8" and card["checkpoint_bytes"] == CHECKPOINT.stat().st_size < 6 * 2**20
    assert card["command"].startswith("python -m tinyvdm train --preset t2v")
    assert card["steps"] == state["step"] == state["config"]["steps"] and card["train_wall_s"] <= 3600
    assert card["best_guidance"] in [r["guidance"] for r in card["guidance_sweep"]["rows"]]
    assert [p["step"] for p in card["curve"]["points"]][-1] == card["steps"]
    t2v = TextToVideo.load()
    assert t2v.best_guidance == card["best_guidance"] and t2v.video_shape == (1, 8, 32, 32)


def test_joint_training_adds_single_frames_learnt_in_image_mode():
    from tinyvdm.train import build_task
    config = get_preset("t2v-tiny")
    config.diffusion["image_batch"] = 6
    task = build_task(config)
    batch = task.batch_fn(0)
    videos, ids, images, image_ids = batch
    assert images.shape == (6, *videos.shape[1:2], 1, *videos.shape[3:]) and image_ids.shape == (6, ids.shape[1])
    assert torch.equal(task.batch_fn(0)[2], images) and not torch.equal(task.batch_fn(1)[2], images)
    # the image term is the loss of the frames alone: it adds to the video loss and never reaches a temporal layer
    image_loss = (task.loss_fn(task.model, batch, torch.Generator().manual_seed(0))
                  - task.loss_fn(task.model, batch[:2], torch.Generator().manual_seed(0)))
    temporal = [p for name, p in task.model.named_parameters() if ".temporal." in name]
    spatial = [p for name, p in task.model.named_parameters() if ".spatial." in name]
    assert image_loss > 0 and temporal and spatial
    image_loss.backward()
    assert all(p.grad is None or p.grad.abs().max() < 1e-7 for p in temporal)
    assert any(p.grad is not None and p.grad.abs().max() > 1e-6 for p in spatial)
