"""Deterministic, realistic rows for the seed: a pure generator, no database.

Every id is derived from the entity kind and an ordinal (`5eed<kind>-...-<n>`), so the same plan
always yields the same rows, seeded rows are recognisable, and `seed clean` finds them by range.
Executions are produced lazily (an iterator), so a million of them never sit in memory at once.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

SEED = 20261125  # fixed: the same plan gives the same rows on every machine
ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)  # "now" of the seeded history, fixed for determinism
HISTORY_DAYS = 180

KIND = {"organizations": 1, "users": 2, "roles": 3, "workflows": 4, "workflow_versions": 5,
        "executions": 6, "marketplace_items": 7}


def seeded_id(kind: str, ordinal: int) -> uuid.UUID:
    return uuid.UUID(int=(0x5EED << 112) | (KIND[kind] << 96) | ordinal)


def seeded_range(kind: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The inclusive id range of one kind of seeded row."""
    low = (0x5EED << 112) | (KIND[kind] << 96)
    return uuid.UUID(int=low), uuid.UUID(int=low | ((1 << 96) - 1))


ORGANIZATIONS = [
    ("northwind-ai", "Northwind AI", "enterprise", 5.0),
    ("blue-harbor-labs", "Blue Harbor Labs", "team", 2.0),
    ("quill-legal", "Quill Legal Automation", "team", 1.5),
    ("helio-health", "Helio Health Research", "enterprise", 3.0),
    ("tinker-studio", "Tinker Studio", "free", 0.5),
    ("atlas-logistics", "Atlas Logistics", "team", 1.0),
]
FIRST = ["ana", "ben", "chen", "dara", "eli", "fatima", "goran", "hana", "ivan", "jin", "kofi", "lena", "mateo",
         "nadia", "omar", "priya", "quinn", "rosa", "sven", "tara", "uma", "victor", "wei", "yusuf", "zoe"]
LAST = ["adams", "bauer", "costa", "diaz", "evans", "fischer", "garcia", "hughes", "ito", "jensen", "kim",
        "lopez", "muller", "novak", "okafor", "patel", "rossi", "silva", "tanaka", "weber"]
ROLES = [
    ("owner", "Full control of the organization", ["*"]),
    ("admin", "Manage members, workflows and billing",
     ["members:*", "workflows:*", "executions:*", "marketplace:*", "billing:read"]),
    ("editor", "Build and run workflows", ["workflows:read", "workflows:write", "executions:*", "marketplace:read"]),
    ("viewer", "Read workflows and executions", ["workflows:read", "executions:read", "marketplace:read"]),
]
WORKFLOW_TEMPLATES = [
    ("Customer support triage", "Classifies incoming tickets, drafts replies and escalates urgent ones.", "support"),
    ("Invoice extraction", "Extracts line items, totals and VAT from PDF invoices into the ledger.", "finance"),
    ("Contract clause review", "Flags risky clauses in supplier contracts against the playbook.", "legal"),
    ("Research digest", "Summarises new papers on a topic and ranks them by relevance.", "research"),
    ("Sales call summary", "Turns call transcripts into CRM notes with next steps.", "sales"),
    ("Code review assistant", "Reviews pull requests for bugs, style and missing tests.", "engineering"),
    ("Product description writer", "Writes SEO product copy from a spec sheet in five languages.", "marketing"),
    ("Incident postmortem drafter", "Builds a postmortem draft from alerts, logs and chat history.", "engineering"),
    ("Resume screening", "Scores resumes against a job description and explains the score.", "hr"),
    ("Knowledge base Q&A", "Answers employee questions with citations from the internal wiki.", "support"),
    ("Meeting notes to tasks", "Extracts decisions and action items from meeting notes.", "productivity"),
    ("Churn risk analysis", "Reads usage and support history to flag accounts at risk.", "sales"),
]
ENGINES = [("langchain", 0.34), ("llamaindex", 0.2), ("crewai", 0.14), ("autogen", 0.12),
           ("semantic_kernel", 0.08), ("custom", 0.12)]
MODELS = [("gpt-4o", 2.5, 10.0), ("gpt-4o-mini", 0.15, 0.6), ("claude-sonnet", 3.0, 15.0),
          ("llama-3.1-70b", 0.6, 0.8), ("mistral-large", 2.0, 6.0)]  # $ per 1M tokens in, out
STATUSES = [("succeeded", 0.86), ("failed", 0.09), ("cancelled", 0.03), ("timed_out", 0.02)]
TRIGGERS = [("api", 0.45), ("schedule", 0.3), ("manual", 0.15), ("webhook", 0.1)]
ERRORS = [
    "RateLimitError: provider returned 429 Too Many Requests after 3 retries",
    "ToolTimeout: tool 'web_search' did not answer within 30 s",
    "OutputValidationError: model output did not match the JSON schema (missing field 'total')",
    "ContextLengthExceeded: prompt of 131 412 tokens exceeds the model's 128 000",
    "UpstreamError: vector store returned 503 Service Unavailable",
    "PermissionDenied: connector 'salesforce' token expired",
]


