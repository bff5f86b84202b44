"""The admin jobs (servers, templates, the two campaign steps) run in-process against the real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pydantic
import pytest

from campaign_pipelines import campaigns, servers, templates
from campaign_pipelines.ops.admin import (
    ADMIN_JOBS,
    ConfigureCampaignConfig,
    CreateCampaignConfig,
    LineConfig,
    ServerConfig,
    TemplateConfig,
    configure_campaign,
    create_campaign,
    register_server,
    save_template,
)
from campaign_pipelines.resources.contact_files import ContactFilesResource
from campaign_pipelines.resources.database import PostgresResource
from campaign_pipelines.store import campaigns as campaign_sql
from campaign_pipelines.store import catalog
from campaign_pipelines.store import lines as line_sql
from tests.support import BREVO_KEY, BREVO_SERVER, SEED_FILES, SENDGRID_KEY, SENDGRID_SERVER, failure_message, refusal

REPO = Path(__file__).resolve().parents[2]
PROMO = LineConfig(
    sender_name="L'équipe Promo", sender_email="offres@mondomaine.com", server=BREVO_SERVER, max_daily_sends=10000
)
SUPPORT = LineConfig(
    sender_name="Le Service Client",
    sender_email="support@mondomaine.com",
    server=SENDGRID_SERVER,
    send_frequency_minutes=1,
    max_daily_sends=5000,
)


@pytest.fixture
def execute(instance: dg.DagsterInstance, database_url: str, contacts_dir: Path):
    """Runs a job in-process with one op's config; failures are returned, not raised."""
    resources = {
        "database": PostgresResource(url=database_url),
        "contact_files": ContactFilesResource(directory=str(contacts_dir)),
    }

    def execute(job: dg.JobDefinition, op: str, config: dg.Config) -> dg.ExecuteInProcessResult:
        return job.execute_in_process(
            run_config=dg.RunConfig(ops={op: config}), instance=instance, resources=resources, raise_on_error=False
        )

    return execute


