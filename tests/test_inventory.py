"""Inventory files: parsing YAML and CSV, every problem located by file:line:field, and the CLI."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from core.domain import Family
from core.errors import ConfigError
from core.schema import MeterKind
from ingest.inventory import Inventory, InventoryError, Problem, load_inventory, parse_csv, parse_yaml
from runtime.inventory_cli import inventory

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
HEADER = "site,building,zone,floor,gateway,family,kind,device_id,name_zh,name_en,equipment_id,report_interval_s"

SITE = """\
sites:
  - id: s1
    buildings:
      - id: b1
        zones:
          - {id: F1, floor: 1}
    gateways:
      - {id: gw1, building: b1}
    devices:
"""


def problems_of(text: str, parse: Callable[[str, str], Inventory] = parse_yaml,
                source: str = "inv.yaml") -> list[Problem]:
    with pytest.raises(InventoryError) as caught:
        parse(text, source)
    return list(caught.value.problems)


def located(problems: list[Problem]) -> list[str]:
    return [f"{p.file}:{p.line}:{p.field}" for p in problems]


# --- the example files -----------------------------------------------------------------------


def test_example_yaml_describes_a_small_site() -> None:
    inv = load_inventory(EXAMPLES / "inventory.yaml")
    counts = [len(x) for x in (inv.sites, inv.buildings, inv.zones, inv.gateways, inv.devices)]
    assert counts == [1, 3, 13, 3, 26]
    assert {d.family for d in inv.devices} == set(Family)
    assert {d.kind for d in inv.devices if d.family is Family.METER} == {k.value for k in MeterKind}
    assert {z.kind for z in inv.zones} >= {"floor", "plant_room", "shaft", "parking"}
    meter = next(d for d in inv.devices if d.device_id == "wm-b1-main")
    assert (meter.building_id, meter.zone_id, meter.gateway_id, meter.equipment_id, meter.report_interval_s) == (
        "b1", "b1-plant", "gw-b1", "GPS-B1-001", 3600.0)
    assert meter.name_zh == "1号楼生活给水总水表"
    assert inv.sites[0].timezone == "Asia/Shanghai"
    assert not inv.sites[0].auto_register


def test_example_covers_the_simulated_demo_estate() -> None:
    """Importing the example into `fmon demo` must not dead-letter any simulated device."""
    from simulators.site import DEMO_ESTATE

    inv = load_inventory(EXAMPLES / "inventory.yaml")
    registered = {(d.family, d.device_id): d.gateway_id for d in inv.devices}
    simulated = {(family, device_id): gateway for device_id, family, gateway, *_ in DEMO_ESTATE}
    assert registered == simulated
    assert inv.sites[0].site == "demo"


def test_example_csv_lists_the_same_devices() -> None:
    yaml_inv = load_inventory(EXAMPLES / "inventory.yaml")
    csv_inv = load_inventory(EXAMPLES / "inventory.csv")
    assert csv_inv.devices == yaml_inv.devices
    containers = (csv_inv.sites, csv_inv.buildings, csv_inv.zones, csv_inv.gateways)
    assert not any(spec.declared for group in containers for spec in group)  # implied: never overwrite
    assert {(z.building_id, z.zone_id, z.floor) for z in csv_inv.zones} == {
        (z.building_id, z.zone_id, z.floor) for z in yaml_inv.zones if z.kind != "shaft"} | {
        (z.building_id, z.zone_id, None) for z in yaml_inv.zones if z.kind == "shaft"}


def test_csv_implies_containers_and_floor_zones() -> None:
    text = "\n".join([
        "site,building,floor,zone,gateway,family,device_id,kind",
        "s1,b1,-1,,gw1,meter,m1,water",
        "s1,b1,,pump-room,gw1,pump,p1,",
        "s1,b1,-1,pump-room,gw1,pump,p2,",
        "",
        "s1,,,,,env,e1,",
    ])
    inv = parse_csv(text, "inv.csv")
    assert [(z.zone_id, z.floor) for z in inv.zones] == [("B1", -1), ("pump-room", -1)]
    assert [(d.device_id, d.zone_id) for d in inv.devices] == [("m1", "B1"), ("p1", "pump-room"),
                                                               ("p2", "pump-room"), ("e1", None)]
    assert [g.gateway_id for g in inv.gateways] == ["gw1"]


def test_csv_accepts_bom_quotes_and_gb18030(tmp_path: Path) -> None:
    row = 's1,env,e1,"大堂, 一层"'
    for encoding in ("utf-8-sig", "gb18030"):
        path = tmp_path / f"{encoding}.csv"
        path.write_bytes(f"site,family,device_id,name_zh\n{row}\n".encode(encoding))
        assert load_inventory(path).devices[0].name_zh == "大堂, 一层"


def test_fire_panels_own_devices() -> None:
    text = SITE.replace("{id: gw1, building: b1}", "{id: fp1, kind: fire_panel, building: b1, zone: F1}")
    inv = parse_yaml(text + "      - {family: pump, id: fire-pump-1, kind: fire, gateway: fp1}\n", "inv.yaml")
    assert [(g.gateway_id, g.kind, g.zone_id) for g in inv.gateways] == [("fp1", "fire_panel", "F1")]
    assert inv.devices[0].gateway_id == "fp1"


def test_yaml_ids_stay_text() -> None:
    inv = parse_yaml(SITE + "      - {family: env, id: 001, name_en: yes, kind: !odd 12}\n", "inv.yaml")
    assert (inv.devices[0].device_id, inv.devices[0].name_en, inv.devices[0].kind) == ("001", "yes", "12")


def test_yaml_merge_keys_share_defaults() -> None:
    text = SITE + textwrap.indent(textwrap.dedent("""\
        - &lobby {family: env, id: e1, building: b1, zone: F1, gateway: gw1}
        - {<<: *lobby, id: e2, zone: F9}
    """), "      ")
    with pytest.raises(InventoryError) as caught:
        parse_yaml(text, "inv.yaml")
    assert located(list(caught.value.problems)) == ["inv.yaml:11:sites[0].devices[1].zone"]
    inv = parse_yaml(text.replace("F9", "F1"), "inv.yaml")
    assert [(d.device_id, d.gateway_id) for d in inv.devices] == [("e1", "gw1"), ("e2", "gw1")]


# --- invalid input: every problem named by file, line and field ------------------------------

YAML_CASES = [
    ("bad id", "      - {family: env, id: 'room 1'}\n", 10, "sites[0].devices[0].id", "not a valid id"),
    ("unknown family", "      - {family: metre, id: m1}\n", 10, "sites[0].devices[0].family", "not a device family"),
    ("bad meter kind", "      - {family: meter, id: m1, kind: solar}\n", 10, "sites[0].devices[0].kind",
     "not a meter kind"),
    ("missing meter kind", "      - {family: meter, id: m1}\n", 10, "sites[0].devices[0].kind", "required"),
    ("missing id", "      - {family: env}\n", 10, "sites[0].devices[0].id", "required"),
    ("unknown building", "      - {family: env, id: e1, building: b9}\n", 10, "sites[0].devices[0].building",
     "building 'b9' is not declared"),
    ("unknown zone", "      - {family: env, id: e1, building: b1, zone: F9}\n", 10, "sites[0].devices[0].zone",
     "zone 'F9' is not declared"),
    ("zone without building", "      - {family: env, id: e1, zone: F1}\n", 10, "sites[0].devices[0].zone",
     "needs its building"),
    ("unknown gateway", "      - {family: env, id: e1, gateway: gw9}\n", 10, "sites[0].devices[0].gateway",
     "gateway 'gw9' is not declared"),
    ("duplicate device", "      - {family: env, id: e1}\n      - {family: env, id: e1}\n", 11,
     "sites[0].devices[1].id", "duplicate device env/e1 (first on line 10)"),
    ("interval not a number", "      - {family: env, id: e1, report_interval_s: often}\n", 10,
     "sites[0].devices[0].report_interval_s", "'often' is not a number"),
    ("interval out of range", "      - family: env\n        id: e1\n        report_interval_s: -5\n", 12,
     "sites[0].devices[0].report_interval_s", "outside 1..604800 seconds"),
    ("unknown field", "      - {family: env, id: e1, equipment: x}\n", 10, "sites[0].devices[0].equipment",
     "unknown field"),
    ("field twice", "      - {family: env, id: e1, id: e2}\n", 10, "sites[0].devices[0].id", "given twice"),
    ("not a mapping", "      - e1\n", 10, "sites[0].devices[0]", "must be a mapping"),
    ("syntax error", "      - {family: env, id: [e1}\n", 10, "yaml", "not valid YAML"),
]


@pytest.mark.parametrize(("snippet", "line", "field", "message"), [c[1:] for c in YAML_CASES],
                         ids=[c[0] for c in YAML_CASES])
def test_invalid_yaml_names_file_line_and_field(snippet: str, line: int, field: str, message: str) -> None:
    [problem] = problems_of(SITE + snippet)
    assert (problem.file, problem.line, problem.field) == ("inv.yaml", line, field)
    assert message in problem.message
    assert f"inv.yaml:{line}: {field}: " in str(problem)


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("sites:\n  - id: s1\n    timezone: Mars/Olympus\n", 3, "sites[0].timezone", "not an IANA time zone"),
        ("sites:\n  - id: s1\n    auto_register: maybe\n", 3, "sites[0].auto_register", "not true or false"),
        ("sites:\n  - id: s1\n    buildings:\n      - {id: b1, zones: [{id: F1, floor: 1.5}]}\n", 4,
         "sites[0].buildings[0].zones[0].floor", "not an integer"),
        ("sites:\n  - id: s1\n    buildings:\n      - {id: b1, zones: [{id: F1, kind: attic}]}\n", 4,
         "sites[0].buildings[0].zones[0].kind", "not a zone kind"),
        ("sites:\n  - id: s1\n    gateways:\n      - {id: g1, kind: router}\n", 4, "sites[0].gateways[0].kind",
         "not a gateway kind"),
        ("sites:\n  - id: s1\n  - id: s1\n", 3, "sites[1].id", "duplicate site s1 (first on line 2)"),
        ("version: 2\nsites: []\n", 1, "version", "version 1 only"),
        ("", 1, "sites", "declares no site"),
        ("- s1\n", 1, "document", "must be a mapping"),
        ("sites: s1\n", 1, "sites", "must be a list"),
    ],
)
def test_invalid_yaml_sites_buildings_zones(text: str, line: int, field: str, message: str) -> None:
    [problem] = problems_of(text)
    assert (problem.line, problem.field) == (line, field)
    assert message in problem.message


CSV_CASES = [
    ("unknown family", "s1,b1,,,,metre,,d1,,,,", 2, "family", "not a device family"),
    ("bad meter kind", "s1,b1,,,,meter,solar,d1,,,,", 2, "kind", "not a meter kind"),
    ("bad site id", "s 1,b1,,,,env,,d1,,,,", 2, "site", "not a valid id"),
    ("missing device id", "s1,b1,,,,env,,,,,,", 2, "device_id", "required"),
    ("floor not an integer", "s1,b1,,2F,,env,,d1,,,,", 2, "floor", "'2F' is not an integer"),
    ("interval", "s1,b1,,,,env,,d1,,,,0.5", 2, "report_interval_s", "outside 1..604800"),
    ("zone without building", "s1,,F1,,,env,,d1,,,,", 2, "zone", "needs its building"),
    ("too many cells", "s1,b1,,,,env,,d1,,,,,extra", 2, "row", "13 cells"),
    ("name too long", "s1,b1,,,,env,,d1," + "长" * 129 + ",,,", 2, "name_zh", "too long"),
]


@pytest.mark.parametrize(("row", "line", "field", "message"), [c[1:] for c in CSV_CASES],
                         ids=[c[0] for c in CSV_CASES])
def test_invalid_csv_names_file_line_and_field(row: str, line: int, field: str, message: str) -> None:
    [problem] = problems_of(f"{HEADER}\n{row}\n", parse_csv, "inv.csv")
    assert (problem.file, problem.line, problem.field) == ("inv.csv", line, field)
    assert message in problem.message


def test_csv_header_problems_are_on_line_1() -> None:
    problems = problems_of("site,family,colour\ns1,env,red\n", parse_csv, "inv.csv")
    assert located(problems) == ["inv.csv:1:colour", "inv.csv:1:device_id"]
    assert "unknown column" in problems[0].message
    assert "required column is missing" in problems[1].message


def test_csv_lines_are_physical_lines() -> None:
    text = f'{HEADER}\n\ns1,b1,,,,env,,d1,"line one\nline two",,,\ns1,b1,F1,1,,env,,d1,,,,\ns1,b1,F1,2,,env,,d2,,,,\n'
    problems = problems_of(text, parse_csv, "inv.csv")
    assert located(problems) == ["inv.csv:5:device_id", "inv.csv:6:floor"]
    assert "duplicate device env/d1 (first on line 3)" in problems[0].message
    assert "floor 2 differs from floor 1 of zone F1 on line 5" in problems[1].message


def test_every_problem_is_reported_at_once() -> None:
    text = SITE + textwrap.indent(textwrap.dedent("""\
        - {family: metre, id: m1}
        - {family: meter, id: m2, kind: solar, report_interval_s: 0}
        - {family: env, id: e1, building: b1, zone: F9, gateway: gw9}
        - {family: env, id: e1}
    """), "      ")
    with pytest.raises(InventoryError) as caught:
        parse_yaml(text, "site.yaml")
    assert located(list(caught.value.problems)) == [
        "site.yaml:10:sites[0].devices[0].family",
        "site.yaml:11:sites[0].devices[1].kind",
        "site.yaml:11:sites[0].devices[1].report_interval_s",
        "site.yaml:12:sites[0].devices[2].zone",
        "site.yaml:12:sites[0].devices[2].gateway",
        "site.yaml:13:sites[0].devices[3].id",
    ]
    message = str(caught.value)
    assert message.startswith("site.yaml: 6 problems:\n")
    assert "site.yaml:12: sites[0].devices[2].gateway: gateway 'gw9' is not declared in site s1" in message
    assert isinstance(caught.value, ConfigError)


def test_file_level_problems(tmp_path: Path) -> None:
    wrong_type = tmp_path / "inventory.xlsx"
    wrong_type.write_bytes(b"PK")
    with pytest.raises(InventoryError, match=r"inventory.xlsx:1: file: unknown file type"):
        load_inventory(wrong_type)
    latin = tmp_path / "inventory.yaml"
    latin.write_bytes(b"sites:\n  - id: s1\n    name_en: Caf\xe9\n")
    with pytest.raises(InventoryError, match=r"inventory.yaml:3: file: not UTF-8"):
        load_inventory(latin)
    with pytest.raises(ConfigError, match="cannot read"):
        load_inventory(tmp_path / "missing.csv")


# --- the command line ------------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str) -> Result:
    env = {"FMON_ENVIRONMENT": "demo", "FMON_DATA_DIR": str(tmp_path / "data"),
           "FMON_DATABASE_URL": None, "FMON_CONFIG": None}
    return CliRunner().invoke(inventory, list(args), env=env)


def test_cli_imports_the_example_and_lists_it(tmp_path: Path) -> None:
    dry = run_cli(tmp_path, "import", str(EXAMPLES / "inventory.yaml"), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    assert "no devices registered" in run_cli(tmp_path, "list").output
    first = run_cli(tmp_path, "import", str(EXAMPLES / "inventory.yaml"))
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[-1].split() == ["devices", "26", "0", "0"]
    again = run_cli(tmp_path, "import", str(EXAMPLES / "inventory.csv"))
    assert again.output.splitlines()[-1].split() == ["devices", "0", "0", "26"]
    listing = run_cli(tmp_path, "list", "--site", "demo")
    assert listing.exit_code == 0, listing.output
    [meter] = [line for line in listing.output.splitlines() if " em-b1-main " in line]
    assert meter.split()[:9] == ["demo", "meter", "em-b1-main", "electric", "b1", "b1-plant", "gw-b1", "900*",
                                 "inventory"]
    assert "1号楼低压总进线电表" in meter


def test_cli_rejects_a_bad_file_with_line_numbers(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\ns1,b1,,,,env,,d1,,,,\ns1,b1,,,,metre,,d2,,,,\n", encoding="utf-8")
    result = run_cli(tmp_path, "import", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:3: family: 'metre' is not a device family" in result.output
    assert not (tmp_path / "data").exists()  # nothing was opened, let alone saved