@dataclass(frozen=True)
class SeedPlan:
    """What to seed. `executions` is the --scale: how many executions in total."""

    executions: int = 20_000
    seed: int = SEED


@dataclass
class SeedRows:
    """The small tables, fully materialised (a few thousand rows at most)."""

    organizations: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    role_memberships: list[dict] = field(default_factory=list)
    workflows: list[dict] = field(default_factory=list)
    workflow_versions: list[dict] = field(default_factory=list)
    marketplace_items: list[dict] = field(default_factory=list)

    def tables(self) -> list[tuple[str, list[dict]]]:
        return [("organizations", self.organizations), ("users", self.users), ("roles", self.roles),
                ("role_memberships", self.role_memberships), ("workflows", self.workflows),
                ("workflow_versions", self.workflow_versions), ("marketplace_items", self.marketplace_items)]


def _pick(rng: random.Random, weighted: list[tuple]) -> str:
    roll, total = rng.random(), 0.0
    for item in weighted:
        total += item[-1]
        if roll < total:
            return item[0]
    return weighted[-1][0]


def _definition(rng: random.Random, engine: str, version: int) -> dict:
    model = rng.choice(MODELS)[0]
    steps = [{"id": "input", "type": "input"}]
    for n in range(1 + version % 3 + rng.randint(1, 3)):
        kind = rng.choice(["llm", "llm", "tool", "retriever", "router"])
        node = {"id": f"{kind}_{n}", "type": kind}
        if kind == "llm":
            node |= {"model": model, "temperature": round(rng.uniform(0, 0.9), 1), "max_tokens": rng.choice([512, 1024, 4096])}
        elif kind == "tool":
            node |= {"tool": rng.choice(["web_search", "sql_query", "http_request", "python"])}
        elif kind == "retriever":
            node |= {"index": "knowledge-base", "top_k": rng.choice([3, 5, 8])}
        steps.append(node)
    steps.append({"id": "output", "type": "output"})
    edges = [[a["id"], b["id"]] for a, b in zip(steps, steps[1:])]
    return {"engine": engine, "schema_version": 2, "nodes": steps, "edges": edges}


def checksum(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_small_tables(plan: SeedPlan) -> SeedRows:
    rng = random.Random(plan.seed)
    rows = SeedRows()
    counters = dict.fromkeys(KIND, 0)

    def next_id(kind: str) -> uuid.UUID:
        counters[kind] += 1
        return seeded_id(kind, counters[kind])

    created_floor = ANCHOR - timedelta(days=HISTORY_DAYS + 60)
    for slug, name, plan_name, _weight in ORGANIZATIONS:
        org_id = next_id("organizations")
        org_created = created_floor + timedelta(days=rng.randint(0, 50))
        rows.organizations.append({"id": org_id, "slug": slug, "name": name, "plan": plan_name,
                                   "settings": {"region": rng.choice(["eu-west-1", "us-east-1"]), "sso": plan_name == "enterprise"},
                                   "created_at": org_created, "updated_at": org_created})
        role_ids = {}
        for role_name, description, permissions in ROLES:
            role_ids[role_name] = next_id("roles")
            rows.roles.append({"id": role_ids[role_name], "organization_id": org_id, "name": role_name,
                               "description": description, "permissions": permissions, "is_system": True,
                               "created_at": org_created, "updated_at": org_created})
        user_ids = []
        for n in range(rng.randint(8, 30)):
            user_id = next_id("users")
            user_ids.append(user_id)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            joined = org_created + timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 1440))
            status = "invited" if rng.random() < 0.06 else ("disabled" if rng.random() < 0.04 else "active")
            rows.users.append({
                "id": user_id, "organization_id": org_id, "email": f"{first}.{last}{n}@{slug}.example.com",
                "display_name": f"{first.title()} {last.title()}", "status": status,
                "last_login_at": None if status == "invited" else ANCHOR - timedelta(hours=rng.randint(1, 24 * 40)),
                "created_at": joined, "updated_at": joined,
            })
            role = "owner" if n == 0 else _pick(rng, [("admin", 0.1), ("editor", 0.55), ("viewer", 0.35)])
            rows.role_memberships.append({"organization_id": org_id, "user_id": user_id, "role_id": role_ids[role],
                                          "granted_by": user_ids[0] if n else None, "granted_at": joined})
        for template in rng.sample(WORKFLOW_TEMPLATES, k=rng.randint(5, len(WORKFLOW_TEMPLATES))):
            title, description, category = template
            engine = _pick(rng, ENGINES)
            workflow_id = next_id("workflows")
            owner = rng.choice(user_ids)
            created = org_created + timedelta(days=rng.randint(1, 40))
            versions = rng.randint(1, 6)
            definition = None
            for version in range(1, versions + 1):
                definition = _definition(rng, engine, version)
                rows.workflow_versions.append({
                    "id": next_id("workflow_versions"), "organization_id": org_id, "workflow_id": workflow_id,
                    "version": version, "definition": definition, "checksum": checksum(definition),
                    "change_note": "initial version" if version == 1 else rng.choice(
                        ["tuned prompt", "added retriever", "switched model", "fixed output schema", "added tool"]),
                    "created_by": owner, "created_at": created + timedelta(days=7 * (version - 1)),
                })
            rows.workflows.append({
                "id": workflow_id, "organization_id": org_id, "owner_id": owner, "name": title,
                "description": description, "engine_type": engine, "definition": definition,
                "current_version": versions, "status": "archived" if rng.random() < 0.08 else "active",
                "tags": [category, engine], "created_at": created,
                "updated_at": created + timedelta(days=7 * (versions - 1)),
            })
            if rng.random() < 0.3:
                pricing = _pick(rng, [("free", 0.5), ("one_time", 0.3), ("subscription", 0.2)])
                published = created + timedelta(days=rng.randint(5, 60))
                ratings = int(rng.paretovariate(1.3) * 3)
                rows.marketplace_items.append({
                    "id": next_id("marketplace_items"), "organization_id": org_id, "workflow_id": workflow_id,
                    "name": f"{title} ({name})", "summary": description,
                    "description": f"{description} Built on {engine}; ships with evaluation data and a setup guide.",
                    "category": category, "engine_type": engine, "pricing_model": pricing,
                    "price_cents": 0 if pricing == "free" else rng.choice([900, 1900, 4900, 9900]), "currency": "USD",
                    "rating": Decimal(str(round(rng.uniform(3.2, 4.9), 2))) if ratings else None,
                    "rating_count": ratings, "downloads": int(rng.paretovariate(1.1) * 40),
                    "status": "published", "tags": [category, engine], "published_at": published,
                    "created_at": published, "updated_at": published,
                })
    return rows


