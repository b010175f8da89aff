"""How the drainer notices that a drain's tasks stopped: the modes the benchmark measures.

`drain_end_detection` (stacks/config.py) chooses between waking on the ECS task events
("events") and the timer poll ("poll"). The benchmark runs every scenario once per mode the
configuration model knows, passing the mode through the configuration; a mode the model does
not know yet is reported as not available, never measured with the other mode's numbers.
"""

from __future__ import annotations

from stacks.config import DrainerConfig

SETTING = "drain_end_detection"
EVENTS, POLL = "events", "poll"
MODES = (EVENTS, POLL)


def supported() -> bool:
    """Whether this build's configuration model has the setting at all."""
    return SETTING in DrainerConfig.model_fields


def available(mode: str) -> bool:
    # Without the setting there is only the timer poll.
    return mode in MODES and (supported() or mode == POLL)


def unavailable_reason(mode: str) -> str:
    return f"{mode} mode not available: stacks/config.py has no {SETTING} setting"


def config_for(product: DrainerConfig, mode: str) -> DrainerConfig:
    """The product's configuration in `mode` (validated, as synth would)."""
    if not available(mode):
        raise ValueError(unavailable_reason(mode))
    if not supported():
        return product
    values = {**product.model_dump(), SETTING: mode}
    return DrainerConfig.model_validate(values)


def default_mode() -> str:
    """The mode the shipped configuration runs in."""
    if not supported():
        return POLL
    return str(DrainerConfig.model_fields[SETTING].default)
