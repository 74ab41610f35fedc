"""What a checkpoint database setting may hold (Cloud SQL for PostgreSQL, docs/recovery.md).

A domain-rule module (docs/infra.md, "Layers"): pure, over `DatabaseSettings`, imported by the
config loader (every problem of a stack at once) and by `infra/database.py` (settings built in
code). Every message names the setting, the value, the rule and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Mapping

from domain.settings import DatabaseSettings, Problem, setting_key

POSTGRES_VERSIONS = ("POSTGRES_15", "POSTGRES_16", "POSTGRES_17")
# Enterprise edition tiers: shared-core (db-f1-micro, db-g1-small) or db-custom-<vCPU>-<MiB>.
_TIER = re.compile(r"^(db-f1-micro|db-g1-small|db-custom-(?P<cpus>\d+)-(?P<mib>\d+))$")
# Cloud SQL: disk 10 GB .. 64 TB; Enterprise edition keeps transaction logs 1..7 days; automated
# backups kept 1..365; private services access ranges: Google asks for at least /24 and allows
# up to /16 ("Configure private services access", VPC docs).
DISK_GB = (10, 65536)
LOG_RETENTION_DAYS = (1, 7)
RETAINED_BACKUPS = (1, 365)
PSA_PREFIX = (16, 24)
# Cloud SQL custom machines: 1 or an even vCPU count up to 96, 0.9..6.5 GiB of memory per vCPU.
MAX_CUSTOM_VCPUS = 96
GIB_PER_VCPU = (0.9, 6.5)

KEYS = {
    "tier": setting_key("databaseTier"),
    "disk_size_gb": setting_key("databaseDiskSizeGb"),
    "version": setting_key("databaseVersion"),
    "retained_backups": setting_key("databaseRetainedBackups"),
    "transaction_log_retention_days": setting_key("databaseTransactionLogRetentionDays"),
    "psa_prefix_length": setting_key("databasePsaPrefixLength"),
    "psa_range_address": setting_key("databasePsaRangeAddress"),
    "production": setting_key("databaseProduction"),
}
RANGES = {
    "disk_size_gb": (DISK_GB, " GB", "Cloud SQL disk sizes"),
    "retained_backups": (RETAINED_BACKUPS, " backups", "automated backups Cloud SQL keeps"),
    "transaction_log_retention_days": (LOG_RETENTION_DAYS, " days",
                                       "days of point-in-time recovery logs; Enterprise edition keeps 1 to 7"),
    "psa_prefix_length": (PSA_PREFIX, "", "prefix length of the private services access range, /16 to /24"),
}


def database_problems(db: DatabaseSettings) -> list[Problem]:
    """Every single-setting and cross-setting problem of the database settings."""
    problems = [*_range_problems(db), *_tier_problems(db)]
    if db.version not in POSTGRES_VERSIONS:
        problems.append(Problem(KEYS["version"], db.version, f"must be one of {', '.join(POSTGRES_VERSIONS)}"))
    if private_range(db) is None:
        problems.append(Problem(KEYS["psa_range_address"], db.psa_range_address,
                                f"must be a private IPv4 network address aligned to /{db.psa_prefix_length} "
                                "(databasePsaPrefixLength), e.g. 10.60.0.0"))
    return problems


def _range_problems(db: DatabaseSettings):
    for field, ((low, high), unit, what) in RANGES.items():
        value = getattr(db, field)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            yield Problem(KEYS[field], value, f"must be from {low} to {high}{unit} ({what})")


def _tier_problems(db: DatabaseSettings):
    key, match = KEYS["tier"], _TIER.match(db.tier)
    if not match:
        yield Problem(key, db.tier, "must be an Enterprise edition tier: db-f1-micro, db-g1-small or "
                                    "db-custom-<vCPU>-<MiB>, e.g. db-custom-2-7680")
        return
    if match["cpus"]:
        cpus, mib = int(match["cpus"]), int(match["mib"])
        low, high = GIB_PER_VCPU
        if not (cpus == 1 or cpus % 2 == 0) or cpus > MAX_CUSTOM_VCPUS or not low * 1024 * cpus <= mib <= high * 1024 * cpus:
            yield Problem(key, db.tier, f"db-custom-<vCPU>-<MiB> needs 1 or an even vCPU count up to {MAX_CUSTOM_VCPUS} "
                                        f"and {low}..{high} GiB of memory per vCPU (e.g. db-custom-2-7680)")
    elif db.production:
        yield Problem(key, db.tier, "shared-core tiers have no SLA and no high availability, which "
                                    "databaseProduction true asks for: use db-custom-<vCPU>-<MiB>, e.g. db-custom-2-7680")


def private_range(db: DatabaseSettings) -> ipaddress.IPv4Network | None:
    """The private services access range, or None when the address cannot start one."""
    try:
        network = ipaddress.IPv4Network(f"{db.psa_range_address}/{db.psa_prefix_length}")
    except ValueError:  # not an address, or host bits set for this prefix
        return None
    return network if network.is_private else None


def overlap_problems(db: DatabaseSettings, taken: Mapping[str, str]) -> list[Problem]:
    """The range GCP peers into the VPC must not overlap the VPC's own ranges (`taken`: setting
    key -> CIDR): the peering would be refused at `pulumi up`, after the cluster exists."""
    mine = private_range(db)
    if mine is None:
        return []
    problems = []
    for key, cidr in taken.items():
        try:
            other = ipaddress.IPv4Network(cidr)
        except ValueError:
            continue  # reported by its own setting
        if mine.overlaps(other):
            problems.append(Problem(KEYS["psa_range_address"], db.psa_range_address,
                                    f"{mine} overlaps {key} = {cidr}: pick a /{db.psa_prefix_length} outside the VPC's "
                                    "node, pod and service ranges, e.g. 10.60.0.0"))
    return problems
