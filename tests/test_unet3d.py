"""UNet3D and its attention layers: shapes, the image-model-at-init invariant, which frames see which."""
import math

import pytest
import torch
import torch.nn.functional as F

from tinyvdm.models import RelativePositionBias, SpatialAttention, TemporalAttention, UNet3D
from tinyvdm.models.attention import Attention
from tinyvdm.models.unet3d import timestep_embedding

SMALL = dict(dim=8, dim_mults=(1, 2), heads=2, head_dim=8, groups=4)  # a fast net with every kind of layer


def small_net(**overrides) -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(**{**SMALL, **overrides})


def video(b=2, c=1, t=4, h=8, w=8, seed=0) -> torch.Tensor:
    return torch.randn(b, c, t, h, w, generator=torch.Generator().manual_seed(seed))


def steps(b=2) -> torch.Tensor:
    return torch.randint(0, 1000, (b,), generator=torch.Generator().manual_seed(1))


def wake_zero_layers(model: torch.nn.Module) -> torch.nn.Module:
    """Give the zero-initialised (temporal) layers random weights, as training would."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name and not p.any():
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def zero_temporal_convs(model: UNet3D) -> UNet3D:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".temporal.conv." in name:
                p.zero_()
    return model


def changed_frames(model, x, frame, **kwargs) -> list[bool]:
    """Which output frames move when input frame `frame` is perturbed."""
    y = x.clone()
    y[:, :, frame] += torch.randn(y[:, :, frame].shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        diff = (model(y, steps(), **kwargs) - model(x, steps(), **kwargs)).abs().amax(dim=(0, 1, 3, 4))
    return [bool(d > 1e-5) for d in diff]


@pytest.mark.parametrize("frames, h, w", [(1, 8, 8), (3, 16, 8), (5, 8, 24)])
@pytest.mark.parametrize("mode", ["dense", "cross_frame", "none"])
def test_output_has_the_input_shape_for_any_frame_count_and_size(frames, h, w, mode):
    model = small_net(temporal_attention=mode)
    with torch.no_grad():
        out = model(video(t=frames, h=h, w=w), steps())
    assert out.shape == (2, 1, frames, h, w)


def test_default_net_on_a_course_batch_and_independent_out_channels():
    model = UNet3D(in_channels=3, out_channels=1)
    with torch.no_grad():
        out = model(video(b=1, c=3, t=8, h=32, w=32), steps(1))
    assert out.shape == (1, 1, 8, 32, 32)
    assert sum(p.numel() for p in UNet3D().parameters()) >= 3_160_000  # at least video-diffusion-pytorch's Unet3D


@pytest.mark.parametrize("mode", ["dense", "none"])
def test_at_init_the_video_net_is_the_image_net_run_on_each_frame(mode):
    model = small_net(temporal_attention=mode)
    x = video()
    with torch.no_grad():
        out = model(x, steps())
        per_frame = torch.cat([model(x[:, :, [i]], steps(), image_mode=True) for i in range(x.shape[2])], dim=2)
    torch.testing.assert_close(out, per_frame, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        trained = wake_zero_layers(model)(x, steps())
    assert (trained - per_frame).abs().max() > 1e-3, "once temporal layers are non-zero, frames must interact"


@pytest.mark.parametrize("mode", ["dense", "cross_frame", "none"])
def test_image_mode_keeps_frames_independent(mode):
    model = wake_zero_layers(small_net(temporal_attention=mode))
    x = video(t=5)
    assert changed_frames(model, x, frame=2, image_mode=True) == [False, False, True, False, False]
    assert sum(changed_frames(model, x, frame=2)) > 1, "in video mode, the temporal convs mix frames"


def test_dense_temporal_attention_lets_every_frame_see_every_other():
    x = video(t=6)
    dense = zero_temporal_convs(wake_zero_layers(small_net(temporal_attention="dense")))
    none = zero_temporal_convs(wake_zero_layers(small_net(temporal_attention="none")))
    assert changed_frames(dense, x, frame=4) == [True] * 6
    assert changed_frames(none, x, frame=4) == [False, False, False, False, True, False]


def test_temporal_attention_module_mixes_all_frames():
    torch.manual_seed(0)
    layer = wake_zero_layers(TemporalAttention(16, heads=2, head_dim=8))
    x = torch.randn(2 * 6, 16, 3, 3)  # (B·T, C, H, W)
    y = x.clone()
    y[6 + 1] += torch.randn(16, 3, 3)  # video 1, frame 1
    with torch.no_grad():
        diff = (layer(y, frames=6) - layer(x, frames=6)).abs().amax(dim=(1, 2, 3)).reshape(2, 6)
    assert (diff[1] > 1e-4).all() and (diff[0] == 0).all()


def test_cross_frame_net_is_causal_at_init():
    """Frame i attends to frames 0 and i-1 only, and temporal convs start at zero: nothing flows backwards in time."""
    model = small_net(temporal_attention="cross_frame")
    x = video(t=5)
    assert changed_frames(model, x, frame=2) == [False, False, True, True, True]
    assert changed_frames(model, x, frame=0) == [True] * 5
    assert changed_frames(model, x, frame=4) == [False, False, False, False, True]


def test_cross_frame_attention_is_softmax_over_frame_0_and_the_previous_frame():
    """Tune-A-Video eq. 3, written out per frame: z_i' = softmax(q_i [k_0, k_{i-1}]ᵀ/√d) [v_0, v_{i-1}]."""
    torch.manual_seed(0)
    b, frames, c, h, w, heads, d = 2, 4, 16, 2, 3, 2, 8
    layer = SpatialAttention(c, heads=heads, head_dim=d)
    x = torch.randn(b * frames, c, h, w)
    with torch.no_grad():
        out = layer(x, frames=frames, cross_frame=True)
        z = layer.norm(x.flatten(2).transpose(1, 2)).reshape(b, frames, h * w, c)  # (B, T, N, C)
        w_q, w_k, w_v = layer.attn.to_qkv.weight.chunk(3)
        expected = torch.empty(b, frames, h * w, c)
        for i in range(frames):
            keys_from = torch.cat([z[:, 0], z[:, max(i - 1, 0)]], dim=1)  # (B, 2N, C)
            q = (z[:, i] @ w_q.T).reshape(b, h * w, heads, d).transpose(1, 2)
            k = (keys_from @ w_k.T).reshape(b, 2 * h * w, heads, d).transpose(1, 2)
            v = (keys_from @ w_v.T).reshape(b, 2 * h * w, heads, d).transpose(1, 2)
            attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v
            expected[:, i] = layer.attn.to_out(attn.transpose(1, 2).reshape(b, h * w, heads * d))
        expected = x + expected.reshape(b * frames, h, w, c).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_cross_frame_attention_on_a_translating_video_is_self_attention():
    """Attention without a position encoding sees its keys as a set. When every frame is frame 0 moved (circularly),
    [k_0, k_{i-1}] are frame i's own keys moved and repeated, and the softmax over them is self-attention's: cross-frame
    attention can carry what frame 0 looks like, never where it is. Frames that differ in content do get changed."""
    torch.manual_seed(0)
    b, frames, c, h, w = 2, 5, 16, 6, 6
    layer = SpatialAttention(c, heads=2, head_dim=8)
    first = torch.randn(b, c, h, w)
    moving = torch.stack([first.roll((i, 2 * i), (-2, -1)) for i in range(frames)], 1).flatten(0, 1)  # (B·T, C, H, W)
    with torch.no_grad():
        torch.testing.assert_close(layer(moving, frames, cross_frame=True), layer(moving, frames), atol=1e-5, rtol=1e-5)
        other = torch.randn_like(moving)
        assert (layer(other, frames, cross_frame=True) - layer(other, frames)).abs().amax() > 0.1


