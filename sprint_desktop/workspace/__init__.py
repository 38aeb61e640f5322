"""The window's state and actions, without Qt: parameters, requests, the live loop, the gallery."""

from .params import Params
from .runner import InlineRunner, Runner
from .workspace import NO_MODEL, ModelState, Workspace, WorkspaceEvents

__all__ = ["NO_MODEL", "InlineRunner", "ModelState", "Params", "Runner", "Workspace", "WorkspaceEvents"]
