"""Upstream simulator impersonating chess.com and lichess on one port."""

from hub.sim.app import SimConfig, make_app, start_sim

__all__ = ["SimConfig", "make_app", "start_sim"]