def event_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every stored event of the run, serialised whole: messages, metadata, errors."""
    return "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(run_id))


def log_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id) if entry.dagster_event is None]


# --- register_server ---------------------------------------------------------------------


def test_register_server_creates_then_updates(
    db: psycopg.Connection, execute, instance: dg.DagsterInstance, keys: None
) -> None:
    created = execute(
        register_server, "save_server", ServerConfig(name=BREVO_SERVER, provider="brevo", api_key_env="BREVO_API_KEY")
    )

    assert created.success
    server_id = created.output_for_node("save_server")
    (output,) = [event for event in created.all_node_events if event.is_successful_output]
    metadata = {key: value.value for key, value in output.step_output_data.metadata.items()}
    assert metadata == {
        "server": BREVO_SERVER,
        "server_id": server_id,
        "provider": "brevo",
        "url": servers.DEFAULT_URLS["brevo"],
        "api_key": "env var BREVO_API_KEY",
        "active": True,
    }
    assert f"server '{BREVO_SERVER}' registered (id {server_id})" in log_messages(instance, created.run_id)
    server = catalog.server_by_name(db, BREVO_SERVER)
    assert server is not None
    assert (server.id, server.provider, server.url, server.api_key_ref, server.active) == (
        server_id,
        "brevo",
        servers.DEFAULT_URLS["brevo"],
        "env:BREVO_API_KEY",
        True,
    )

    updated = execute(
        register_server,
        "save_server",
        ServerConfig(
            name=BREVO_SERVER,
            provider="brevo",
            url="https://api.eu.brevo.example/v3/smtp/email",
            api_key_env="SENDGRID_API_KEY",
            active=False,
        ),
    )

    assert updated.success
    assert updated.output_for_node("save_server") == server_id
    assert f"server '{BREVO_SERVER}' updated (id {server_id})" in log_messages(instance, updated.run_id)
    (server,) = catalog.list_servers(db)
    assert (server.id, server.url, server.api_key_ref, server.active) == (
        server_id,
        "https://api.eu.brevo.example/v3/smtp/email",
        "env:SENDGRID_API_KEY",
        False,
    )


def test_register_server_with_an_unset_env_var_fails_naming_it(
    db: psycopg.Connection, execute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILGUN_API_KEY", raising=False)

    result = execute(
        register_server, "save_server", ServerConfig(name="Mailgun", provider="mailgun", api_key_env="MAILGUN_API_KEY")
    )

    assert not result.success
    assert "environment variable MAILGUN_API_KEY (api_key_env) is not set or empty" in failure_message(result)
    assert catalog.list_servers(db) == []


def test_a_refused_server_fails_with_every_problem_in_its_description_and_metadata(
    db: psycopg.Connection, execute, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILGUN_API_KEY", raising=False)

    result = execute(
        register_server,
        "save_server",
        ServerConfig(
            name="Mailgun", provider="mailgun", api_key_env="MAILGUN_API_KEY", daily_cap=0, timezone="Mars/Olympus"
        ),
    )

    assert not result.success
    description, problems = refusal(result)
    assert problems == [
        "environment variable MAILGUN_API_KEY (api_key_env) is not set or empty",
        "daily_cap must be at least 1 (leave it empty for no cap), got 0",
        "timezone 'Mars/Olympus' is not a known time zone (e.g. UTC, Europe/Paris)",
    ]
    assert description.startswith("server 'Mailgun': 3 problem(s)\n")
    assert catalog.list_servers(db) == []


def test_the_api_key_never_reaches_the_event_log(
    db: psycopg.Connection, execute, instance: dg.DagsterInstance, keys: None
) -> None:
    by_name = execute(
        register_server, "save_server", ServerConfig(name=BREVO_SERVER, provider="brevo", api_key_env="BREVO_API_KEY")
    )
    # A user pasting the key itself where its variable's name belongs.
    pasted = execute(
        register_server,
        "save_server",
        ServerConfig(name=SENDGRID_SERVER, provider="sendgrid", api_key_env=SENDGRID_KEY),
    )

    assert by_name.success
    assert not pasted.success
    assert "must be the NAME of an environment variable" in failure_message(pasted)
    assert BREVO_KEY not in event_log_text(instance, by_name.run_id)
    assert SENDGRID_KEY not in event_log_text(instance, pasted.run_id)
    assert [server.name for server in catalog.list_servers(db)] == [BREVO_SERVER]


# --- save_template -----------------------------------------------------------------------


def test_save_template_stores_the_html(db: psycopg.Connection, execute) -> None:
    html = "<h1>Black Friday</h1>\n<p>Bonjour {{ first_name }}</p>"

    result = execute(save_template, "store_template", TemplateConfig(name="promo", html=html))

    assert result.success
    template = catalog.template_by_name(db, "promo")
    assert template is not None
    assert (template.id, template.html) == (result.output_for_node("store_template"), html)


def test_save_template_with_bad_jinja_fails_naming_the_line(db: psycopg.Connection, execute) -> None:
    html = "<h1>Black Friday</h1>\n<p>Bonjour</p>\n<p>{{ first_name }</p>\n"

    result = execute(save_template, "store_template", TemplateConfig(name="promo", html=html))

    assert not result.success
    message = failure_message(result)
    assert "template 'promo'" in message
    assert "line 3:" in message
    assert catalog.list_templates(db) == []


# --- create_campaign ---------------------------------------------------------------------


def test_create_campaign_outputs_the_new_draft_id_and_tags_its_run_with_it(
    db: psycopg.Connection, execute, instance: dg.DagsterInstance
) -> None:
    templates.save_template(db, "promo", "<p>Bonjour {{ first_name }}</p>")

    result = execute(
        create_campaign,
        "create_draft",
        CreateCampaignConfig(name="Black Friday 2025 - Ventes Flash", subject="⚡ Offres !", template="promo"),
    )

    assert result.success
    campaign_id = result.output_for_node("create_draft")
    (campaign,) = campaign_sql.list_campaigns(db)
    assert (campaign.id, campaign.name, campaign.status) == (campaign_id, "Black Friday 2025 - Ventes Flash", "draft")
    (output,) = [event for event in result.all_node_events if event.is_successful_output]
    assert output.step_output_data.metadata["campaign_id"] == dg.MetadataValue.int(campaign_id)
    assert instance.get_run_by_id(result.run_id).tags["campaign_id"] == str(campaign_id)


def test_create_campaign_with_an_unknown_template_lists_the_existing_ones(db: psycopg.Connection, execute) -> None:
    templates.save_template(db, "promo", "<p>Bonjour</p>")
    templates.save_template(db, "Black Friday", "<p>-70%</p>")

    result = execute(
        create_campaign,
        "create_draft",
        CreateCampaignConfig(name="Black Friday 2025", subject="Offres", template="Black Friday 2024"),
    )

    assert not result.success
    assert refusal(result) == (
        "campaign 'Black Friday 2025': 1 problem(s)\n"
        "  - template 'Black Friday 2024' does not exist; existing templates: 'Black Friday', 'promo'",
        ["template 'Black Friday 2024' does not exist; existing templates: 'Black Friday', 'promo'"],
    )
    assert campaign_sql.list_campaigns(db) == []


# --- configure_campaign ------------------------------------------------------------------


def test_configure_campaign_schedules_the_seed_scenario_and_adds_its_partition(
    db: psycopg.Connection, execute, instance: dg.DagsterInstance, draft: int
) -> None:
    assert not instance.has_dynamic_partition("campaign", str(draft))

    result = execute(
        configure_campaign,
        "configure",
        ConfigureCampaignConfig(campaign_id=draft, contact_files=SEED_FILES, channels=[PROMO, SUPPORT]),
    )

    assert result.success
    assert result.output_for_node("configure") == draft
    campaign = campaign_sql.campaign_by_id(db, draft)
    assert campaign is not None
    assert (campaign.status, campaign.contact_files, campaign.nbre_contacts) == ("scheduled", SEED_FILES, 0)
    promo, support = line_sql.lines_of(db, draft)
    assert (promo.sender_name, promo.sender_email, promo.server_name) == (
        "L'équipe Promo",
        "offres@mondomaine.com",
        BREVO_SERVER,
    )
    assert (promo.send_frequency_minutes, promo.max_daily_sends, promo.scheduled_at) == (None, 10000, None)
    assert (support.sender_name, support.sender_email, support.server_name) == (
        "Le Service Client",
        "support@mondomaine.com",
        SENDGRID_SERVER,
    )
    assert (support.send_frequency_minutes, support.max_daily_sends, support.scheduled_at) == (1, 5000, None)
    assert instance.get_dynamic_partitions("campaign") == [str(draft)]


def test_configure_campaign_lists_every_problem_and_changes_nothing(
    db: psycopg.Connection, execute, instance: dg.DagsterInstance, draft: int
) -> None:
    assert execute(
        configure_campaign,
        "configure",
        ConfigureCampaignConfig(campaign_id=draft, contact_files=SEED_FILES, channels=[PROMO]),
    ).success
    before = (campaign_sql.campaign_by_id(db, draft), line_sql.lines_of(db, draft))

    result = execute(
        configure_campaign,
        "configure",
        ConfigureCampaignConfig(
            campaign_id=draft,
            contact_files=["clients_vip.json", "absent.json", "../../etc/passwd"],
            channels=[
                LineConfig(sender_name="Promo", sender_email="offres@mondomaine.com", server="Mailjet - Inconnu"),
                LineConfig(sender_name="Support", sender_email="not-an-address", server=SENDGRID_SERVER),
                LineConfig(
                    sender_name="Lent",
                    sender_email="lent@mondomaine.com",
                    server=BREVO_SERVER,
                    send_frequency_minutes=-5,
                ),
            ],
        ),
    )

    assert not result.success
    message = failure_message(result)
    assert f"campaign {draft}: 5 problem(s)" in message
    assert (
        "contact file 'absent.json' does not exist;"
        " existing contact files: 'clients_vip.json', 'nouveaux_inscrits.json'" in message
    )
    assert "'../../etc/passwd' is outside the contacts directory" in message
    assert (
        f"line 1: server 'Mailjet - Inconnu' does not exist; existing servers: '{BREVO_SERVER}', '{SENDGRID_SERVER}'"
        in message
    )
    assert "line 2: sender email 'not-an-address' is not a valid address" in message
    assert "line 3: send_frequency_minutes is negative (-5.0)" in message
    assert (campaign_sql.campaign_by_id(db, draft), line_sql.lines_of(db, draft)) == before


def test_configure_campaign_refuses_a_sender_name_that_would_forge_headers(
    db: psycopg.Connection, execute, draft: int
) -> None:
    forged = LineConfig(
        sender_name="Promo\r\nBcc: evil@attacker.example", sender_email="offres@mondomaine.com", server=BREVO_SERVER
    )

    result = execute(
        configure_campaign,
        "configure",
        ConfigureCampaignConfig(campaign_id=draft, contact_files=SEED_FILES, channels=[PROMO, forged]),
    )

    assert not result.success
    assert "line 2: sender name contains control characters (CR, LF)" in failure_message(result)
    assert line_sql.lines_of(db, draft) == []


def test_configure_campaign_without_an_id_configures_the_newest_draft_and_tags_its_run(
    db: psycopg.Connection, execute, instance: dg.DagsterInstance, draft: int
) -> None:
    newer = campaigns.create_campaign(db, name="Cyber Monday", subject="Offres", template="promo")

    result = execute(
        configure_campaign, "configure", ConfigureCampaignConfig(contact_files=SEED_FILES, channels=[PROMO])
    )

    assert result.success
    assert result.output_for_node("configure") == newer
    assert instance.get_run_by_id(result.run_id).tags["campaign_id"] == str(newer)
    assert [campaign_sql.campaign_by_id(db, id_).status for id_ in (draft, newer)] == ["draft", "scheduled"]


def test_configure_campaign_naming_no_existing_campaign_lists_those_that_can_be(
    db: psycopg.Connection, execute, draft: int
) -> None:
    result = execute(
        configure_campaign,
        "configure",
        ConfigureCampaignConfig(campaign_id=4242, contact_files=SEED_FILES, channels=[PROMO]),
    )

    assert not result.success
    message = (
        "campaign 4242 does not exist;"
        f" campaigns that can be configured: {draft} 'Black Friday 2025 - Ventes Flash' (draft)"
    )
    assert refusal(result) == (message, [message])


def test_configure_campaign_without_an_id_and_no_draft_says_to_create_one(db: psycopg.Connection, execute) -> None:
    result = execute(configure_campaign, "configure", ConfigureCampaignConfig(contact_files=SEED_FILES, channels=[]))

    assert not result.success
    assert failure_message(result) == (
        "no campaign is a draft; no campaign can be configured: create one with create_campaign first"
    )


# --- every form ----------------------------------------------------------------------------


def _undescribed(config_type, where: str) -> list[str]:
    """The knobs, at any depth, the Launchpad would show without a description."""
    while getattr(config_type, "inner_type", None) is not None:  # optional values and lists
        config_type = config_type.inner_type
    missing = []
    for name, field in getattr(config_type, "fields", {}).items():
        if not field.description:
            missing.append(f"{where}.{name}")
        missing += _undescribed(field.config_type, f"{where}.{name}")
    return missing


def test_every_launchpad_knob_of_the_forms_has_a_description() -> None:
    forms = {node.name: node.definition.config_schema.config_type for job in ADMIN_JOBS for node in job.nodes}

    assert [name for name, config_type in forms.items() if not config_type.fields] == []
    assert [knob for name, config_type in forms.items() for knob in _undescribed(config_type, name)] == []


@pytest.mark.parametrize(
    ("rules", "refused"),
    [
        ({"max_daily_sends": True}, "max_daily_sends"),
        ({"send_frequency_minutes": False}, "send_frequency_minutes"),
        ({"send_frequency_minutes": float("inf")}, "send_frequency_minutes"),
        ({"send_frequency_minutes": float("nan")}, "send_frequency_minutes"),
    ],
    ids=["quota-true", "pacing-false", "pacing-infinite", "pacing-nan"],
)
def test_a_line_refuses_a_pacing_or_quota_that_is_not_a_real_number(rules: dict, refused: str) -> None:
    """The CLI reads its lines with this form too: what it refuses, both refuse."""
    with pytest.raises(pydantic.ValidationError) as error:
        LineConfig(sender_name="Promo", sender_email="offres@mondomaine.com", server=BREVO_SERVER, **rules)

    assert [found["loc"] for found in error.value.errors()] == [(refused,)]


@pytest.mark.slow
def test_a_form_runs_its_step_in_the_run_process_when_launched_outside_the_test(
    db: psycopg.Connection, database_url: str, contacts_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("ops:\n  save_server:\n    config:\n      name: sandbox\n      provider: sandbox\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DATABASE_URL": database_url, "CONTACTS_DIR": str(contacts_dir)}
    command = [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m", "campaign_pipelines.definitions"]
    command += ["-j", "register_server", "-c", str(config)]

    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Executing steps in process" in output
    assert "multiprocess" not in output
    assert [server.name for server in catalog.list_servers(db)] == ["sandbox"]
