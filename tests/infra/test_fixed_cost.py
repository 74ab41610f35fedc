"""The plan's fixed monthly cost (domain/cost.py fixed_monthly_costs): every billed resource the
plan creates, at the list prices of domain/data/prices.json, per month of 730 hours. The expected
numbers are worked out by hand here from the prices file's us-central1 entries, not by the code."""

from __future__ import annotations

import pytest

from domain.cost import PRICES, fixed_cost_lines, fixed_monthly_costs, prices_for
from tooling.plan import evaluate

MODEL = "gemini-live-2.5-flash-native-audio"
H = 730


def _costs(plan, region="us-central1", bursting=False, images=20):
    items = fixed_monthly_costs(plan.resources, region, prices_for(region, MODEL), bursting, registry_images=images)
    return {i.item: i for i in items}


def test_prod_by_hand(prod_plan):
    c = _costs(prod_plan)
    assert c["cluster fee"].usd_month == pytest.approx(0.10 * H)
    # REGIONAL db-custom-2-7680 with 20 GB SSD: (2 x 0.0413 + 7.5 x 0.007) x 730 + 20 x 0.17, all twice
    assert c["checkpoints-instance"].usd_month == pytest.approx(2 * ((2 * 0.0413 + 7.5 * 0.007) * H + 20 * 0.17))
    assert c["checkpoints-instance"].usd_month == pytest.approx(204.046)
    # 3 agent pods (the HPA minimum) of 2000m + the 250m sidecar, 4096 + 256 MiB
    assert c["pods agent-deployment"].usd_month == pytest.approx(3 * (2.25 * 0.0445 + 4.25 * 0.0049225) * H)
    assert c["pods spare-placeholders"].usd_month == pytest.approx(1 * (2.25 * 0.0445 + 4.25 * 0.0049225) * H)
    assert c["network-nat"].usd_month == pytest.approx((0.0014 + 0.005) * H)
    assert c["secrets-key-key"].usd_month == pytest.approx(0.06)
    assert c["secret versions"].usd_month == pytest.approx(2 * 0.06)
    assert c["alert conditions"].usd_month == pytest.approx(5 * 1.50)
    assert c["registry storage"].usd_month == pytest.approx((20 * 0.4 - 0.5) * 0.10)


def test_dev_by_hand(dev_plan):
    c = _costs(dev_plan, bursting=True)
    # ZONAL shared-core db-g1-small with 10 GB SSD
    assert c["checkpoints-instance"].usd_month == pytest.approx(0.0350 * H + 10 * 0.17)
    # one S pod with bursting: 1000m + 50m sidecar (no 250m step), 2048 + 64 MiB
    pod = (1.05 * 0.0445 + 2112 / 1024 * 0.0049225) * H
    assert c["pods agent-deployment"].usd_month == pytest.approx(pod)
    assert c["pods spare-buffer"].usd_month == pytest.approx(pod), "a buffer unit is billed as the pod it stands for"
    assert "secrets-key-key" not in c


def test_a_three_key_stack_pays_for_no_database_and_no_key(dev_plan):
    """The minimal example (examples/minimal): no Cloud SQL line, no KMS line."""
    from tests.infra.test_examples import plan_example

    c = _costs(plan_example("minimal"))
    assert not [k for k in c if k.startswith("checkpoints") or k.startswith("secrets-key")]
    assert c["cluster fee"].usd_month == pytest.approx(73.0)


def test_an_unpriced_region_says_so(prod_plan):
    c = _costs(prod_plan, region="europe-west4")
    assert c["checkpoints-instance"].usd_month is None and "no list price for europe-west4" in c["checkpoints-instance"].detail
    assert c["pods agent-deployment"].usd_month is None
    assert "no Autopilot list price for europe-west4" in c["pods agent-deployment"].detail
    last = fixed_cost_lines(list(c.values()))[-1]
    assert "without" in last and "checkpoints-instance" in last and "(no list price)" in last


@pytest.mark.parametrize("images, usd", [(1, 0.0), (2, (0.8 - 0.5) * 0.10)])
def test_registry_free_tier_boundary(dev_plan, images, usd):
    """0.5 GB free: one 0.4 GB image costs nothing, two cost 0.3 GB."""
    assert _costs(dev_plan, images=images)["registry storage"].usd_month == pytest.approx(usd)


def test_every_price_says_where_it_comes_from():
    for section in ("cloud_sql", "cloud_nat"):
        for region, entry in PRICES[section].items():
            assert entry["source"].startswith("https://") and entry["read_on"] and "confirmed" in entry, (section, region)
    for section in ("kms", "secret_manager", "monitoring", "artifact_registry"):
        assert PRICES[section]["source"].startswith("https://") and "confirmed" in PRICES[section], section
