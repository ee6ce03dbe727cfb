"""Turn a newsroom's feeds into timezone-aware email briefings."""

__version__ = "0.1.0"
