"""Step outputs in the campaign database: what one worker stores, another loads."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from campaign_pipelines.resources.step_outputs import PostgresStepOutputs


def _output(run_id: str, step_key: str, mapping_key: str | None = None) -> dg.OutputContext:
    return dg.build_output_context(run_id=run_id, step_key=step_key, name="result", mapping_key=mapping_key)


def test_an_output_stored_by_one_step_is_loaded_by_the_next(db, database_url: str) -> None:
    outputs = PostgresStepOutputs(url=database_url)
    run_id = uuid.uuid4().hex
    outcome = {"line_id": 7, "status": "done", "reason": None, "sent": 1_000}
    outputs.handle_output(_output(run_id, "send_channel[line_7]"), outcome)
    outputs.handle_output(_output(run_id, "plan_channels", mapping_key="line_7"), 7)
    outputs.handle_output(_output(run_id, "plan_channels", mapping_key="line_8"), 8)

    def load(step_key: str, mapping_key: str | None = None) -> object:
        context = dg.build_input_context(upstream_output=_output(run_id, step_key, mapping_key))
        return outputs.load_input(context)

    assert load("send_channel[line_7]") == outcome
    assert [load("plan_channels", key) for key in ("line_7", "line_8")] == [7, 8]


def test_a_retried_step_replaces_its_output(db, database_url: str) -> None:
    outputs = PostgresStepOutputs(url=database_url)
    run_id = uuid.uuid4().hex
    outputs.handle_output(_output(run_id, "finalize"), "running")
    outputs.handle_output(_output(run_id, "finalize"), "completed")

    loaded = outputs.load_input(dg.build_input_context(upstream_output=_output(run_id, "finalize")))

    assert loaded == "completed"


def test_a_missing_output_names_its_step(db, database_url: str) -> None:
    outputs = PostgresStepOutputs(url=database_url)
    context = dg.build_input_context(upstream_output=_output("no-such-run", "plan_channels"))

    with pytest.raises(dg.Failure, match="no-such-run/plan_channels/result is not in"):
        outputs.load_input(context)
