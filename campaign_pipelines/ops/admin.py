"""Jobs for what an operator types in the Launchpad: servers, templates, the two campaign steps.

Each op is a thin shell around the plain functions the CLI calls too. The jobs run their step
in the run's own process: a form's run takes under a second, where a process per step (the
default executor) cost it 6 to 10 s. A refused form fails with a `dg.Failure` listing every
problem, in its description and its metadata.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.errors import NotFoundError, ValidationError
from campaign_pipelines.partitions import campaign_key, campaign_partitions
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.store import catalog

CAMPAIGN_ID_TAG = "campaign_id"


@contextmanager
def refused_as_failure() -> Iterator[None]:
    """The user's errors become a Failure whose description and metadata say what to fix."""
    try:
        yield
    except ValidationError as error:
        raise _failure(str(error), error.problems) from None
    except NotFoundError as error:
        raise _failure(str(error), [str(error)]) from None


def _failure(description: str, problems: list[str]) -> dg.Failure:
    metadata = {f"problem {number}": dg.MetadataValue.text(problem) for number, problem in enumerate(problems, 1)}
    return dg.Failure(description=description, metadata=metadata, allow_retries=False)


def _tag_campaign(context: dg.OpExecutionContext, campaign_id: int) -> None:
    """The campaign's id on the run itself, where the Runs list and the run's header show it."""
    context.instance.add_run_tags(context.run_id, {CAMPAIGN_ID_TAG: str(campaign_id)})


class ServerConfig(dg.Config):
    name: str = Field(description="Unique name, e.g. 'Brevo - Compte Principal'; an existing name is updated.")
    provider: str = Field(
        description=f"Provider type, one of {', '.join(servers.PROVIDERS)}; sandbox writes .eml files, no key needed."
    )
    url: str | None = Field(
        default=None,
        description="API endpoint (sandbox: file:<folder>); empty = the provider's documented one.",
    )
    api_key_env: str | None = Field(
        default=None,
        description="NAME of the environment variable holding the API key, e.g. BREVO_API_KEY (never the key).",
    )
    api_key_file: str | None = Field(
        default=None, description="Or: path of a file holding the API key, e.g. /run/secrets/brevo."
    )
    active: bool = Field(default=True, description="Inactive servers cannot be chosen for a campaign line.")
    daily_cap: int | None = Field(
        default=None,
        description="At most this many sends a day on this account, all campaigns together, e.g. 300; empty = none.",
    )
    timezone: str = Field(default="UTC", description="Time zone in which sending days are counted, e.g. Europe/Paris.")
    batch_size: int | None = Field(
        default=None, description="Messages per API call; empty = the provider's maximum, 1 = one message per call."
    )
    calls_in_flight: int | None = Field(
        default=None,
        description="At most this many API calls in flight at once per line, e.g. 2 for an account with a low"
        " request rate; empty = the provider's documented rate (a line opens fewer when fewer keep it busy).",
    )


@dg.op(description="Register a sending server, or update the one with this name.")
def save_server(context: dg.OpExecutionContext, config: ServerConfig, database: PostgresResource) -> int:
    spec = servers.ServerSpec(**config.model_dump())
    with refused_as_failure(), database.connect() as conn:
        server_id, created = servers.save_server(conn, spec)
        server = catalog.server_by_name(conn, spec.name.strip())
    assert server is not None
    context.log.info(f"server '{config.name}' {'registered' if created else 'updated'} (id {server_id})")
    context.add_output_metadata(
        {
            "server": server.name,
            "server_id": server_id,
            "provider": server.provider,
            "url": server.url,
            "api_key": servers.describe_key_ref(server.api_key_ref),
            "active": server.active,
        }
    )
    return server_id


@dg.job(
    description="Register, update or deactivate (active: false) a sending server.", executor_def=dg.in_process_executor
)
def register_server() -> None:
    save_server()


class TemplateConfig(dg.Config):
    name: str = Field(description="Unique template name, e.g. 'Black Friday'; saving an existing name updates it.")
    html: str | None = Field(
        default=None, description="The HTML, with Jinja syntax, e.g. <p>Bonjour {{ first_name }}</p>."
    )
    file: str | None = Field(
        default=None,
        description="Or: path of an HTML file, e.g. examples/black_friday.html (relative: from the repo root).",
    )


@dg.op(description="Check a template's Jinja syntax, render it for sample contacts, and save it.")
def store_template(context: dg.OpExecutionContext, config: TemplateConfig, database: PostgresResource) -> int:
    with refused_as_failure(), database.connect() as conn:
        html = templates.read_template_source(config.html, config.file)
        template_id, created = templates.save_template(conn, config.name, html)
    context.log.info(f"template '{config.name}' {'created' if created else 'updated'} (id {template_id})")
    context.add_output_metadata({"template": config.name.strip(), "template_id": template_id, "bytes": len(html)})
    return template_id


