"""An admin page to mount in your app: find a user, revoke sessions, stats, live events.

Example::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from redis_jwt.admin import create_admin_app

    def is_admin(request) -> bool:  # your own authentication decides
        return request.headers.get("x-admin-token") == ADMIN_TOKEN

    app = Starlette(routes=[Mount("/admin", app=create_admin_app(auth, authorize=is_admin))])

Every path under the mount, static files and unknown paths included, answers
403 unless ``authorize(request)`` returns True. Needs Starlette
(``pip install 'redis-jwt[admin]'``).
"""

from ._app import Authorize, create_admin_app

__all__ = ["Authorize", "create_admin_app"]
