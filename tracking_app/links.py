"""Each campaign's link table, read from PostgreSQL on the campaign's first click, then kept.

A campaign's links never change once stored (sending numbers them at launch), so a process may keep
them: at most `max_campaigns` tables, the least recently clicked dropped first. This and the event
buffer are the app's only state, so any number of instances can serve behind a load balancer.
"""

from __future__ import annotations

import html
from collections import OrderedDict

from starlette.responses import RedirectResponse, Response

from campaign_pipelines.store import tracking as tracking_sql
from tracking_app.database import Database
from tracking_app.responses import NO_STORE

_SCHEMES = ("http://", "https://")


class LinkTables:
    def __init__(self, db: Database, max_campaigns: int) -> None:
        self._db = db
        self._max = max_campaigns
        self._tables: OrderedDict[int, dict[int, Response]] = OrderedDict()

    async def redirect(self, campaign_id: int, number: int) -> Response | None:
        """The 302 to link `number` of the campaign (built once), or None if the campaign has no such link."""
        table = self._tables.get(campaign_id)
        if table is None:
            table = await self._load(campaign_id)
        else:
            self._tables.move_to_end(campaign_id)
        return table.get(number)

    async def _load(self, campaign_id: int) -> dict[int, Response]:
        async with self._db.connection() as conn:
            table = self._tables.get(campaign_id)  # another request may have loaded it meanwhile
            if table is not None:
                return table
            stored = await tracking_sql.link_table(conn, campaign_id)
        # The table holds href attributes as written in the template (`&amp;` for `&`): a browser
        # would have unescaped them. Only http(s) URLs are ever redirected to.
        table = {
            number: RedirectResponse(html.unescape(url), status_code=302, headers={"Cache-Control": NO_STORE})
            for number, url in stored.items()
            if url[:8].lower().startswith(_SCHEMES)
        }
        if table:  # a campaign without links yet (not launched) is read again next time
            self._tables[campaign_id] = table
            while len(self._tables) > self._max:
                self._tables.popitem(last=False)
        return table
