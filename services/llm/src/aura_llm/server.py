"""Entry point of the llm service: `aura-llm` or `python -m aura_llm`."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

import grpc
import httpx

from aura.llm.v1 import llm_service_pb2 as pb
from aura.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aura_common import grpc_server
from aura_common.logs import setup_logging
from aura_common.metrics import serve_metrics
from aura_common.settings import load_settings, package_version
from aura_common.tasks import stop
from aura_common.tracing import setup_tracing, shutdown_tracing
from aura_llm.assistant import Assistant
from aura_llm.config import Settings
from aura_llm.failover import FailoverRouter
from aura_llm.knowledge import KnowledgeBaseError
from aura_llm.knowledge.library import LiveKnowledge
from aura_llm.providers import Provider, ProviderConfigError, build_providers
from aura_llm.realtime import RealtimeProvider, build_realtime_providers
from aura_llm.servicer import LlmServicer
from aura_llm.tools import ToolsConfig, ToolsError, build_toolbox

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LlmService"].full_name


def build_router(settings: Settings, providers: list[Provider]) -> FailoverRouter:
    return FailoverRouter(
        providers,
        attempt_timeout=settings.LLM_ATTEMPT_TIMEOUT_SECONDS,
        max_retries=settings.LLM_MAX_RETRIES,
        backoff=settings.LLM_RETRY_BACKOFF_SECONDS,
    )


async def build_server(
    assistant: Assistant,
    settings: Settings,
    host: str,
    port: int,
    realtime: Sequence[RealtimeProvider] = (),
) -> grpc_server.GrpcServer:
    """The llm gRPC server as it runs in production (tests bind it to port 0)."""

    def register(server: grpc.aio.Server) -> None:
        servicer = LlmServicer(assistant, settings, realtime)
        pb_grpc.add_LlmServiceServicer_to_server(servicer, server)

    return await grpc_server.build(
        service_names=[SERVICE_NAME],
        register=register,
        host=host,
        port=port,
        port_setting="LLM_PORT",
        security=settings.grpc_security,
    )


async def serve(
    settings: Settings,
    providers: list[Provider],
    tools: ToolsConfig,
    library: LiveKnowledge,
    realtime: Sequence[RealtimeProvider] = (),
) -> None:
    # No redirects: a tool's URL is the operator's, not wherever its server points.
    client = httpx.AsyncClient(follow_redirects=False)
    toolbox = build_toolbox(tools, settings.TOOLS_SIGNING_SECRET, client, settings.languages)
    assistant = Assistant(
        build_router(settings, providers),
        toolbox,
        settings.MAX_TOOL_ROUNDS,
        library,
        settings.GROUNDING,
    )
    watching = asyncio.create_task(library.watch())

    async def close() -> None:
        await stop(watching)
        await toolbox.close()
        await client.aclose()
        for provider in providers:
            await provider.close()

    log.info("providers %s", ", ".join(f"{p.name} ({p.model})" for p in providers))
    if realtime:
        log.info("realtime providers %s", ", ".join(f"{p.name} ({p.model})" for p in realtime))
    knowledge = library.knowledge
    log.info(
        "knowledge %s: %d passages, %d characters, %s; grounding %s",
        knowledge.source,
        len(knowledge.passages),
        knowledge.chars,
        "sent whole" if library.index.whole else f"top {settings.KNOWLEDGE_TOP_K} per turn",
        settings.GROUNDING,
    )
    await toolbox.start()
    log.info("tools %s", ", ".join(s.name for s in toolbox.specs()) or "none")
    serve_metrics(settings.METRICS_HOST, settings.LLM_METRICS_PORT, "LLM_METRICS_PORT")
    server = await build_server(assistant, settings, settings.LLM_HOST, settings.LLM_PORT, realtime)
    await grpc_server.run_until_signal(
        server, grace=settings.GRACEFUL_SHUTDOWN_SECONDS, on_stop=close
    )


def main() -> None:
    settings = load_settings(Settings)
    setup_logging("llm", settings.LOG_LEVEL, settings.LOG_FORMAT)
    tracer_provider = setup_tracing("aura-llm", package_version("aura-llm"))
    try:
        tools = ToolsConfig.load(settings.TOOLS_PATH)
        tools.check_environment(settings.TOOLS_SIGNING_SECRET)
        library = LiveKnowledge(
            settings.KNOWLEDGE_BASE_PATH, settings.KNOWLEDGE_TOP_K, settings.KNOWLEDGE_MAX_CHARS
        )
        providers = build_providers(settings, library)
        realtime = build_realtime_providers(settings)
    except (ProviderConfigError, KnowledgeBaseError, ToolsError) as exc:
        # A misconfigured provider or tools file must stop the pod at start, not fail
        # every call later.
        log.critical("%s", exc)
        sys.exit(2)
    try:
        asyncio.run(serve(settings, providers, tools, library, realtime))
    finally:
        shutdown_tracing(tracer_provider)


if __name__ == "__main__":
    main()
