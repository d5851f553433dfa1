"""The sales-context query as each server is asked it, and the check that they all answer
the same: identifiers, surviving traits, event count and the last 20 events."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from typing import Any

C360_QUERY = """query Sales($email: String!) {
  customer(identifier: {kind: "email", value: $email}) {
    id
    traits { name email phone company address { city country } }
    identifiers { kind value firstSeen lastSeen }
    events(first: 20) { totalCount edges { node { type name timestamp properties } } }
  }
}"""
PEER_QUERIES = {
    "cypher": """query Sales($email: String!) {
  customerByIdentifier(kind: "email", value: $email) {
    id
    traits { name value observedAt }
    identifiers { kind value firstSeen lastSeen }
    eventCount
    events(first: 20) { type name ts properties }
  }
}""",
    "relationship": """query Sales($key: String!) {
  identifiers(where: {key: {eq: $key}}) {
    customer {
      id
      traits(sort: [{observedAt: DESC}, {messageId: DESC}]) { name value observedAt }
      identifiers { kind value firstSeen lastSeen }
      eventsConnection { totalCount }
      events(sort: [{ts: DESC}, {messageId: DESC}], limit: 20) { type name ts properties }
    }
  }
}""",
}


def post(port: int, query: str, variables: dict[str, Any], key: str | None = None) -> Any:
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    if answer.get("errors"):
        raise SystemExit(f"GraphQL errors from port {port}: {answer['errors'][:2]}")
    return answer["data"]


def iso(micros: int | str | None) -> str | None:
    if micros is None:
        return None
    return datetime.fromtimestamp(int(micros) / 1e6, UTC).isoformat()


def from_c360(data: dict[str, Any]) -> dict[str, Any]:
    c = data["customer"]
    return {
        "id": c["id"],
        "identifiers": sorted(
            (i["kind"], i["value"], i["firstSeen"], i["lastSeen"]) for i in c["identifiers"]
        ),
        "traits": c["traits"],
        "totalCount": c["events"]["totalCount"],
        "events": [
            (
                e["node"]["type"].lower(),
                e["node"]["name"],
                e["node"]["timestamp"],
                e["node"]["properties"],
            )
            for e in c["events"]["edges"]
        ],
    }


def from_peer(c: dict[str, Any], total: int) -> dict[str, Any]:
    traits: dict[str, Any] = {}
    for t in c["traits"]:  # newest first: the first of each name survives
        traits.setdefault(t["name"], json.loads(t["value"]))
    address = traits.get("address")
    return {
        "id": c["id"],
        "identifiers": sorted(
            (i["kind"], i["value"], iso(i["firstSeen"]), iso(i["lastSeen"]))
            for i in c["identifiers"]
        ),
        "traits": {
            "name": traits.get("name"),
            "email": traits.get("email"),
            "phone": traits.get("phone"),
            "company": traits.get("company"),
            "address": {"city": address.get("city"), "country": address.get("country")}
            if isinstance(address, dict)
            else None,
        },
        "totalCount": total,
        "events": [
            (e["type"], e["name"], iso(e["ts"]), json.loads(e["properties"] or "{}"))
            for e in c["events"]
        ],
    }


def variables(model: str, email: str) -> dict[str, str]:
    return {"key": f"email:{email}"} if model == "relationship" else {"email": email}


def check_same(ports: dict[str, int], emails: list[str], key: str) -> None:
    """Every peer model answers the sample customers as c360 does (admin key: all clear)."""
    for email in emails:
        c360 = from_c360(post(ports["c360"], C360_QUERY, {"email": email}, key))
        for model, query in PEER_QUERIES.items():
            data = post(ports[f"peer-{model}"], query, variables(model, email))
            if model == "cypher":
                c = data["customerByIdentifier"]
                peer = from_peer(c, c["eventCount"])
            else:
                c = data["identifiers"][0]["customer"][0]
                peer = from_peer(c, c["eventsConnection"]["totalCount"])
            if peer != c360:
                for field in c360:
                    if peer[field] != c360[field]:
                        print(f"  {field}: c360 {c360[field]!r}\n  {field}: peer {peer[field]!r}")
                raise SystemExit(f"peer-{model} and c360 differ for {email}")
    print(f"same identifiers, traits and last 20 events from every server, {len(emails)} customers")
