"""Word lists for generated tasks: titles, descriptions and comments that read like a real team's."""

from __future__ import annotations

import random

COMPONENTS = [
    "API gateway", "session store", "deploy pipeline", "job runner", "search indexer", "metrics exporter",
    "auth service", "rate limiter", "CDN config", "database migrations", "backup cron", "log shipper",
    "feature flag service", "payment webhooks", "e-mail sender", "image resizer", "cache cluster", "service mesh",
    "CI runners", "secrets vault", "DNS zone tooling", "load balancer", "message queue", "object storage",
]
PROBLEMS = [
    "intermittent 502s under load", "memory leak after 48h uptime", "timeouts during the nightly batch",
    "wrong timezone in reports", "noisy alerts at night", "slow cold start", "TLS handshake failures",
    "disk usage grows without bound", "retries without backoff", "stale entries after deploy",
    "crash on an empty config file", "flaky integration test", "p99 latency regression", "connection pool exhaustion",
    "duplicate events after failover", "missing metrics after restart",
]
FEATURES = [
    "structured logging", "a health check endpoint", "Prometheus metrics", "a dry-run mode", "graceful shutdown",
    "request tracing", "per-tenant quotas", "a runbook", "canary support", "configurable timeouts",
]
VERSIONS = ["3.2", "2.0", "18 LTS", "1.29", "8.3", "16", "5.x"]
PAGES = ["password reset e-mail", "billing page", "profile settings", "help center", "sign-up form", "invoice PDF",
         "notification settings", "search results page", "team dashboard", "export dialog"]
BROWSERS = ["Safari 17", "Firefox ESR", "Chrome on Android", "Edge", "iPadOS"]
TEAMS = ["Payments", "Search", "Mobile", "Growth", "Data", "Billing", "Identity"]
CHANGES = ["retry/backoff patch", "schema migration", "client library bump", "cache invalidation change",
           "feature flag cleanup", "rate limit change", "new batch job", "connection pool tuning"]

DESCRIPTIONS = [
    "Seen in production since the last deploy. Steps to reproduce are in the linked dashboard.",
    "Reported by support, affects a handful of customers every day.",
    "We need this before the next quarterly release.\n\n- [ ] design\n- [ ] implementation\n- [ ] rollout",
    "Happens roughly once an hour; logs attached in the paste.",
    "Low urgency, but it keeps coming up in on-call handovers.",
    "Follow-up from the incident review last week.",
    "",
]
COMMENTS = [
    "I can reproduce this on staging.", "Patch is up for review.", "This is blocked on the vendor, pinging them.",
    "Looks like a config drift between the two clusters.", "Added a test that fails without the fix.",
    "Moving this to next sprint, we ran out of time.", "Can we get more details on how often this happens?",
    "Deployed to canary, watching the graphs.", "Not reproducible anymore after the upgrade.",
    "I'll pair with someone on this tomorrow.", "Root cause found: the retry loop ignores the deadline.",
    "Spoke to the other team, they will send a patch.",
]
BOT_COMMENTS = [
    "This task has had no activity for 14 days. Is it still being worked on?",
    "Reminder: this task is assigned but has not been updated in two weeks.",
]


def title(rng: random.Random, board: str) -> str:
    if board == "ext":
        return f"Review: {rng.choice(TEAMS)} team {rng.choice(CHANGES)}"
    if board == "clinic":
        kind = rng.randrange(4)
        if kind == 0:
            return f"Typo in the {rng.choice(PAGES)}"
        if kind == 1:
            return f"{rng.choice(PAGES).capitalize()} renders incorrectly on {rng.choice(BROWSERS)}"
        if kind == 2:
            return f"Export to CSV times out for large {rng.choice(['projects', 'teams', 'invoices'])}"
        return f"User reports: {rng.choice(PAGES)} {rng.choice(['is slow', 'shows stale data', 'fails to load'])}"
    kind = rng.randrange(4)
    comp = rng.choice(COMPONENTS)
    if kind <= 1:
        return f"{comp[0].upper()}{comp[1:]}: {rng.choice(PROBLEMS)}"
    if kind == 2:
        return f"Add {rng.choice(FEATURES)} to the {comp}"
    return f"Upgrade the {comp} to {rng.choice(VERSIONS)}"


def description(rng: random.Random) -> str:
    return rng.choice(DESCRIPTIONS)


def comment(rng: random.Random) -> str:
    return rng.choice(COMMENTS)


def bot_comment(rng: random.Random) -> str:
    return rng.choice(BOT_COMMENTS)


def blocked_comment(rng: random.Random) -> str:
    return rng.choice(["Blocked: waiting for the vendor to answer our ticket.",
                       "Blocked on the network team's firewall change.",
                       "Waiting for the other team's release before we can continue."])


def closing_comment(rng: random.Random, status: str) -> str:
    return {
        "resolved": "Fixed and deployed.",
        "declined": "We decided not to do this.",
        "invalid": "Works as intended.",
        "duplicate": "Duplicate of an existing task.",
    }.get(status, "Closing.")