@dg.job(description="Create or update an HTML template.", executor_def=dg.in_process_executor)
def save_template() -> None:
    store_template()


class CreateCampaignConfig(dg.Config):
    name: str = Field(description="Campaign name, e.g. 'Black Friday 2025 - Ventes Flash'.")
    subject: str = Field(description="Subject line of the email, e.g. '⚡ Offres Exclusives : Jusqu'à -70% !'.")
    template: str = Field(description="Name of a saved template, e.g. 'Black Friday'.")


@dg.op(description="Step 1: create the campaign as a draft; its id is the output and the run's campaign_id tag.")
def create_draft(context: dg.OpExecutionContext, config: CreateCampaignConfig, database: PostgresResource) -> int:
    with refused_as_failure(), database.connect() as conn:
        campaign_id = campaigns.create_campaign(
            conn, name=config.name, subject=config.subject, template=config.template
        )
    _tag_campaign(context, campaign_id)
    context.log.info(f"campaign '{config.name}' created as draft: id {campaign_id}")
    context.add_output_metadata(
        {
            "campaign_id": campaign_id,
            "campaign": config.name.strip(),
            "next": f"configure_campaign with campaign_id: {campaign_id} (or empty: the newest draft)",
        }
    )
    return campaign_id


@dg.job(
    description="Step 1 of a campaign: name, subject, template → a draft (its id: the run's campaign_id tag).",
    executor_def=dg.in_process_executor,
)
def create_campaign() -> None:
    create_draft()


class LineConfig(dg.Config):
    sender_name: str = Field(description="Sender name, e.g. 'L'équipe Promo'.")
    sender_email: str = Field(description="Sender address, e.g. offres@mondomaine.com.")
    server: str = Field(description="Name of an active sending server, e.g. 'sandbox' or 'Brevo - Compte Principal'.")
    send_frequency_minutes: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Minimum minutes between two sends of this line, e.g. 1; empty = as fast as possible.",
    )
    max_daily_sends: int | None = Field(
        default=None, description="At most this many sends a day, e.g. 10000; empty = unlimited."
    )
    scheduled_at: str | None = Field(
        default=None,
        description="Start date-time, ISO 8601, e.g. 2025-11-28T08:00:00+01:00 (no zone = UTC); empty = now.",
    )

    @field_validator("send_frequency_minutes", "max_daily_sends", mode="before")
    @classmethod
    def _a_number_not_a_yes_or_no(cls, value: object) -> object:
        """Pydantic reads true as 1: a pacing or a quota written true/false is a mistake, not 1."""
        if isinstance(value, bool):
            raise PydanticCustomError("number_type", "expected a number, not true/false")
        return value


class ConfigureCampaignConfig(dg.Config):
    campaign_id: int | None = Field(
        default=None,
        description="Id of the campaign (create_campaign's output and run tag campaign_id); empty = the newest draft.",
    )
    contact_files: list[str] = Field(
        description="Contact files, by name, inside the contacts directory, e.g. [demo_contacts.json]."
    )
    # `channels`: the key saved Launchpad configs and the README use, kept as it was.
    channels: list[LineConfig] = Field(
        description="Sending lines, at least one: sender, server and diffusion rules, e.g."
        " [{sender_name: L'équipe Promo, sender_email: offres@mondomaine.com, server: sandbox}]."
    )


@dg.op(description="Step 2: files and sending lines; the campaign becomes scheduled and its import starts.")
def configure(
    context: dg.OpExecutionContext,
    config: ConfigureCampaignConfig,
    database: PostgresResource,
    contact_files: ContactFilesResource,
) -> int:
    lines = [campaigns.LineSpec(**line.model_dump()) for line in config.channels]
    with refused_as_failure(), database.connect() as conn:
        campaign_id = config.campaign_id if config.campaign_id is not None else campaigns.newest_draft(conn)
        _tag_campaign(context, campaign_id)
        campaign = campaigns.configure_campaign(
            conn,
            campaign_id,
            contact_files=config.contact_files,
            lines=lines,
            contacts_dir=contact_files.path,
        )
    context.instance.add_dynamic_partitions(campaign_partitions.name, [campaign_key(campaign.id)])
    context.log.info(
        f"campaign {campaign.id} '{campaign.name}' scheduled with {len(lines)} line(s) and"
        f" {len(config.contact_files)} file(s); the import sensor starts its import"
    )
    context.add_output_metadata(
        {
            "campaign_id": campaign.id,
            "campaign": campaign.name,
            "status": campaign.status,
            "lines": len(lines),
            "contact_files": ", ".join(config.contact_files),
        }
    )
    return campaign.id


@dg.job(
    description="Step 2 of a campaign: contact files and sending lines, then the import starts.",
    executor_def=dg.in_process_executor,
)
def configure_campaign() -> None:
    configure()


ADMIN_JOBS = [register_server, save_template, create_campaign, configure_campaign]
