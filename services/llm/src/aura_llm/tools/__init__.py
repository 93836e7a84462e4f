"""Tools the assistant may call, as the operator declared them in TOOLS_PATH: built-in call
actions, signed HTTP tools and MCP servers. `build_toolbox` assembles them."""

from __future__ import annotations

import httpx

from aura_llm.tools.builtin import SwitchLanguage, builtin_tool
from aura_llm.tools.config import ToolsConfig, ToolsError
from aura_llm.tools.http import HttpToolRunner
from aura_llm.tools.mcp import McpServer
from aura_llm.tools.toolbox import Ran, Tool, Toolbox

__all__ = ["Ran", "Toolbox", "ToolsConfig", "ToolsError", "build_toolbox"]


def build_toolbox(
    config: ToolsConfig,
    signing_secret: str,
    client: httpx.AsyncClient,
    languages: list[str] | None = None,
) -> Toolbox:
    """The toolbox the file describes, and switch_language when the deployment speaks
    several `languages`; raises ToolsError when the environment lacks what it needs (a
    signing secret, a header's variable)."""
    config.check_environment(signing_secret)
    tools: list[Tool] = [builtin_tool(entry, config.departments) for entry in config.builtins]
    if languages and len(languages) > 1:
        tools.append(SwitchLanguage(languages))
    tools += [HttpToolRunner(entry, signing_secret, client) for entry in config.http_tools]
    return Toolbox(tools, [McpServer(target) for target in config.mcp_servers])
