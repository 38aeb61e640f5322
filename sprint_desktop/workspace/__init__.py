"""The window's state and actions, without Qt: parameters, requests, the live loop, the gallery."""

from .params import Params
from .runner import InlineRunner, Runner
from .workspace import ModelState, Workspace, WorkspaceEvents

__all__ = ["InlineRunner", "ModelState", "Params", "Runner", "Workspace", "WorkspaceEvents"]
