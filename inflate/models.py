"""Creating 2D models by name (timm or a preset), with weights from local files only."""

from __future__ import annotations

import difflib
import os
from typing import Any, Optional

from torch import nn

from .core.errors import InflateError, InvalidInputError
from .io import fit_state_dict, load_state_dict_file
from .presets.registry import MODELS_3D, PRESETS, register_model, register_preset

__all__ = ["create_2d_model", "create_model", "register_preset", "register_model", "list_presets", "PRESETS",
           "MODELS_3D", "NoNetworkError"]


class NoNetworkError(InflateError):
    """Pretrained weights were asked for but could not be downloaded."""


def _load_presets() -> None:
    from .presets import load_presets

    load_presets()


def list_presets() -> list[str]:
    """Names of the 2D presets and of the ready 3D models."""
    _load_presets()
    return sorted(PRESETS) + sorted(MODELS_3D)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """A ready 3D model by preset name (``i3d_rgb``, ``i3d_flow``, ``i3d_two_stream``)."""
    _load_presets()
    if name not in MODELS_3D:
        close = difflib.get_close_matches(name, list(MODELS_3D), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(MODELS_3D))}"
        raise InvalidInputError(f"unknown 3D model {name!r}{hint} (inflate a 2D model with inflate_model)")
    return MODELS_3D[name](**kwargs)


def _unknown(name: str) -> InvalidInputError:
    import timm

    candidates = timm.list_models() + list_presets()
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `inflate list PATTERN` searches the names"
    return InvalidInputError(f"unknown model {name!r}{hint}")


_HINT = "pass a local file with --weights FILE (weights=...), or --no-pretrained for random weights"
_OFFLINE_VALUES = ("1", "true", "yes", "on")


def _hub_hosts(name: str) -> list[tuple[str, int]]:
    """Where timm would fetch ``name``'s weights from: the Hugging Face endpoint, or its URL's host."""
    from urllib.parse import urlsplit

    import timm.models

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    urls = [endpoint]
    try:
        cfg = timm.models.get_pretrained_cfg(name)
        if cfg is not None and not getattr(cfg, "hf_hub_id", None) and getattr(cfg, "url", None):
            urls = [cfg.url]
    except Exception:  # an unknown tag: timm will say so itself
        pass
    hosts = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            hosts.append((parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)))
    return hosts


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    """One TCP connection attempt, DNS included, bounded by ``timeout`` seconds."""
    import socket
    import threading

    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    worker = threading.Thread(target=attempt, daemon=True)  # getaddrinfo ignores socket timeouts
    worker.start()
    worker.join(timeout)
    return bool(result and result[0])


def _create_pretrained(name: str, **kwargs: Any) -> nn.Module:
    """timm's pretrained model, failing within seconds when the hub cannot be reached.

    Without network (HF_HUB_OFFLINE set, or no connection to the weights' host within 3 s),
    only the local cache is tried (huggingface_hub's offline mode), so there are no minutes
    of retries before the error.
    """
    import timm

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in _OFFLINE_VALUES
    unreachable = None
    if not offline:
        unreachable = next((f"{h}:{p}" for h, p in _hub_hosts(name) if not _reachable(h, p)), None)
    if offline or unreachable:
        try:
            import huggingface_hub.constants as hub
        except ImportError:
            hub = None
        previous = getattr(hub, "HF_HUB_OFFLINE", None)
        try:
            if hub is not None:
                hub.HF_HUB_OFFLINE = True  # the local cache only: no request, no retry
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as error:
            reason = "HF_HUB_OFFLINE is set" if offline else f"cannot reach {unreachable}"
            raise NoNetworkError(f"could not get pretrained weights for {name!r}: {reason} and they are not in the "
                                 f"local cache; {_HINT}") from None
        finally:
            if hub is not None:
                hub.HF_HUB_OFFLINE = previous
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except Exception as error:  # hub errors come in many types
        raise NoNetworkError(
            f"could not get pretrained weights for {name!r} ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'}); {_HINT}"
        ) from None


def create_2d_model(
    name: str,
    *,
    pretrained: bool = False,
    weights: Optional[str | os.PathLike[str]] = None,
    num_classes: Optional[int] = None,
    **kwargs: Any,
) -> nn.Module:
    """A 2D model by timm name or preset name, in eval mode.

    ``weights`` loads a local .safetensors/.pth state dict (safely; every tensor must fit).
    ``pretrained`` downloads from the hub; without network this fails with a message that
    says how to pass ``weights`` instead. Random weights are never used silently in its place.
    """
    import timm

    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise InvalidInputError(f"num_classes must be an integer >= 0 (0: no classifier), got {num_classes!r}")
        kwargs["num_classes"] = num_classes
    _load_presets()
    if name in PRESETS:
        model = PRESETS[name](**kwargs)
    else:
        if not timm.is_model(name):
            raise _unknown(name)
        if pretrained and weights is None:
            return _create_pretrained(name, **kwargs).eval()
        model = timm.create_model(name, pretrained=False, **kwargs)
    if weights is not None:
        fit_state_dict(model, load_state_dict_file(weights), what=f"weights in {weights}")
    return model.eval()
