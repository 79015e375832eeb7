"""dmfcore: implicit regularization in deep matrix factorization (Arora, Cohen, Hu, Luo 2019)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dmfcore")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