EXECUTION_COLUMNS = (
    "id", "organization_id", "workflow_id", "workflow_version", "triggered_by", "trigger", "status",
    "created_at", "started_at", "finished_at", "duration_ms", "prompt_tokens", "completion_tokens", "cost_usd",
    "error",
)


def executions_for(plan: SeedPlan, rows: SeedRows) -> Iterator[tuple]:
    """`plan.executions` executions as tuples in EXECUTION_COLUMNS order, ordered by organization,
    spread over HISTORY_DAYS with a weekday rhythm and growth, with a realistic status mix."""
    rng = random.Random(plan.seed + 1)
    weights = {org["id"]: w for org, (_, _, _, w) in zip(rows.organizations, ORGANIZATIONS)}
    total_weight = sum(weights.values())
    by_org_workflows: dict = {}
    for workflow in rows.workflows:
        if workflow["status"] != "archived":
            by_org_workflows.setdefault(workflow["organization_id"], []).append(workflow)
    by_org_users: dict = {}
    for user in rows.users:
        if user["status"] == "active":
            by_org_users.setdefault(user["organization_id"], []).append(user["id"])

    ordinal = 0
    remaining = plan.executions
    orgs = [org["id"] for org in rows.organizations]
    for index, org_id in enumerate(orgs):
        share = remaining if index == len(orgs) - 1 else round(plan.executions * weights[org_id] / total_weight)
        share = min(share, remaining)
        remaining -= share
        workflows, users = by_org_workflows[org_id], by_org_users[org_id]
        for _ in range(share):
            ordinal += 1
            workflow = rng.choice(workflows)
            # growth over the period: later days are busier (sqrt skews towards the anchor)
            age = HISTORY_DAYS * (1.0 - math.sqrt(rng.random()))
            created = ANCHOR - timedelta(days=age)
            if created.weekday() >= 5 and rng.random() < 0.6:
                created -= timedelta(days=2)  # quieter weekends
            trigger = _pick(rng, TRIGGERS)
            status = _pick(rng, STATUSES)
            if age < 0.01:  # the last quarter hour is still in flight
                status = rng.choice(["queued", "running"])
            model, price_in, price_out = rng.choice(MODELS)
            prompt = int(rng.lognormvariate(7.5, 0.9))
            completion = int(prompt * rng.uniform(0.08, 0.5))
            if status == "queued":
                started = finished = duration = None
                prompt = completion = 0
            else:
                started = created + timedelta(milliseconds=int(rng.expovariate(1 / 800)))
                duration = int(rng.lognormvariate(8.6, 0.8))  # median ~5 s, long tail
                if status == "timed_out":
                    duration = 300_000
                finished = None if status == "running" else started + timedelta(milliseconds=duration)
                if status == "running":
                    duration = None
            cost = Decimal(prompt * price_in + completion * price_out) / Decimal(1_000_000)
            yield (
                seeded_id("executions", ordinal), org_id, workflow["id"],
                rng.randint(max(1, workflow["current_version"] - 1), workflow["current_version"]),
                rng.choice(users) if trigger == "manual" else None, trigger, status,
                created, started, finished, duration, prompt, completion, cost.quantize(Decimal("0.000001")),
                rng.choice(ERRORS) if status in ("failed", "timed_out") else None,
            )
