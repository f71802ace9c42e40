"""Real-time agent assist: a call checked while it goes on (`LiveSession`) with guidance from YAML
(`Guidance`). Pure like the engine: no I/O except reading a guidance file."""

from .guidance import Guidance, load_guidance, parse_guidance
from .session import LiveError, LiveSession, compile_guidance, live_rules

__all__ = ["Guidance", "LiveError", "LiveSession", "compile_guidance", "live_rules", "load_guidance",
           "parse_guidance"]