def test_relative_position_bias_depends_only_on_the_offset():
    torch.manual_seed(0)
    bias = RelativePositionBias(heads=3)
    torch.nn.init.normal_(bias.bias.weight)
    b = bias(12)  # (heads, T, T)
    for s in (1, 3):
        torch.testing.assert_close(b[:, s:, s:], b[:, :-s, :-s])  # Toeplitz: b[i + s, j + s] = b[i, j]
    torch.testing.assert_close(bias(5), b[:, :5, :5])  # a shorter clip sees the same offsets
    offsets = torch.arange(-40, 41)
    buckets = bias.bucket(offsets)
    assert (buckets[offsets <= 0].diff() <= 0).all() and (buckets[offsets >= 0].diff() >= 0).all()
    assert set(buckets[offsets < 0].tolist()).isdisjoint(buckets[offsets > 0].tolist()), "past and future apart"
    assert buckets.max() < 32 and (buckets[40 - 7: 40 + 8].unique().numel() == 15), "offsets |j-i| < 8 are exact"


def test_timestep_embedding_has_constant_norm_and_float_times_scale():
    t = torch.tensor([0.0, 1.0, 500.0, 999.0])
    emb = timestep_embedding(t, 32)
    torch.testing.assert_close(emb.norm(dim=-1), torch.full((4,), math.sqrt(16.0)))  # cos² + sin² = 1 per pair
    torch.testing.assert_close(emb[0], torch.cat([torch.ones(16), torch.zeros(16)]))
    discrete, continuous = small_net(), small_net(time_scale=1000.0)
    x, t_int = video(), torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(continuous(x, t_int / 1000.0), discrete(x, t_int), atol=1e-4, rtol=1e-4)
        assert (discrete(x, torch.tensor([10, 10])) - discrete(x, torch.tensor([900, 900]))).abs().max() > 1e-3


