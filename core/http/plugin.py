"""The runtime as a Litestar plugin: its lifespan, and the runtime and its registry through DI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Litestar
from litestar.di import Provide
from litestar.plugins import InitPluginProtocol

if TYPE_CHECKING:
    from litestar.config.app import AppConfig
    from litestar.connection import ASGIConnection

    from core.runtime.runtime import Runtime

__all__ = ["RuntimePlugin", "runtime_of"]


class RuntimePlugin(InitPluginProtocol):
    """Opens the :class:`~core.runtime.runtime.Runtime` with the app and provides it to handlers.

    Route handlers declare ``runtime: Runtime`` or ``registry: TenantRegistry``
    parameters and Litestar injects them (the providers are coroutines that
    return the objects the runtime holds: no worker thread, cached per
    request). Guards and ASGI mounts, which Litestar does not inject,
    call :func:`runtime_of`.

    Args:
        runtime: the runtime the app serves; started in the app's lifespan.
    """

    __slots__ = ("runtime",)

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the runtime's lifespan and its ``runtime`` and ``registry`` dependencies."""
        app_config.lifespan.append(self.runtime.lifespan)
        app_config.dependencies.update(
            {
                "runtime": Provide(self._provide_runtime, use_cache=True),
                "registry": Provide(self._provide_registry, use_cache=True),
            }
        )
        return app_config

    # Annotated Any: Litestar reads a provider's signature at start, and the
    # runtime's module imports this one's importers.
    async def _provide_runtime(self) -> Any:
        return self.runtime

    async def _provide_registry(self) -> Any:
        # Read at each request: the registry is made by Runtime.start (in the lifespan).
        return self.runtime.registry


def runtime_of(source: Litestar | ASGIConnection[Any, Any, Any, Any]) -> Runtime:
    """The runtime of an app, or of the app serving a connection (for guards and mounts).

    Raises:
        KeyError: the app was not built by :func:`core.http.app.create_app`
            (it has no :class:`RuntimePlugin`).
    """
    app = source if isinstance(source, Litestar) else source.app
    return app.plugins.get(RuntimePlugin).runtime  # type: ignore[union-attr]
