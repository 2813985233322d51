import typing

import polars as pl
import pytest
import yaml

from atlas_forge import ingest, io, records

from .conftest import ROOT


def _rows():
    return [
        records.make_record("s", "1", "translation", [{"role": "user", "content": "واش نتا مزيان؟"}],
                            "ary_Arab", {"texts": {"eng_Latn": "Are you well?"}}),
        records.make_record("s", "2", "chat", [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "سلام"}], "ary_Arab"),
    ]


def test_ids_are_stable_and_keyed_on_source_and_key():
    assert records.record_id("a", "1") == records.record_id("a", "1")
    assert records.record_id("a", "1") != records.record_id("b", "1")
    assert records.record_id("a", "1") != records.record_id("a", "2")


def test_roundtrip_is_byte_identical(tmp_path):
    df = records.from_rows(_rows())
    io.write_table(df, tmp_path / "a.parquet", "test")
    io.write_table(io.read_table(tmp_path / "a.parquet", "test"), tmp_path / "b.parquet", "test")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = io.read_table(tmp_path / "a.parquet", "test")
    assert back.to_dicts() == df.to_dicts()
    assert records.load_meta(back["meta"][0]) == {"texts": {"eng_Latn": "Are you well?"}}


def test_missing_column_names_file_column_and_phase(tmp_path):
    df = records.from_rows(_rows()).drop("lang")
    with pytest.raises(records.RecordSchemaError) as e:
        io.write_table(df, tmp_path / "x.parquet", "filter")
    assert "x.parquet" in str(e.value) and "'lang'" in str(e.value) and "filter" in str(e.value)
    assert not (tmp_path / "x.parquet").exists()


def test_wrong_type_is_reported_on_read(tmp_path):
    bad = records.from_rows(_rows()).with_columns(pl.lit(3).alias("meta"))
    bad.write_parquet(tmp_path / "bad.parquet")
    expected = r"bad.parquet: column 'meta' has type Int32.*phase: split"
    with pytest.raises(records.RecordSchemaError, match=expected):
        io.read_table(tmp_path / "bad.parquet", "split")


def test_system_role_and_nulls_are_rejected():
    df = records.from_rows(_rows())
    sys_df = df.with_columns(
        pl.lit([{"role": "system", "content": "x"}], dtype=records.SCHEMA["messages"]).alias("messages")
    )
    with pytest.raises(records.RecordSchemaError, match="role 'system'"):
        records.validate(sys_df, "t.parquet", "instruct")
    null_df = df.with_columns(pl.lit(None, dtype=pl.String).alias("task"))
    with pytest.raises(records.RecordSchemaError, match="'task' has 2 null"):
        records.validate(null_df, "t.parquet", "instruct")


def test_extra_column_is_rejected():
    df = records.from_rows(_rows()).with_columns(pl.lit("x").alias("oops"))
    with pytest.raises(records.RecordSchemaError, match="'oops' is not part"):
        records.validate(df, "t.parquet", "mixture")


def test_reject_keeps_fields_and_adds_reason():
    df = records.from_rows(_rows())
    rej = records.reject(df, "empty text", "ingest")
    records.validate(rej, "r.parquet", "ingest", rejects=True)
    assert rej["reason"].to_list() == ["empty text"] * 2 and set(rej["phase"]) == {"ingest"}
    assert rej["id"].to_list() == df["id"].to_list()


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "t.json"
    io.write_json({"a": 1}, target)
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("crash")
    assert io.read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_source_roles_are_the_schema_roles():
    """records.SOURCE_ROLES is the one list of source roles: the params schema's enum matches it."""
    schema = yaml.safe_load((ROOT / "rules" / "schemas" / "params.schema.yaml").read_text(encoding="utf-8"))
    item = schema["properties"]["ingest"]["properties"]["sources"]["items"]["properties"]
    assert tuple(item["role"]["enum"]) == records.SOURCE_ROLES
    assert typing.get_args(typing.get_type_hints(ingest.SourceConfig)["role"]) == records.SOURCE_ROLES