def test_cond_vector_is_a_one_token_sequence_and_batch_items_stay_independent():
    model = small_net(cond_dim=6)
    x, cond = video(), torch.randn(2, 3, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x, steps(), cond[:, 0]), model(x, steps(), cond[:, :1]))
        both = model(torch.cat([x, x]), torch.cat([steps(), steps()]), torch.cat([cond, torch.zeros_like(cond)]))
        torch.testing.assert_close(both[:2], model(x, steps(), cond), atol=1e-5, rtol=1e-5)
        assert (both[:2] - both[2:]).abs().max() > 1e-3, "the condition must change the output"
        later = cond.clone()
        later[:, 2] += 1.0
        assert (model(x, steps(), later) - model(x, steps(), cond)).abs().max() > 1e-4, "all tokens are attended"


def test_qkv_hook_records_and_injects_attention():
    torch.manual_seed(0)
    attn = Attention(16, heads=2, head_dim=8)
    a, b = torch.randn(3, 5, 16), torch.randn(3, 5, 16)
    recorded = {}

    def record(q, k, v):
        recorded.update(q=q, k=k, v=v)
        return q, k, v

    attn.qkv_hook = record
    out_a = attn(a)
    assert recorded["q"].shape == (3, 2, 5, 8)
    attn.qkv_hook = lambda q, k, v: (recorded["q"], recorded["k"], recorded["v"])
    torch.testing.assert_close(attn(b), out_a)
    attn.qkv_hook = None
    assert (attn(b) - out_a).abs().max() > 1e-3


def test_bad_inputs_raise_clear_errors():
    model = small_net()
    with pytest.raises(ValueError, match=r"expected a video batch \(B, C, T, H, W\), got \(2, 8, 8\)"):
        model(torch.randn(2, 8, 8), steps())
    with pytest.raises(ValueError, match="expected 1 channels"):
        model(video(c=3), steps())
    with pytest.raises(ValueError, match="frame size 8x12 must be divisible by 8"):
        UNet3D(**{**SMALL, "dim_mults": (1, 2, 2, 4)})(video(h=8, w=12), steps())
    with pytest.raises(ValueError, match=r"expected t of shape \(2,\)"):
        model(video(), torch.tensor(5))
    with pytest.raises(ValueError, match="unconditional"):
        model(video(), steps(), torch.randn(2, 4))
    conditional = small_net(cond_dim=4)
    with pytest.raises(ValueError, match="needs cond"):
        conditional(video(), steps())
    with pytest.raises(ValueError, match=r"expected cond \(2, L, 4\) or \(2, 4\), got \(2, 3, 5\)"):
        conditional(video(), steps(), torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="temporal_attention must be one of"):
        UNet3D(temporal_attention="full")


