import torch
from torch import nn

from lexppl.nets import MLP, eval_mode


def test_eval_mode_runs_in_eval_and_gives_each_submodule_its_own_mode_back():
    net = nn.Sequential(MLP(3, 2, (4,), batch_norm=True), nn.Dropout(0.5))
    net.train()
    net[1].eval()  # mixed modes, which ``net.train(flag)`` afterwards would not restore
    before = [b.clone() for b in net.buffers()]
    with eval_mode(net) as inside:
        assert inside is net and not any(m.training for m in net.modules())
        net(torch.randn(8, 3))
    assert all(torch.equal(b, a) for b, a in zip(before, net.buffers()))
    assert net.training and net[0].training and not net[1].training
