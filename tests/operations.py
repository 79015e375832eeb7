"""A test helper: the operations torch runs in a block of code."""

from torch.utils._python_dispatch import TorchDispatchMode


class Operations(TorchDispatchMode):
    """The operations torch runs (each a kernel launch on a GPU), views and host reads aside."""

    VIEWS = {"view", "_unsafe_view", "permute", "transpose", "t", "expand", "detach", "lift_fresh", "unsqueeze",
             "slice", "select", "alias", "as_strided", "_reshape_alias"}

    def __init__(self):
        super().__init__()
        self.kernels, self.host_reads = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in ("_local_scalar_dense", "item", "equal", "is_nonzero"):
            self.host_reads.append(name)
        elif name not in self.VIEWS:
            self.kernels.append(name)
        return func(*args, **(kwargs or {}))
