"""A minimal aiohttp /health server for the benchmarks: `python -m bench.health_server PORT`."""

from __future__ import annotations

import sys

from aiohttp import web


async def health(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status": "healthy"}', content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                handle_signals=True)


if __name__ == "__main__":
    main()
