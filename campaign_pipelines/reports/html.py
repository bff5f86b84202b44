"""A campaign report as one self-contained HTML page: tables and inline SVG charts, readable offline.

Called by reports.publish. Every value from the database is escaped (Jinja autoescape); the SVG is ours.
"""

from __future__ import annotations

import functools

import jinja2
from markupsafe import Markup

from campaign_pipelines.reports.model import CampaignReport

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Campaign {{ r.campaign_id }} · {{ r.name }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { background: #fff6d6; padding: 0.4em 0.8em; border-left: 4px solid #e0b000; }
.muted { color: #777; }
</style></head><body>
<h1>Campaign {{ r.campaign_id }} · {{ r.name }}</h1>
<p>Status <b>{{ r.status }}</b>
{% if r.started_at %} · launched {{ r.started_at.isoformat(timespec="minutes") }}{% endif %}
{% if r.finished_at %} · finished {{ r.finished_at.isoformat(timespec="minutes") }}{% endif %}
<span class="muted">· report of {{ r.generated_at.isoformat(timespec="seconds") }}</span></p>
{% for note in r.notes %}<p class="note">{{ note }}</p>{% endfor %}
<p class="muted">Rates are of the contacts sent. "Human" leaves out what the tracking app flagged as machines:
Apple Mail Privacy Protection, security scanners and prefetchers.</p>
<h2>Funnel</h2>
{{ funnel_svg }}
<table><tr><th>contacts</th><th>sendable</th><th>sent</th><th>failed</th><th>unknown</th><th>suppressed</th>
<th>pending</th><th>delivered</th><th>hard bounces</th><th>soft bounces</th><th>complaints</th>
<th>unsubscribes</th></tr>
<tr><td>{{ t.contacts | n }}</td><td>{{ r.sendable | n }}</td><td>{{ t.sent | n }}</td>
<td>{{ t.failed | n }}</td><td>{{ t.unknown | n }}</td><td>{{ t.suppressed | n }}</td>
<td>{{ t.pending | n }}</td><td>{{ t.delivered | n }}</td><td>{{ t.hard_bounced | n }}</td>
<td>{{ t.soft_bounced | n }}</td><td>{{ t.complained | n }}</td>
<td>{{ t.unsubscribed | n }}</td></tr></table>
{% macro funnel_cells(f) -%}
<td>{{ f.contacts | n }}</td><td>{{ f.sent | n }}</td><td>{{ pct(f.rates().open_rate) }}</td>
<td>{{ pct(f.rates().human_open_rate) }}</td><td>{{ pct(f.rates().click_rate) }}</td>
<td>{{ pct(f.rates().human_click_rate) }}</td><td>{{ pct(f.rates().hard_bounce_rate) }}</td>
<td>{{ pct(f.rates().complaint_rate) }}</td><td>{{ f.unsubscribed | n }}</td>
{%- endmacro %}
{% set head %}<th>contacts</th><th>sent</th><th>opens</th><th>human opens</th><th>clicks</th><th>human clicks</th>
<th>hard bounces</th><th>complaints</th><th>unsubscribes</th>{% endset %}
<h2>Per line</h2>
<table><tr><th>line</th><th>sender</th><th>server</th>{{ head }}</tr>
{% for line in r.lines %}<tr><td>{{ line.label }}</td><td>{{ line.sender }}</td><td>{{ line.server }}</td>
{{ funnel_cells(line.funnel) }}</tr>{% else %}<tr><td colspan="12" class="muted">no lines</td></tr>{% endfor %}</table>
<h2>Per recipient domain (top {{ r.domains | length }})</h2>
<table><tr><th>domain</th>{{ head }}</tr>
{% for d in r.domains %}<tr><td>{{ d.domain }}</td>{{ funnel_cells(d.funnel) }}</tr>{% endfor %}
{% if r.other_domains.contacts %}
<tr><td class="muted">other domains</td>{{ funnel_cells(r.other_domains) }}</tr>{% endif %}
</table>
<h2>Per hour since launch</h2>
{% if r.hours %}{{ hourly_svg }}{% endif %}
<table><tr><th>hour (UTC)</th><th>since launch</th><th>sent</th><th>failed</th><th>opens</th><th>human opens</th>
<th>clicks</th><th>human clicks</th><th>unsubscribes</th></tr>
{% for h in r.hours %}<tr><td>{{ h.hour.strftime("%Y-%m-%d %H:00") }}</td><td>{{ h.hours_since_launch }}</td>
<td>{{ h.sent }}</td><td>{{ h.failed }}</td><td>{{ h.opens }}</td><td>{{ h.human_opens }}</td><td>{{ h.clicks }}</td>
<td>{{ h.human_clicks }}</td><td>{{ h.unsubscribes }}</td></tr>{% endfor %}</table>
<h2>Per tracked link</h2>
<table><tr><th>link</th><th>clicks</th><th>unique</th><th>human clicks</th><th>human unique</th></tr>
{% for l in r.links %}<tr><td>{{ l.url or "(link %d, no longer in the template)" % l.idx }}</td><td>{{ l.clicks }}</td>
<td>{{ l.unique_clicks }}</td><td>{{ l.human_clicks }}</td><td>{{ l.human_unique_clicks }}</td></tr>
{% else %}<tr><td colspan="5" class="muted">no tracked links</td></tr>{% endfor %}</table>
</body></html>
"""


@functools.cache
def _page() -> jinja2.Template:
    """The compiled page, on the first report: 10-20 ms that every run paid at import."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["n"] = "{:,}".format
    return environment.from_string(_TEMPLATE)


def _pct(rate: float) -> str:
    return f"{rate:.1%}"


def render_html(report: CampaignReport) -> str:
    # matplotlib takes ~1.5 s to import: only the report's own step pays it, not every run
    # of the code location (the admin forms, the send steps) that imports the definitions.
    from campaign_pipelines.reports.charts import funnel_chart, hourly_chart

    return _page().render(
        r=report,
        t=report.totals,
        pct=_pct,
        funnel_svg=Markup(funnel_chart(report)),
        hourly_svg=Markup(hourly_chart(report)) if report.hours else "",
    )
