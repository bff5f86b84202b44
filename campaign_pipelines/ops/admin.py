"""Jobs for what an operator types in the Launchpad: servers, templates, the two campaign steps.

Each op is a thin shell around the plain functions the CLI calls too.
"""

import dagster as dg
from pydantic import Field

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.partitions import campaign_key, campaign_partitions
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource


class ServerConfig(dg.Config):
    name: str = Field(description="Unique name, e.g. 'Brevo - Compte Principal'.")
    provider: str = Field(description=f"Provider type: one of {', '.join(servers.PROVIDERS)}.")
    url: str | None = Field(default=None, description="API endpoint; empty = the provider's documented one.")
    api_key_env: str | None = Field(
        default=None,
        description="NAME of the environment variable holding the API key (never the key itself).",
    )
    api_key_file: str | None = Field(default=None, description="Or: path of a file holding the API key.")
    active: bool = Field(default=True, description="Inactive servers cannot be chosen for a campaign line.")
    daily_cap: int | None = Field(
        default=None, description="At most this many sends a day on this account, all campaigns together; empty = none."
    )
    timezone: str = Field(default="UTC", description="Time zone in which sending days are counted (e.g. Europe/Paris).")
    batch_size: int | None = Field(
        default=None, description="Messages per API call; empty = the provider's maximum, 1 = one message per call."
    )


@dg.op(description="Register a sending server, or update the one with this name.")
def save_server(context: dg.OpExecutionContext, config: ServerConfig, database: PostgresResource) -> int:
    spec = servers.ServerSpec(**config.model_dump())
    with database.connect() as conn:
        server_id, created = servers.save_server(conn, spec)
    context.log.info(f"server '{config.name}' {'registered' if created else 'updated'} (id {server_id})")
    return server_id


@dg.job(description="Register, update or deactivate (active: false) a sending server.")
def register_server() -> None:
    save_server()


class TemplateConfig(dg.Config):
    name: str = Field(description="Unique template name; saving an existing name updates it.")
    html: str | None = Field(default=None, description="The HTML, with Jinja syntax ({{ first_name }}).")
    file: str | None = Field(default=None, description="Or: path of an HTML file to read.")


@dg.op(description="Check a template's Jinja syntax and save it.")
def store_template(context: dg.OpExecutionContext, config: TemplateConfig, database: PostgresResource) -> int:
    html = templates.read_template_source(config.html, config.file)
    with database.connect() as conn:
        template_id, created = templates.save_template(conn, config.name, html)
    context.log.info(f"template '{config.name}' {'created' if created else 'updated'} (id {template_id})")
    return template_id


@dg.job(description="Create or update an HTML template.")
def save_template() -> None:
    store_template()


class CreateCampaignConfig(dg.Config):
    name: str = Field(description="Campaign name, e.g. 'Black Friday 2025 - Ventes Flash'.")
    subject: str = Field(description="Subject line of the email.")
    template: str = Field(description="Name of a saved template.")


@dg.op(description="Step 1: create the campaign as a draft.")
def create_draft(context: dg.OpExecutionContext, config: CreateCampaignConfig, database: PostgresResource) -> int:
    with database.connect() as conn:
        campaign_id = campaigns.create_campaign(
            conn, name=config.name, subject=config.subject, template=config.template
        )
    context.log.info(f"campaign '{config.name}' created as draft: id {campaign_id}")
    context.add_output_metadata({"campaign_id": campaign_id})
    return campaign_id


@dg.job(description="Step 1 of a campaign: name, subject, template → a draft (the run shows its id).")
def create_campaign() -> None:
    create_draft()


class ChannelConfig(dg.Config):
    sender_name: str = Field(description="Sender name, e.g. 'L'équipe Promo'.")
    sender_email: str = Field(description="Sender address, e.g. offres@mondomaine.com.")
    server: str = Field(description="Name of an active sending server.")
    send_frequency_minutes: float | None = Field(
        default=None, description="Minimum minutes between two sends of this line; empty = as fast as possible."
    )
    max_daily_sends: int | None = Field(default=None, description="At most this many sends a day; empty = unlimited.")
    scheduled_at: str | None = Field(
        default=None, description="Start date-time, ISO 8601 (no zone = UTC); empty = now."
    )


class ConfigureCampaignConfig(dg.Config):
    campaign_id: int = Field(description="Id of the campaign (shown by create_campaign).")
    contact_files: list[str] = Field(description="Contact files, by name, inside the contacts directory.")
    channels: list[ChannelConfig] = Field(description="Sending lines: sender, server and diffusion rules.")


@dg.op(description="Step 2: files and sending lines; the campaign becomes scheduled and its import starts.")
def configure(
    context: dg.OpExecutionContext,
    config: ConfigureCampaignConfig,
    database: PostgresResource,
    contact_files: ContactFilesResource,
) -> int:
    lines = [campaigns.ChannelSpec(**line.model_dump()) for line in config.channels]
    with database.connect() as conn:
        campaign = campaigns.configure_campaign(
            conn,
            config.campaign_id,
            contact_files=config.contact_files,
            channels=lines,
            contacts_dir=contact_files.path,
        )
    context.instance.add_dynamic_partitions(campaign_partitions.name, [campaign_key(campaign.id)])
    context.log.info(
        f"campaign {campaign.id} '{campaign.name}' scheduled with {len(lines)} line(s) and"
        f" {len(config.contact_files)} file(s); the import sensor starts its import"
    )
    return campaign.id


@dg.job(description="Step 2 of a campaign: contact files and sending lines, then the import starts.")
def configure_campaign() -> None:
    configure()


ADMIN_JOBS = [register_server, save_template, create_campaign, configure_campaign]