@pytest.mark.parametrize("mode", ["dense", "cross_frame"])
def test_every_parameter_gets_a_gradient_after_one_step(mode):
    model = small_net(temporal_attention=mode, cond_dim=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, cond = video(), torch.randn(2, 3, 4)
    for _ in range(2):  # the first step moves the zero-initialised layers off zero
        optimizer.zero_grad()
        F.mse_loss(model(x, steps(), cond), x).backward()
        optimizer.step()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not silent, f"no gradient reaches {silent}"


def test_patches_are_pixels_regrouped_so_frames_and_pixels_stay_where_they_were():
    """patch_size p: the net sees (p·p·C)-channel tokens; a pixel only ever influences its own frame's output at init,
    and the output has the input's shape."""
    model = small_net(patch_size=2)
    x = video(h=16, w=16)
    assert model(x, steps()).shape == x.shape
    assert changed_frames(model, x, 1) == [False, True, False, False]  # still an image model at init
    assert changed_frames(wake_zero_layers(model), x, 1) == [True, True, True, True]
    with pytest.raises(ValueError, match="frame size 12x12 must be divisible by 8"):  # 2x2 patches, then 2x
        small_net(patch_size=4)(video(h=12, w=12), steps())
    with pytest.raises(ValueError, match="patch_size must be a positive integer"):
        UNet3D(patch_size=0)
    patches = F.pixel_unshuffle(torch.arange(16.0).reshape(1, 1, 4, 4), 2)
    assert patches[0, :, 0, 0].tolist() == [0, 1, 4, 5]  # one token = one 2x2 block of pixels


def test_ctx_is_read_per_frame_and_pixel_and_its_level_changes_the_prediction():
    """ctx frame k changes output frame k (and, through temporal layers, others), ctx_level changes everything."""
    torch.manual_seed(0)
    net = UNet3D(dim=8, dim_mults=(1, 2), heads=2, head_dim=8, ctx_channels=2, ctx_level=True).eval()
    x, t = torch.randn(2, 1, 4, 16, 16), torch.tensor([3, 50])
    ctx, level = torch.randn(2, 2, 4, 16, 16), torch.tensor([0.1, 0.5])
    out = net(x, t, ctx=ctx, ctx_level=level)
    ctx2 = ctx.clone()
    ctx2[1, :, 2] += 1.0
    out2 = net(x, t, ctx=ctx2, ctx_level=level, image_mode=True)
    ref = net(x, t, ctx=ctx, ctx_level=level, image_mode=True)
    changed = (out2 - ref).abs().amax(dim=(1, 3, 4))  # (B, T): in image mode only video 1, frame 2 moves
    assert changed[1, 2] > 1e-3 and changed[0].max() == 0 and changed[1, [0, 1, 3]].max() == 0
    assert (net(x, t, ctx=ctx, ctx_level=torch.tensor([0.1, 0.9])) - out)[1].abs().max() > 1e-4


def test_ctx_errors_name_the_expected_shape():
    net = UNet3D(dim=8, dim_mults=(1, 2), heads=2, head_dim=8, ctx_channels=2, ctx_level=True)
    plain = UNet3D(dim=8, dim_mults=(1, 2), heads=2, head_dim=8)
    x, t = torch.randn(2, 1, 4, 16, 16), torch.tensor([3, 5])
    with pytest.raises(ValueError, match=r"expected ctx \(2, 2, 4, 16, 16\)"):
        net(x, t, ctx=torch.randn(2, 2, 4, 8, 8), ctx_level=torch.rand(2))
    with pytest.raises(ValueError, match="needs ctx_level"):
        net(x, t, ctx=torch.randn(2, 2, 4, 16, 16))
    with pytest.raises(ValueError, match="takes no ctx"):
        plain(x, t, ctx=torch.randn(2, 2, 4, 16, 16))


def test_grad_checkpoint_gives_the_same_gradients_from_fewer_saved_activations():
    x, t, cond = video(), steps(), torch.randn(2, 3, 16)
    grads, saved = [], []
    for grad_checkpoint in (False, True):
        net = wake_zero_layers(small_net(cond_dim=16, grad_checkpoint=grad_checkpoint))
        numel = []
        with torch.autograd.graph.saved_tensors_hooks(lambda s: numel.append(s.numel()) or s, lambda s: s):
            loss = net(x, t, cond).square().mean()
        loss.backward()
        grads.append([p.grad for p in net.parameters()])
        saved.append(sum(numel))
    for g, g_ckpt in zip(*grads):
        torch.testing.assert_close(g_ckpt, g, rtol=1e-6, atol=1e-9)
    assert saved[1] < 0.5 * saved[0], f"checkpointing kept {saved[1]} of {saved[0]} saved values"


def test_freeze_spatial_leaves_exactly_the_temporal_layers_trainable():
    from tinyvdm.models import freeze_spatial
    net = small_net()
    trainable = freeze_spatial(net)
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    assert names and all(".temporal." in n for n in names), names
    assert trainable == sum(p.numel() for n, p in net.named_parameters() if ".temporal." in n)
